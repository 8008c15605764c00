/**
 * A blob stored in the outbox while its bytes arrive (a large attachment, decoded as the request streams in): the
 * bytes go to the blob as uncommitted blocks (Put Block), a block at a time, so that the accept never holds them all;
 * the blob exists only once `commit` puts the block list, after the request passed its checks. Until then nothing can
 * read it, and `discard` drops the staged blocks.
 */
import type { BlockBlobClient } from '@azure/storage-blob';

/** Bytes per staged block: small enough to hold little, large enough to need few requests (13 for 25 MB). */
export const STAGED_BLOCK_BYTES = 2 * 1024 * 1024;

/** The blocks of one blob being staged. */
export class StagedBlob {
  readonly #blob: BlockBlobClient;
  readonly #ready: () => Promise<void>;
  readonly #blockIds: string[] = [];
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** The block being staged (at most one at a time, so at most two blocks are held). */
  #inFlight: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #size = 0;
  #committed = false;

  /** `ready` makes sure the container exists; it runs before the first block is staged. */
  constructor(blob: BlockBlobClient, ready: () => Promise<void>) {
    this.#blob = blob;
    this.#ready = ready;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends `chunk`; resolves once the blob can take more (a full block is handed to storage, and the previous
   * one is staged). A storage failure does not throw here: the request is still read and checked, so that a bad
   * request gets its 400 whatever storage does; `commit` throws it. `chunk` must not change afterwards.
   */
  async write(chunk: Uint8Array): Promise<void> {
    this.#size += chunk.byteLength;
    if (this.#failure !== undefined) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
    if (this.#pendingBytes >= STAGED_BLOCK_BYTES) await this.#stagePending();
  }

  /** Stages what is left and commits the block list: the blob now exists, whole. Throws a storage failure. */
  async commit(contentType: string): Promise<void> {
    if (this.#pendingBytes > 0 || this.#blockIds.length === 0) await this.#stagePending();
    await this.#inFlight;
    if (this.#failure !== undefined) throw this.#failure;
    await this.#blob.commitBlockList(this.#blockIds, { blobHTTPHeaders: { blobContentType: contentType } });
    this.#committed = true;
  }

  /**
   * Drops the staged blocks (best effort): storage keeps uncommitted blocks for up to a week, but a block list put on
   * the blob discards every block it does not name, so an empty list and a delete leave nothing behind. Does nothing
   * once committed: the blob is then the outbox's (see `OutboxStore.accept`).
   */
  async discard(): Promise<void> {
    if (this.#committed) return;
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#inFlight;
    if (this.#blockIds.length === 0) return;
    try {
      await this.#blob.commitBlockList([]);
      await this.#blob.deleteIfExists();
    } catch {
      // Whatever stays is uncommitted blocks no record or queue message names; storage drops them within a week.
    }
  }

  async #stagePending(): Promise<void> {
    const block = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#inFlight;
    if (this.#failure !== undefined) return;
    // Fixed-length ids: a blob's block ids must all have the same length.
    const id = Buffer.from(`block-${String(this.#blockIds.length).padStart(6, '0')}`).toString('base64');
    this.#blockIds.push(id);
    this.#inFlight = this.#ready()
      .then(() => this.#blob.stageBlock(id, block, block.length))
      .then(
        () => undefined,
        (err: unknown) => {
          this.#failure = err instanceof Error ? err : new Error(String(err));
        },
      );
  }
}
