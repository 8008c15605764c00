/**
 * Loaded with `node --require` into Azurite's queue service (see `azurite.ts`), before Azurite itself: makes the
 * LokiJS removals that Azurite's queue service makes on every request cost what they should, without changing what
 * they do.
 *
 * LokiJS rebuilds all of a collection's binary indices (sorting every document once per index) after any removal
 * given as an array, whatever its length, while removing one document moves only its entries. Azurite's queue
 * service removes in arrays twice per message: before each receive, peek and delete it removes the queue's expired
 * messages (usually none) from the collection holding every queue's messages, and its garbage collector removes each
 * stored message body from the extents collection by itself. With the 5,000 mails of the send benchmark waiting,
 * the queue process spent 96 % of its time in those rebuilds (CPU profiles) and sends stalled for a minute at a
 * time. Azure Queue storage has no such cost, so the benchmark would measure the emulator, not the gateway.
 *
 * The fix: removing an empty array does nothing (it removed nothing before either), and an array of one document
 * is removed as that document. Longer arrays, and a receive's batch update, still rebuild the indices: Azurite
 * changes the received documents in place before `update(array)`, so only a rebuild puts them back in order.
 */
import { createRequire } from 'node:module';

/** The part of LokiJS's `Collection` this module changes. */
export interface LokiCollectionMethods {
  remove(this: unknown, doc: unknown): unknown;
}

/**
 * Replaces `remove` on a LokiJS `Collection` prototype: an empty array returns at once, an array of one document is
 * removed as that document; anything else goes to LokiJS's own `remove`.
 */
export function applyLokiBatchFix(prototype: LokiCollectionMethods): void {
  const remove = prototype.remove;
  if (typeof remove !== 'function') {
    throw new Error('lokiBatchFix: LokiJS Collection.prototype.remove not found; the LokiJS version changed');
  }
  prototype.remove = function (this: unknown, doc: unknown) {
    if (Array.isArray(doc) && doc.length <= 1) return doc.length === 0 ? undefined : remove.call(this, doc[0]);
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
