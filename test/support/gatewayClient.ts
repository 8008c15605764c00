// The checks below are jest's: this file is used by tests only, but test/support is also built with node types alone.
/// <reference types="jest" />
/**
 * The gateway's HTTP API as a caller uses it, for the tests that go through a functions host: one place that knows
 * the routes, the function key and what an answer looks like, so that each test says only what it sends and what it
 * expects back.
 */
import type { FunctionsHostProcess } from './functionsHost';

/** An answer of the gateway: the status, the headers, and the body parsed as JSON (or `{ text }` when it is not). */
export interface GatewayAnswer<B = Record<string, unknown>> {
  /** The HTTP status. */
  status: number;
  /** The answer's headers. */
  headers: Headers;
  /** The body parsed as JSON, or `{ text }` when it is not JSON (an empty body too). */
  body: B;
  /** The body as it came. */
  text: string;
  /** The URL answered (what a problem's relative `type` resolves against). */
  url: string;
}

/** A request body: an object is sent as JSON; a string, a Buffer or a stream is sent as it is. */
export type GatewayBody = unknown;

/** How a request is made. */
export interface RequestOptions {
  /** Sent after the client's own headers and replacing them by name (an empty value sends the header empty). */
  headers?: Record<string, string>;
  /** The key sent as `x-functions-key` (default: the host's function key; `null` sends none). */
  key?: string | null;
}

/** How a send is made: `wait` asks the gateway to wait up to that many seconds for the outcome (`Prefer: wait=N`). */
export interface SendOptions extends RequestOptions {
  /** Seconds the gateway may wait for the outcome before answering 202 (default: the client's `wait`, else none). */
  wait?: number;
}

/** The gateway's HTTP API on one functions host. */
export interface GatewayClient {
  /** The host this client calls. */
  readonly host: FunctionsHostProcess;
  /**
   * Any call: `path` from the origin (e.g. `/api/mailboxes`), with the function key and
   * `content-type: application/json` unless `options` say otherwise.
   */
  request<B = Record<string, unknown>>(
    method: string,
    path: string,
    body?: GatewayBody,
    options?: RequestOptions,
  ): Promise<GatewayAnswer<B>>;
  /** POST /api/mail/send. */
  send<B = Record<string, unknown>>(body: GatewayBody, options?: SendOptions): Promise<GatewayAnswer<B>>;
  /**
   * POST /api/mailboxes/{mailbox}/messages/{id}/reply: answered as a send is (`wait` as for `send`). `mailbox` and
   * `id` go into the path as given.
   */
  reply<B = Record<string, unknown>>(
    mailbox: string,
    id: string,
    body: GatewayBody,
    options?: SendOptions,
  ): Promise<GatewayAnswer<B>>;
  /** POST /api/mailboxes/{mailbox}/messages/{id}/forward, as `reply`. */
  forward<B = Record<string, unknown>>(
    mailbox: string,
    id: string,
    body: GatewayBody,
    options?: SendOptions,
  ): Promise<GatewayAnswer<B>>;
  /** GET /api/mail/{id}: the answer as it came (see `mailStatus` for the body of a 200). */
  status<B = Record<string, unknown>>(id: string, options?: RequestOptions): Promise<GatewayAnswer<B>>;
  /** GET /api/mail/{id}, expecting 200: the mail's status document. */
  mailStatus<B = Record<string, unknown>>(id: string): Promise<B>;
  /** GET /api/health, anonymous as a load balancer's probe is. */
  health<B = Record<string, unknown>>(): Promise<GatewayAnswer<B>>;
  /** GET /api/diagnostics, with the host's master key (an admin's call). */
  diagnostics<B = Record<string, unknown>>(): Promise<GatewayAnswer<B>>;
  /**
   * PUT /api/mailboxes/{mailbox}: watch it (`body` as the API takes it, none by default). The mailbox methods put
   * `mailbox` into the path as given: a test that means to send an odd address encodes it itself.
   */
  watch<B = Record<string, unknown>>(mailbox: string, body?: GatewayBody): Promise<GatewayAnswer<B>>;
  /** GET /api/mailboxes/{mailbox}. */
  mailbox<B = Record<string, unknown>>(mailbox: string): Promise<GatewayAnswer<B>>;
  /** GET /api/mailboxes. */
  mailboxes<B = Record<string, unknown>>(): Promise<GatewayAnswer<B>>;
  /** DELETE /api/mailboxes/{mailbox}: stop watching it. */
  unwatch<B = Record<string, unknown>>(mailbox: string): Promise<GatewayAnswer<B>>;
  /** GET /api/mailboxes/{mailbox}/messages with `query` (folder, since, unread, top, cursor). */
  messages<B = Record<string, unknown>>(mailbox: string, query?: Record<string, string>): Promise<GatewayAnswer<B>>;
  /** GET /api/mailboxes/{mailbox}/messages/{id} with `query` (body, unique, headers); `id` goes into the path as given. */
  message<B = Record<string, unknown>>(
    mailbox: string,
    id: string,
    query?: Record<string, string>,
  ): Promise<GatewayAnswer<B>>;
  /** PATCH /api/mailboxes/{mailbox}/messages/{id}. */
  updateMessage<B = Record<string, unknown>>(mailbox: string, id: string, body: GatewayBody): Promise<GatewayAnswer<B>>;
  /** POST /api/mailboxes/{mailbox}/messages/{id}/move. */
  moveMessage<B = Record<string, unknown>>(mailbox: string, id: string, body: GatewayBody): Promise<GatewayAnswer<B>>;
  /** DELETE /api/mailboxes/{mailbox}/messages/{id}. */
  deleteMessage<B = Record<string, unknown>>(mailbox: string, id: string): Promise<GatewayAnswer<B>>;
  /**
   * GET /api/mailboxes/{mailbox}/messages/{id}/attachments/{attachmentId}: the raw answer, its body unread, so that a
   * test reads a download as it streams.
   */
  attachment(mailbox: string, id: string, attachmentId: string): Promise<Response>;
  /** GET /api/mailboxes/{mailbox}/messages/{id}/mime: the raw answer, its body unread. */
  mime(mailbox: string, id: string): Promise<Response>;
}

