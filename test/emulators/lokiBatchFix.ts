/**
 * Loaded with `node --require` into Azurite's queue service (see `azurite.ts`), before Azurite itself: makes the
 * LokiJS removals that Azurite's queue service makes on every request cost what they should, without changing what
 * they do.
 *
 * LokiJS rebuilds all of a collection's binary indices (sorting every document once per index) after any batch
 * removal (`remove(array)`, `findAndRemove`, a result set's `remove`), whatever its length, while removing one
 * document moves only its entries. Azurite's queue service removes in batches twice per message: before each
 * receive, peek and delete it removes the queue's expired messages (usually none) from the collection holding every
 * queue's messages, and its garbage collector removes each stored message body from the extents collection with
 * `findAndRemove({ id })`. With the 5,000 mails of the send benchmark waiting,
 * the queue process spent 96 % of its time in those rebuilds (CPU profiles) and sends stalled for a minute at a
 * time. Azure Queue storage has no such cost, so the benchmark would measure the emulator, not the gateway.
 *
 * The fix, in the one method every batch removal ends in: removing no document does nothing (it removed nothing
 * before either), and a batch of one document is removed as that document. Longer batches, and a receive's batch
 * update, still rebuild the indices: Azurite changes the received documents in place before `update(array)`, so only
 * a rebuild puts them back in order.
 */
import { createRequire } from 'node:module';

/** The part of LokiJS's `Collection` this module uses and changes. */
export interface LokiCollectionMethods {
  /** Removes the documents at these positions of `data`; every batch removal ends here. */
  removeBatchByPositions: (this: LokiCollection, positions: number[]) => unknown;
  remove: (this: LokiCollection, doc: unknown) => unknown;
}

/** A LokiJS collection, as far as this module reads it. */
export interface LokiCollection extends LokiCollectionMethods {
  data: unknown[];
}

/**
 * Replaces `removeBatchByPositions` on a LokiJS `Collection` prototype: no position returns at once, one position is
 * removed as that single document; anything else goes to LokiJS's own method.
 */
export function applyLokiBatchFix(prototype: LokiCollectionMethods): void {
  const removeBatch = prototype.removeBatchByPositions;
  if (typeof removeBatch !== 'function' || typeof prototype.remove !== 'function') {
    throw new Error('lokiBatchFix: LokiJS Collection.prototype.removeBatchByPositions not found; LokiJS changed');
  }
  prototype.removeBatchByPositions = function (this: LokiCollection, positions: number[]) {
    if (positions.length === 0) return undefined;
    if (positions.length === 1) return this.remove(this.data[positions[0]]);
    return removeBatch.call(this, positions);
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
