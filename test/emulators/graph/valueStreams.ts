/**
 * How `$value` bodies (attachment bytes, MIME) leave the emulator: in chunks, optionally slowly, each stream logged
 * with when it started and finished. A test can then prove that a client streamed (it answered before the emulator
 * finished) instead of buffering the whole download.
 */
import { delay } from '../httpServer';

/** How `$value` bodies are paced. */
export interface ValueStreamPacing {
  /** Bytes per chunk (default 64 KiB). */
  chunkBytes: number;
  /** Wait before each chunk after the first (default 0). */
  delayMs: number;
}

/** One `$value` body sent. */
export interface ValueStreamRecord {
  /** The request path. */
  path: string;
  bytes: number;
  startedAt: Date;
  /** When the last byte was handed to the socket; undefined while streaming (or when the client went away). */
  finishedAt?: Date;
}

/** The default pacing: 64 KiB chunks, no delay. */
export const DEFAULT_VALUE_PACING: ValueStreamPacing = { chunkBytes: 64 * 1024, delayMs: 0 };

/** Paces and logs `$value` bodies. */
export class ValueStreams {
  /** Every `$value` body sent, oldest first. */
  readonly log: ValueStreamRecord[] = [];
  private pacing: ValueStreamPacing = { ...DEFAULT_VALUE_PACING };

  /** Changes the pacing of streams started from now on. */
  setPacing(pacing: Partial<ValueStreamPacing>): void {
    const next = { ...this.pacing, ...pacing };
    if (!(next.chunkBytes > 0) || !(next.delayMs >= 0))
      throw new Error('value stream pacing needs chunkBytes > 0 and delayMs >= 0');
    this.pacing = next;
  }

  /** Back to the default pacing, log emptied. */
  reset(): void {
    this.pacing = { ...DEFAULT_VALUE_PACING };
    this.log.length = 0;
  }

  /** `parts` as a paced stream of chunks, logged under `path`. */
  stream(path: string, parts: readonly Buffer[]): AsyncIterable<Buffer> {
    const { chunkBytes, delayMs } = this.pacing;
    const record: ValueStreamRecord = {
      path,
      bytes: parts.reduce((n, p) => n + p.length, 0),
      startedAt: new Date(),
    };
    this.log.push(record);
    return (async function* () {
      let sent = 0;
      for (const part of parts) {
        for (let offset = 0; offset < part.length; offset += chunkBytes) {
          if (sent > 0 && delayMs > 0) await delay(delayMs);
          const chunk = part.subarray(offset, offset + chunkBytes);
          sent += chunk.length;
          // Stamped as the last chunk is handed over: the client may have it all before the generator resumes.
          if (sent === record.bytes) record.finishedAt = new Date();
          yield chunk;
        }
      }
      record.finishedAt ??= new Date();
    })();
  }
}