/** What every send of a client does unless told otherwise. */
export interface ClientDefaults {
  /** `Prefer: wait=N` on every send (a send's own `wait`, or its own `prefer` header, replaces it). */
  wait?: number;
}

/** A client for the gateway on `host` (its plain HTTP origin, with its function key). */
export function gatewayClient(host: FunctionsHostProcess, defaults: ClientDefaults = {}): GatewayClient {
  const request = async <B>(
    method: string,
    path: string,
    body?: GatewayBody,
    options: RequestOptions = {},
  ): Promise<GatewayAnswer<B>> => {
    const headers = new Headers({ 'content-type': 'application/json' });
    const key = options.key === undefined ? host.functionKey : options.key;
    if (key !== null) headers.set('x-functions-key', key);
    // Set one by one: a caller's header replaces the client's whatever its case, instead of being added to it.
    for (const [name, value] of Object.entries(options.headers ?? {})) headers.set(name, value);
    const init: RequestInit & { duplex?: 'half' } = { method, headers, body: encode(body) };
    // fetch sends a stream only when told that the request is sent before the answer is read.
    if (body instanceof ReadableStream) init.duplex = 'half';
    const res = await fetch(`${host.url}${path}`, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: parse(text) as B, text, url: res.url };
  };
  const download = (path: string): Promise<Response> =>
    fetch(`${host.url}${path}`, { headers: { 'x-functions-key': host.functionKey } });
  const status = <B>(id: string, options?: RequestOptions) => request<B>('GET', `/api/mail/${id}`, undefined, options);
  // A send and its kin: `Prefer: wait` from the call's `wait`, else the client's.
  const accept = <B>(path: string, body: GatewayBody, { wait = defaults.wait, ...options }: SendOptions = {}) =>
    request<B>('POST', path, body, {
      ...options,
      headers: { ...(wait === undefined ? {} : { prefer: `wait=${wait}` }), ...options.headers },
    });
  return {
    host,
    request,
    send: (body, options) => accept('/api/mail/send', body, options),
    reply: (mailbox, id, body, options) => accept(`/api/mailboxes/${mailbox}/messages/${id}/reply`, body, options),
    forward: (mailbox, id, body, options) => accept(`/api/mailboxes/${mailbox}/messages/${id}/forward`, body, options),
    status,
    mailStatus: async <B>(id: string) => {
      const answer = await status<B>(id);
      expect(answer.status).toBe(200);
      return answer.body;
    },
    health: () => request('GET', '/api/health', undefined, { key: null }),
    diagnostics: () => request('GET', '/api/diagnostics', undefined, { key: host.masterKey }),
    watch: (mailbox, body) => request('PUT', `/api/mailboxes/${mailbox}`, body),
    mailbox: (mailbox) => request('GET', `/api/mailboxes/${mailbox}`),
    mailboxes: () => request('GET', '/api/mailboxes'),
    unwatch: (mailbox) => request('DELETE', `/api/mailboxes/${mailbox}`),
    messages: (mailbox, query = {}) => request('GET', `/api/mailboxes/${mailbox}/messages${queryString(query)}`),
    message: (mailbox, id, query = {}) =>
      request('GET', `/api/mailboxes/${mailbox}/messages/${id}${queryString(query)}`),
    updateMessage: (mailbox, id, body) => request('PATCH', `/api/mailboxes/${mailbox}/messages/${id}`, body),
    moveMessage: (mailbox, id, body) => request('POST', `/api/mailboxes/${mailbox}/messages/${id}/move`, body),
    deleteMessage: (mailbox, id) => request('DELETE', `/api/mailboxes/${mailbox}/messages/${id}`),
    attachment: (mailbox, id, attachmentId) =>
      download(`/api/mailboxes/${mailbox}/messages/${id}/attachments/${attachmentId}`),
    mime: (mailbox, id) => download(`/api/mailboxes/${mailbox}/messages/${id}/mime`),
  };
}

/**
 * Checks that `answer` is a problem (RFC 9457) with `status`: the problem+json content type, `status`, a `type`
 * under `/problems/` and a `title` in the body, and no stack trace anywhere in it.
 */
export function expectProblem(answer: GatewayAnswer<unknown>, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  expect(answer.body).toMatchObject({
    status,
    type: expect.stringContaining('/problems/') as unknown,
    title: expect.any(String) as unknown,
  });
  expect(JSON.stringify(answer.body)).not.toMatch(/\bat .+\.(js|ts):\d+/); // no stack trace
}

function queryString(query: Record<string, string>): string {
  const search = new URLSearchParams(query).toString();
  return search === '' ? '' : `?${search}`;
}

function encode(body: GatewayBody): RequestInit['body'] {
  if (body === undefined) return undefined;
  if (typeof body === 'string' || Buffer.isBuffer(body) || body instanceof ReadableStream)
    return body as RequestInit['body'];
  return JSON.stringify(body);
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { text };
  }
}
