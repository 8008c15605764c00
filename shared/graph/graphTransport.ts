/**
 * The Graph client's last middleware: sends each request over the process's Graph pool with undici's `request`, and
 * hands the SDK a `Response` built from the answer. Every other middleware (token, retries with Retry-After,
 * redirects, request ids) runs as before.
 *
 * Why not `fetch`: per call it builds a `Request`, an `AbortController` tied to it through `WeakRef`s and a
 * `FinalizationRegistry`, a web stream for the body and a resource-timing entry. Sequential JSON GETs against a local
 * server, measured in one process: 415–445 µs of CPU per call with `fetch`, 241–301 µs with this; and with `fetch`
 * about 4 KB per call outlived the young generation's collections (15–18 MB promoted in 4,000 calls), which made each
 * of those collections take about 4.5 ms instead of 0.5 ms. In the functions host, during 300 `GET`s of a message,
 * what each young collection promoted fell from about 2.0 to 1.1 MB (the rest is not Graph's).
 *
 * What `fetch` did that is done here: ask for a compressed answer (`Accept-Encoding: gzip, deflate`, as Graph's own
 * SDKs do) and inflate it; give a string body without a type `text/plain;charset=UTF-8`. A request that asks for its
 * answer's body as a Node stream ({@link NODE_BODY_OPTION}, the `$value` downloads) is not asked compressed: a
 * successful answer then reaches the SDK as a bodiless `Response` with Graph's status and headers, and its body is
 * taken with {@link takeNodeBody}, so that a 25 MB download is copied on as it arrives instead of through a web
 * stream (each 16 KiB TLS record cost a socket pause and resume, an iterator step, a byte-stream enqueue and a handful
 * of promises). Any other answer is read whole: they are small.
 */
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzip, gunzipSync, inflate, inflateSync } from 'node:zlib';
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

/**
 * Compressed answers up to this size are inflated in one synchronous call: for a few KB (a message, an attachment
 * list) that takes 5–9 µs, where the thread-pool round trip of the asynchronous call takes 75–100 µs of CPU (measured:
 * 5,000 inflations of a 140-byte gzip answer each way, one process). Above it, inflating could hold the event loop for
 * a millisecond or more, so it runs on the thread pool.
 */
const SYNC_INFLATE_MAX_BYTES = 64 * 1024;

interface Inflater {
  sync: (bytes: Buffer) => Buffer;
  async: (bytes: Buffer) => Promise<Buffer>;
}

const gzipInflater: Inflater = { sync: gunzipSync, async: promisify(gunzip) };

/** By content coding; `x-gzip` is gzip's old name (RFC 9110 §8.4.1.3). */
const inflaters: Record<string, Inflater> = {
  gzip: gzipInflater,
  'x-gzip': gzipInflater,
  deflate: { sync: inflateSync, async: promisify(inflate) },
};

const nodeBodies = new WeakMap<Response, Readable>();

/** The Node stream of an answer sent with {@link NODE_BODY_OPTION}; undefined for any other answer. Taken once. */
export function takeNodeBody(response: Response): Readable | undefined {
  const body = nodeBodies.get(response);
  nodeBodies.delete(response);
  return body;
}

/** Sends every request with undici's `request` over the Graph pool. */
export class GraphTransport implements Middleware {
  async execute(context: Context): Promise<void> {
    // The SDK's types name the DOM's RequestInfo; in Node it is a URL string or a Request.
    const request = context.request as string | Request;
    const options = (context.options ?? {}) as RequestInit & { [NODE_BODY_OPTION]?: boolean };
    const streamed = options[NODE_BODY_OPTION] === true;
    const url = new URL(typeof request === 'string' ? request : request.url);
    const headers = headerRecord(options.headers);
    if (!streamed && headers['accept-encoding'] === undefined) headers['accept-encoding'] = 'gzip, deflate';
    if (typeof options.body === 'string' && headers['content-type'] === undefined)
      headers['content-type'] = 'text/plain;charset=UTF-8';
    const answer = await graphDispatcher().request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
      headers,
      body: requestBody(options.body),
      ...(streamed ? { highWaterMark: READ_AHEAD_BYTES } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const answerHeaders = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      for (const one of [value ?? []].flat()) answerHeaders.append(name, one);
    }
    const status = answer.statusCode;
    if (streamed && status >= 200 && status < 300 && !NULL_BODY_STATUSES.has(status)) {
      const response = new Response(null, { status, headers: answerHeaders });
      nodeBodies.set(response, answer.body);
      context.response = response;
      return;
    }
    let bytes: Buffer = Buffer.from(await answer.body.arrayBuffer());
    const coding = answerHeaders.get('content-encoding')?.trim().toLowerCase();
    const inflater = coding ? inflaters[coding] : undefined;
    if (inflater && bytes.length > 0) {
      bytes = bytes.length <= SYNC_INFLATE_MAX_BYTES ? inflater.sync(bytes) : await inflater.async(bytes);
      // What the SDK reads is the inflated body: the coding and the length on the wire no longer describe it.
      answerHeaders.delete('content-encoding');
      answerHeaders.delete('content-length');
    }
    context.response = new Response(NULL_BODY_STATUSES.has(status) ? null : bytes, {
      status,
      headers: answerHeaders,
    });
  }
}

/** A request body as undici's `request` takes it (the SDK sends strings, buffers or, for uploads, streams). */
function requestBody(body: RequestInit['body']): string | Buffer | Readable | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || Buffer.isBuffer(body)) return body;
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ReadableStream) return Readable.fromWeb(body);
  throw new TypeError(`a Graph request body of type ${Object.prototype.toString.call(body)} is not supported`);
}

/** The SDK's request headers (a record, a `Headers` or pairs) as a record with lower-case names. */
function headerRecord(init: ConstructorParameters<typeof Headers>[0]): Record<string, string> {
  const record: Record<string, string> = {};
  if (init === undefined) return record;
  // The SDK's own requests carry a plain record: copied as is, without building a `Headers` (1 % of a GET's CPU).
  if (Object.getPrototypeOf(init) === Object.prototype) {
    for (const [name, value] of Object.entries(init as Record<string, string>)) {
      if (value === undefined) continue;
      const key = name.toLowerCase();
      // As `Headers` would: two spellings of one name are one header with both values.
      record[key] = record[key] === undefined ? String(value) : `${record[key]}, ${String(value)}`;
    }
    return record;
  }
  new Headers(init).forEach((value, name) => (record[name] = value));
  return record;
}
