/**
 * Backpressure for streamed HTTP responses. With HTTP streaming on, `@azure/functions` (4.16) copies a response body
 * into its proxy connection to the Functions host with `write()` in a loop and never waits for `drain`
 * (Azure/azure-functions-nodejs-library#294, open): whatever Graph delivers faster than the host takes it piles up in
 * the worker's memory, a whole 25 MB attachment for a slow caller. The library keeps that connection to itself, but
 * it stamps each one with the invocation's id (`x-ms-invocation-id`) before the first byte; this module remembers the
 * connection by that id, and {@link pacedBody} reads the next chunk of a body only once the connection can take it.
 * Without the library's header (another library version, or no proxy at all) the body flows unpaced, as before.
 */
import { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/** The header the library sets on its proxy response (`httpProxy.ts`, `invocationIdHeader`). */
const INVOCATION_HEADER = 'x-ms-invocation-id';

/**
 * Bytes a connection may hold unsent before the body waits for it to drain. Waiting at every full socket buffer
 * (16 KiB) costs a round of events per Graph chunk and halved the throughput; 1 MiB keeps the worker's share of a
 * download small whatever its size while the copy runs at the connection's speed.
 */
export const UNSENT_BUDGET_BYTES = 1024 * 1024;

const connections = new Map<string, ServerResponse>();
let installed = false;

/** Starts remembering the library's proxy responses by invocation id; once per process. */
export function installResponseBackpressure(): void {
  if (installed) return;
  installed = true;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the response as `this` below
  const setHeader = ServerResponse.prototype.setHeader;
  ServerResponse.prototype.setHeader = function (
    this: ServerResponse,
    name: string,
    value: number | string | readonly string[],
  ): ServerResponse {
    if (typeof value === 'string' && name.toLowerCase() === INVOCATION_HEADER) remember(value, this);
    return setHeader.call(this, name, value) as ServerResponse;
  };
}

function remember(invocationId: string, res: ServerResponse): void {
  connections.set(invocationId, res);
  const forget = () => {
    if (connections.get(invocationId) === res) connections.delete(invocationId);
  };
  res.once('close', forget);
  res.once('finish', forget);
}

/**
 * Resolves once the invocation's proxy connection holds less than {@link UNSENT_BUDGET_BYTES} unsent: at once when
 * it does, or when no connection is known.
 */
export function connectionWritable(invocationId: string): Promise<void> {
  const res = connections.get(invocationId);
  if (!res || res.destroyed || res.writableLength < UNSENT_BUDGET_BYTES) return Promise.resolve();
  return drainedOrClosed(res);
}

/**
 * `body` as the response body of invocation `invocationId`, read only as fast as its proxy connection takes it. The
 * library asks for the first chunk once it has stamped the connection (headers and status set, nothing sent): from
 * there this module copies the body onto that connection itself, pausing it whenever more than
 * {@link UNSENT_BUDGET_BYTES} are unsent until the connection drains, and the library's stream ends when the copy did
 * (the library then ends the response). Handing each chunk through the library's loop instead cost a web-stream
 * read, a pull and its promises per chunk. Without a known connection (no proxy, another library version), chunks
 * are handed over one per pull, each once the connection, if any, can take it.
 */
export function pacedBody(body: Readable, invocationId: string): ReadableStream<Uint8Array> {
  let first = true;
  let chunks: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const res = first ? connections.get(invocationId) : undefined;
        first = false;
        if (res && !res.headersSent) {
          await copyTo(body, res);
          controller.close();
          return;
        }
        await connectionWritable(invocationId);
        chunks ??= body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel() {
        body.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Copies `source` onto `res` with backpressure; settles when `source` ended (or failed). A connection that closed
 * (the caller left) stops the read from Graph: nobody is left to send the rest to.
 */
function copyTo(source: Readable, res: ServerResponse): Promise<void> {
  if (res.destroyed) {
    source.destroy();
    return Promise.resolve();
  }
  return new Promise<void>((resolve, reject) => {
    let ended = false;
    const onData = (chunk: Buffer): void => {
      res.write(chunk);
      if (res.writableLength >= UNSENT_BUDGET_BYTES) {
        source.pause();
        res.once('drain', onDrain);
      }
    };
    const onDrain = (): void => {
      source.resume();
    };
    const onEnd = (): void => {
      ended = true;
      finish();
    };
    const onSourceClose = (): void => {
      if (!ended) finish(new Error('The body stream closed before its end'));
    };
    const onError = (err: Error): void => finish(err);
    const onResClose = (): void => {
      source.destroy();
      finish();
    };
    function finish(err?: Error): void {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('close', onSourceClose);
      source.off('error', onError);
      // A failure after the copy settled has nobody to tell; unheard, it would crash the process.
      source.on('error', () => undefined);
      res.off('drain', onDrain);
      res.off('close', onResClose);
      if (err) reject(err);
      else resolve();
    }
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('close', onSourceClose);
    source.once('error', onError);
    res.once('close', onResClose);
  });
}

/** Resolves once `res` drained or closed. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
