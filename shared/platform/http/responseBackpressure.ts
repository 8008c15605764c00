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

/** `body` as a stream that asks for its next chunk only when the invocation's connection has taken the last. */
export function pacedBody(body: ReadableStream<Uint8Array>, invocationId: string): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        await connectionWritable(invocationId);
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
