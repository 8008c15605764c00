/**
 * Reads a send request's body as it arrives: each chunk is counted against the size cap, parsed by the streaming JSON
 * parser, then dropped (an `Idempotency-Key` compares the parsed request, see requestHash.ts). Only the parsed
 * values stay, and a large attachment's base64 not even that: the parser hands it to a sink (`streamedStrings`: the
 * outbox decodes it into a blob), and `afterChunk` lets the sink store what the chunk gave it before the next is read.
 *
 * Reading stops at the first chunk past the cap, the first byte that cannot be JSON, or the first bracket nested
 * deeper than `maxDepth`. The stream is released, not cancelled: with HTTP streaming, cancelling would tear down the
 * exchange the answer (413, 400) is written on, and the host stops forwarding what the handler no longer reads.
 */
import { JsonDocumentParser, JsonTooDeepError, MalformedJsonError } from '../../platform/json/jsonStream';
import type { StreamedStrings } from '../../platform/json/streamedStrings';

/** What reading the body found. */
export type SendBodyRead =
  | { kind: 'parsed'; json: unknown }
  | { kind: 'tooLarge' }
  | { kind: 'malformed' }
  | { kind: 'tooDeep'; maxDepth: number };

/** How to read it. */
export interface SendBodyOptions {
  /** Largest body accepted, in bytes. */
  limit: number;
  /** Deepest nesting of arrays and objects accepted (the root is level 1). */
  maxDepth: number;
  /** The string values the parser hands to sinks instead of building them (see streamedStrings.ts). */
  streamedStrings?: StreamedStrings;
  /** Runs once each chunk is counted and parsed; reading waits for it (backpressure). */
  afterChunk?: () => Promise<void>;
}

/** The body stream failed: the client went away before its body arrived. */
export class BodyStreamError extends Error {
  constructor(cause: unknown) {
    super('the client disconnected before the request body arrived', { cause });
    this.name = 'BodyStreamError';
  }
}

/** Reads and parses `body` (see the module comment); throws {@link BodyStreamError} when the stream fails. */
export async function readSendBody(
  body: ReadableStream<Uint8Array> | null,
  options: SendBodyOptions,
): Promise<SendBodyRead> {
  const parser = new JsonDocumentParser(options.streamedStrings, options.maxDepth);
  if (body !== null) {
    const reader = body.getReader();
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read().catch((err: unknown) => {
          throw new BodyStreamError(err);
        });
        if (done) break;
        size += value.byteLength;
        if (size > options.limit) return { kind: 'tooLarge' };
        try {
          parser.write(value);
        } catch (err) {
          if (err instanceof MalformedJsonError) return { kind: 'malformed' };
          if (err instanceof JsonTooDeepError) return { kind: 'tooDeep', maxDepth: err.maxDepth };
          throw err;
        }
        await options.afterChunk?.();
      }
    } finally {
      reader.releaseLock();
    }
  }
  try {
    return { kind: 'parsed', json: parser.end() };
  } catch (err) {
    if (err instanceof MalformedJsonError) return { kind: 'malformed' };
    throw err;
  }
}
