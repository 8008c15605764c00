/**
 * The Graph client's last middleware: sends each request over the process's Graph pool. A request that asks for its
 * answer's body as a Node stream ({@link NODE_BODY_OPTION}, the `$value` downloads) is sent with undici's `request`
 * instead of `fetch`: a successful answer then reaches the SDK as a bodiless `Response` with Graph's status and
 * headers, and its body is taken with {@link takeNodeBody}. Why: `fetch` hands a body over as a web stream, and in the
 * functions host each 16 KiB TLS record of a download then cost a pause and resume of the socket, a Node-stream
 * iterator step, a byte-stream enqueue (which transfers the buffer) and a handful of promises before the gateway
 * could write it on; a profile of a 25 MB download put that next to the socket writes as the largest cost. Every
 * other middleware (token, retries with Retry-After, redirects, request ids) runs as before; an answer that is not a
 * success (a refusal to retry, or to map to a problem) is read whole, as it is small.
 */
import type { Readable } from 'node:stream';
import type { Context, Middleware } from '@microsoft/microsoft-graph-client';
import type { Dispatcher } from 'undici';
import { graphDispatcher } from '../platform/http/connectionPools';

/** The request option (`GraphRequest.option`) asking for a successful answer's body as a Node stream. */
export const NODE_BODY_OPTION = 'gatewayNodeBody';

/** Statuses whose answer has no body (a `Response` with one would be refused). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * Bytes the Node stream reads ahead of its consumer: four TLS records, so that a download pauses the socket once per
 * 64 KiB rather than once per record, and the read-ahead stays small beside the response's own budget.
 */
const READ_AHEAD_BYTES = 64 * 1024;

const nodeBodies = new WeakMap<Response, Readable>();

/** The Node stream of an answer sent with {@link NODE_BODY_OPTION}; undefined for any other answer. Taken once. */
export function takeNodeBody(response: Response): Readable | undefined {
  const body = nodeBodies.get(response);
  nodeBodies.delete(response);
  return body;
}

/** Sends requests with `fetch`, or with undici's `request` when they ask for a Node body. */
export class GraphTransport implements Middleware {
  async execute(context: Context): Promise<void> {
    // The SDK's types name the DOM's RequestInfo; in Node it is a URL string or a Request.
    const request = context.request as string | Request;
    const options = (context.options ?? {}) as RequestInit & { [NODE_BODY_OPTION]?: boolean };
    if (!options[NODE_BODY_OPTION]) {
      context.response = await fetch(request, context.options);
      return;
    }
    const url = new URL(typeof request === 'string' ? request : request.url);
    const answer = await graphDispatcher().request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: headerRecord(options.headers),
      highWaterMark: READ_AHEAD_BYTES,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      for (const one of [value ?? []].flat()) headers.append(name, one);
    }
    const status = answer.statusCode;
    if (status >= 200 && status < 300 && !NULL_BODY_STATUSES.has(status)) {
      const response = new Response(null, { status, headers });
      nodeBodies.set(response, answer.body);
      context.response = response;
      return;
    }
    const text = await answer.body.text();
    context.response = new Response(NULL_BODY_STATUSES.has(status) ? null : text, { status, headers });
  }
}

/** The SDK's request headers (a record, a `Headers` or pairs) as a record. */
function headerRecord(init: ConstructorParameters<typeof Headers>[0]): Record<string, string> {
  const record: Record<string, string> = {};
  new Headers(init).forEach((value, name) => (record[name] = value));
  return record;
}
