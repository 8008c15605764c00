/**
 * The HTTP front door, behaving like `func start` / the Functions host: `/{routePrefix}/{route}` routing by the
 * registered route templates and methods, function/admin key checks, a request size limit, real `HttpRequest`
 * objects for handlers, and their `HttpResponseInit` / `HttpResponse` results written back to the client.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cookie, HttpResponse as LibraryHttpResponse } from '@azure/functions';
import { describeError, type FunctionsLibrary, type HostLogger, type InvocationOutcome } from './invoker';
import { forwardToWorker, relayResponse } from './httpStreaming';
import { RETURN_BINDING, type FunctionEntry } from './registry';
import { compareRoutePrecedence, splitPath } from './routes';

/** Dependencies of an `HttpDispatcher`. */
export interface HttpDispatcherOptions {
  library: FunctionsLibrary;
  entries: readonly FunctionEntry[];
  routePrefix: string;
  functionKey: string;
  masterKey: string;
  maxRequestBodyBytes: number;
  /** Origin used when a request carries no Host header. */
  fallbackOrigin: () => string;
  invoke: (entry: FunctionEntry, request: unknown) => Promise<InvocationOutcome>;
  /** Runs a non-HTTP function for `POST /admin/functions/{name}`; false when no such function exists. */
  runNonHttp: (name: string, input: string | undefined) => boolean;
  logger: HostLogger;
  /**
   * Set when the app enabled HTTP streaming: the worker's proxy address, and how to run a streamed invocation
   * (`triggerMetadata` carries the headers and route parameters, as the host sends them with the invocation).
   */
  streaming?: {
    proxyUri: string;
    invoke: (
      entry: FunctionEntry,
      invocationId: string,
      triggerMetadata: Record<string, { string?: string; json?: string }>,
    ) => Promise<InvocationOutcome>;
  };
}

type Outcome = 'ok' | 'tooLarge' | 'aborted';

/** Handles requests for one host. */
export class HttpDispatcher {
  readonly #options: HttpDispatcherOptions;
  readonly #routes: FunctionEntry[];
  /** The host keys' digests, computed once rather than on every request. */
  readonly #masterKeyDigest: Buffer;
  readonly #functionKeyDigest: Buffer;
  #stopping = false;

  constructor(options: HttpDispatcherOptions) {
    this.#options = options;
    this.#masterKeyDigest = sha256(options.masterKey);
    this.#functionKeyDigest = sha256(options.functionKey);
    // Most specific template first, as ASP.NET routing orders candidates; Array.prototype.sort is stable.
    this.#routes = options.entries
      .filter((e) => e.route)
      .sort((a, b) => (a.route && b.route ? compareRoutePrecedence(a.route, b.route) : 0));
  }

  /** Requests arriving on kept-alive connections after this get 503. */
  beginStop(): void {
    this.#stopping = true;
  }

