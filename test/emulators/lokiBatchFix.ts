/**
 * Loaded with `node --require` into Azurite's queue service (see `azurite.ts`), before Azurite itself: makes the
 * LokiJS call that Azurite's queue store makes on every request cost what it should, without changing what it does.
 *
 * Azurite keeps every queue's messages in one LokiJS collection with four binary indices. Before each receive, peek
 * and delete it removes the queue's expired messages with `remove(array)`, and LokiJS rebuilds all four indices
 * after any batch remove, even an empty one: every request, empty polls included, sorts every message four times.
 * With the 5,000 mails of the send benchmark waiting, Azurite's queue process spent 96 % of its time in those
 * rebuilds (CPU profile) and sends stalled for a minute at a time. Azure Queue storage has no such cost, so the
 * benchmark would measure the emulator, not the gateway.
 *
 * The fix: removing an empty batch does nothing (it removed nothing before either). A non-empty batch remove, and a
 * receive's batch update, still rebuild the indices: Azurite changes the documents in place before `update(array)`,
 * so only a rebuild puts them back in order.
 */
import { createRequire } from 'node:module';

/** The part of LokiJS's `Collection` this module changes. */
export interface LokiCollectionMethods {
  remove(this: unknown, doc: unknown): unknown;
}

/** Replaces `remove` on a LokiJS `Collection` prototype so that removing an empty batch returns at once. */
export function applyLokiBatchFix(prototype: LokiCollectionMethods): void {
  const remove = prototype.remove;
  if (typeof remove !== 'function') {
    throw new Error('lokiBatchFix: LokiJS Collection.prototype.remove not found; the LokiJS version changed');
  }
  prototype.remove = function (this: unknown, doc: unknown) {
    if (Array.isArray(doc) && doc.length === 0) return undefined;
    return remove.call(this, doc);
  };
}

/** Applies the fix to the LokiJS that the process's main script (Azurite's queue service) will load. */
function applyToMainScriptsLoki(): void {
  const loki = createRequire(process.argv[1])('lokijs') as { Collection?: { prototype: LokiCollectionMethods } };
  if (!loki.Collection) throw new Error('lokiBatchFix: LokiJS has no Collection export; the LokiJS version changed');
  applyLokiBatchFix(loki.Collection.prototype);
}

// Only the Azurite process started by azurite.ts sets this; importing the module (tests) changes nothing.
if (process.env.LOKI_BATCH_FIX === '1') applyToMainScriptsLoki();