  /** The node:http request listener. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.#handle(req, res).catch((err: unknown) => {
      this.#options.logger('error', `Unhandled error serving ${req.method ?? '?'} request: ${describeError(err)}`);
      if (!res.headersSent) sendInternalError(res);
      else res.destroy();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.#stopping) {
      res.writeHead(503, { connection: 'close', 'content-length': 0 }).end();
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const url = this.#requestUrl(req);
    if (!url) {
      sendEmpty(res, 400);
      return;
    }

    if (/^\/admin\/functions\/[^/]+\/?$/i.test(url.pathname)) {
      await this.#handleAdminInvoke(req, res, url, method);
      return;
    }

    const prefix = this.#options.routePrefix.toLowerCase();
    const lowerPath = url.pathname.toLowerCase();
    let rest: string;
    if (prefix === '') rest = url.pathname;
    else if (lowerPath === `/${prefix}` || lowerPath.startsWith(`/${prefix}/`))
      rest = url.pathname.slice(prefix.length + 1);
    else {
      sendEmpty(res, 404);
      return;
    }
    const segments = splitPath(rest);
    if (!segments) {
      sendEmpty(res, 400);
      return;
    }

    // The Functions host routes by template and method together: a known path with another method matches no
    // function and gets the same empty 404 as an unknown path (no 405, no Allow), before any key is looked at.
    let selected: { entry: FunctionEntry; params: Record<string, string> } | undefined;
    for (const entry of this.#routes) {
      const params = entry.route?.match(segments);
      if (!params || entry.info.triggerType !== 'http') continue;
      const methods = entry.info.methods;
      if (!methods || methods.includes(method)) {
        selected = { entry, params };
        break;
      }
    }
    if (!selected) {
      sendEmpty(res, 404);
      return;
    }

    const { entry, params } = selected;
    if (entry.info.triggerType !== 'http' || !this.#authorized(entry.info.authLevel, req, url)) {
      sendEmpty(res, 401);
      return;
    }
    if (this.#options.streaming) {
      await this.#handleStreamed(this.#options.streaming, entry, params, req, res, url);
      return;
    }

    const body = await readBody(req, this.#options.maxRequestBodyBytes);
    if (body === 'tooLarge') {
      sendEmpty(res, 413);
      return;
    }
    if (body === 'aborted') {
      this.#clientLeft(req, res, url);
      return;
    }

    let request: unknown;
    try {
      request = new this.#options.library.HttpRequest({
        method,
        url: url.toString(),
        headers: flattenHeaders(req),
        params,
        // Bytes rather than a string: a string body would make the native Request invent a text/plain content type.
        body: body.length > 0 ? { bytes: body } : undefined,
      });
    } catch (err) {
      this.#options.logger('warning', `[${entry.info.name}] Rejected malformed request: ${describeError(err)}`);
      sendEmpty(res, 400);
      return;
    }

    let outcome: InvocationOutcome;
    try {
      outcome = await this.#options.invoke(entry, request);
    } catch {
      // The invoker logged the error with its stack; the client learns nothing about it.
      sendInternalError(res);
      return;
    }
    const value =
      entry.httpOutputBinding === undefined || entry.httpOutputBinding === RETURN_BINDING
        ? outcome.result
        : outcome.context.extraOutputs.get(entry.httpOutputBinding);
    try {
      await writeHttpResult(this.#options.library, value, res);
    } catch (err) {
      this.#options.logger('error', `[${entry.info.name}] Invalid HTTP response: ${describeError(err)}`);
      if (!res.headersSent) sendInternalError(res);
      else res.destroy();
    }
  }

  /**
   * Serves a request through the worker's HTTP proxy: the invocation starts at once, with the body still arriving;
   * the body is forwarded as it comes and the worker's response relayed as it comes. The size limit still applies:
   * a body that outgrows it mid-stream gets 413 and the forwarding stops (the handler's body stream then fails).
   */
  async #handleStreamed(
    streaming: NonNullable<HttpDispatcherOptions['streaming']>,
    entry: FunctionEntry,
    params: Record<string, string>,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.#options.maxRequestBodyBytes) {
      sendEmpty(res, 413);
      return;
    }
    const invocationId = randomUUID();
    const forwarded = forwardToWorker(streaming.proxyUri, invocationId, req, url, this.#options.maxRequestBodyBytes);
    // The host answers for the body's fate at once: the client is not kept waiting for a handler it outgrew.
    const bodyFate = forwarded.body.then((fate) => {
      if (fate === 'tooLarge' && !res.headersSent) sendEmpty(res, 413);
      if (fate === 'aborted') this.#clientLeft(req, res, url);
      return fate;
    });
    const triggerMetadata: Record<string, { string?: string; json?: string }> = {
      Headers: { json: JSON.stringify(flattenHeaders(req)) },
    };
    for (const [name, value] of Object.entries(params)) triggerMetadata[name] = { string: value };

    const invocation = streaming.invoke(entry, invocationId, triggerMetadata);
    // The library writes the handler's response on the proxied exchange and ends the invocation only once the whole
    // body is written; as the Functions host does, relay the response as soon as it starts, so that a streamed body
    // (a download) reaches the client while the handler still produces it instead of piling up in the worker.
    const ended = invocation.then(
      () => undefined,
      () => undefined,
    );
    const early = await Promise.race([
      forwarded.response.then(
        (r) => r,
        () => undefined,
      ),
      ended,
    ]);
    if (early) {
      // Tests of handlers that refuse a body early read how much of it reached the worker (not what the client
      // wrote: the host discards the rest at memory speed until the client sees the answer).
      this.#options.logger(
        'debug',
        `[${entry.info.name}] The worker answered ${early.statusCode ?? '?'} after ${forwarded.forwardedBytes()} bytes of the request body were forwarded`,
      );
      if (res.headersSent || res.destroyed) {
        forwarded.abort();
      } else {
        forwarded.stopForwarding();
        await relayResponse(early, res);
        forwarded.abort();
      }
      await ended;
      await bodyFate;
      return;
    }
    let outcome: InvocationOutcome;
    try {
      outcome = await invocation;
    } catch {
      // The invoker logged the error with its stack; the client learns nothing about it.
      forwarded.abort();
      if (!res.headersSent && !res.destroyed) sendInternalError(res);
      return;
    }
    const value =
      entry.httpOutputBinding === undefined || entry.httpOutputBinding === RETURN_BINDING
        ? outcome.result
        : outcome.context.extraOutputs.get(entry.httpOutputBinding);
    if (value === undefined || value === null) {
      // The library writes no response for an empty result; the host answers 204, as without streaming.
      forwarded.abort();
      if (!res.headersSent && !res.destroyed) sendEmpty(res, 204);
      return;
    }
    let response: IncomingMessage;
    try {
      response = await forwarded.response;
    } catch (err) {
      if (!res.headersSent && !res.destroyed) {
        this.#options.logger('error', `[${entry.info.name}] The worker's response was lost: ${describeError(err)}`);
        sendInternalError(res);
      }
      return;
    }
    if (res.headersSent || res.destroyed) {
      forwarded.abort();
      return;
    }
    this.#options.logger(
      'debug',
      `[${entry.info.name}] The worker answered ${response.statusCode ?? '?'} after ${forwarded.forwardedBytes()} bytes of the request body were forwarded`,
    );
    // The worker may answer before it read the whole body (a refusal): stop forwarding what it will not read.
    forwarded.stopForwarding();
    await relayResponse(response, res);
    forwarded.abort();
    await bodyFate;
  }

  /** `POST /admin/functions/{name}` with the master key runs a timer or queue function, as the Functions host allows. */
  async #handleAdminInvoke(req: IncomingMessage, res: ServerResponse, url: URL, method: string): Promise<void> {
    if (!this.#keyMatches(keyDigest(presentedKey(req, url)), this.#masterKeyDigest)) {
      sendEmpty(res, 401);
      return;
    }
    if (method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-length': 0 }).end();
      return;
    }
    const body = await readBody(req, this.#options.maxRequestBodyBytes);
    if (body === 'tooLarge') {
      sendEmpty(res, 413);
      return;
    }
    if (body === 'aborted') {
      this.#clientLeft(req, res, url);
      return;
    }
    let input: string | undefined;
    if (body.length > 0) {
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { input?: unknown };
        input = typeof parsed.input === 'string' ? parsed.input : undefined;
      } catch {
        sendEmpty(res, 400);
        return;
      }
    }
    const name = decodeURIComponent(url.pathname.replace(/\/$/, '').split('/').pop() ?? '');
    sendEmpty(res, this.#options.runNonHttp(name, input) ? 202 : 404);
  }

  /** A client that hangs up mid-body is routine (a timeout, a cancelled upload): one info line, nothing to answer. */
  #clientLeft(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.#options.logger(
      'information',
      `Client disconnected before sending the whole ${req.method ?? '?'} ${url.pathname} request body`,
    );
    res.destroy();
  }

  #authorized(level: 'anonymous' | 'function' | 'admin', req: IncomingMessage, url: URL): boolean {
    if (level === 'anonymous') return true;
    const key = keyDigest(presentedKey(req, url));
    if (this.#keyMatches(key, this.#masterKeyDigest)) return true;
    return level === 'function' && this.#keyMatches(key, this.#functionKeyDigest);
  }

  /** `presented` is the digest of the key a request presented (see {@link keyDigest}); `expected`, of a host key. */
  #keyMatches(presented: Buffer | undefined, expected: Buffer): boolean {
    return presented !== undefined && timingSafeEqual(presented, expected);
  }

  #requestUrl(req: IncomingMessage): URL | undefined {
    const raw = req.url ?? '/';
    try {
      if (!raw.startsWith('/')) return new URL(raw);
      const host = req.headers.host;
      const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
      return new URL(raw, host ? `${scheme}://${host}` : this.#options.fallbackOrigin());
    } catch {
      return undefined;
    }
  }
}

/**
 * Keys are compared by their SHA-256 (equal-length inputs, so the comparison time says nothing about the key); the
 * digest of a presented key, once per request however many keys it is compared with; undefined when none was.
 */
function keyDigest(presented: string | undefined): Buffer | undefined {
  return presented === undefined || presented === '' ? undefined : sha256(presented);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The key a caller presented: the `x-functions-key` header, else the `code` query parameter. */
function presentedKey(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers['x-functions-key'];
  if (typeof header === 'string' && header !== '') return header;
  return url.searchParams.get('code') ?? undefined;
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/**
 * Reads the whole body, or reports it too large (by Content-Length up front, or while streaming), or reports that
 * the client went away before sending all of it.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'tooLarge' | 'aborted'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    // Node discards the unread body after the response, keeping the connection usable.
    return Promise.resolve('tooLarge');
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let outcome: Outcome = 'ok';
    const onData = (chunk: Buffer): void => {
      if (outcome === 'tooLarge') return;
      size += chunk.length;
      if (size > limit) {
        outcome = 'tooLarge';
        chunks.length = 0;
        resolve('tooLarge');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (outcome === 'ok') resolve(Buffer.concat(chunks));
    });
    // Node reports a client hanging up mid-body as an "aborted" error, or as a close before the message completed.
    const abort = (): void => {
      if (outcome !== 'ok' || req.complete) return;
      outcome = 'aborted';
      chunks.length = 0;
      resolve('aborted');
    };
    req.once('error', abort);
    req.once('close', abort);
  });
}

/**
 * Writes a handler result: nothing means 204 (as the Functions host answers), a plain object is an `HttpResponseInit`
 * that the library's own `HttpResponse` interprets (so every body kind behaves as in Azure), and an `HttpResponse`
 * is used as is. Like the worker without HTTP streaming, the body is buffered before it is sent.
 */
export async function writeHttpResult(library: FunctionsLibrary, value: unknown, res: ServerResponse): Promise<void> {
  if (value === undefined || value === null) {
    sendEmpty(res, 204);
    return;
  }
  if (typeof value !== 'object') {
    throw new TypeError(
      'The HTTP response must be an object with optional properties "body", "status", "headers", and "cookies".',
    );
  }
  const response: LibraryHttpResponse = value instanceof library.HttpResponse ? value : new library.HttpResponse(value);
  const body = Buffer.from(await response.arrayBuffer());
  const headers: [string, string][] = [];
  response.headers.forEach((headerValue, name) => {
    if (name !== 'set-cookie') headers.push([name, headerValue]);
  });
  for (const cookie of response.headers.getSetCookie()) headers.push(['set-cookie', cookie]);
  for (const cookie of response.cookies) headers.push(['set-cookie', serializeCookie(cookie)]);
  const status = response.status;
  const bodyless = status === 204 || status === 304;
  if (!bodyless) headers.push(['content-length', String(body.length)]);
  res.writeHead(status, headers.flat());
  res.end(bodyless ? undefined : body);
}

function serializeCookie(cookie: Cookie): string {
  let text = `${cookie.name}=${cookie.value}`;
  if (cookie.domain) text += `; Domain=${cookie.domain}`;
  if (cookie.path) text += `; Path=${cookie.path}`;
  if (cookie.expires !== undefined) text += `; Expires=${new Date(cookie.expires).toUTCString()}`;
  if (cookie.maxAge !== undefined) text += `; Max-Age=${cookie.maxAge}`;
  if (cookie.secure) text += '; Secure';
  if (cookie.httpOnly) text += '; HttpOnly';
  if (cookie.sameSite) text += `; SameSite=${cookie.sameSite}`;
  return text;
}

function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, status === 204 ? {} : { 'content-length': 0 }).end();
}

function sendInternalError(res: ServerResponse): void {
  const body = JSON.stringify({ error: 'Internal server error' });
  res.writeHead(500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}
