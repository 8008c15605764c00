/**
 * HTTP streaming as the Functions host does it for a worker that asks for it (`app.setup({ enableHttpStream: true })`,
 * `@azure/functions` ≥ 4.3 on host ≥ 4.28): at start-up the host asks the programming model for its capabilities;
 * the library then starts its own HTTP proxy and answers with its address as `HttpUri`. For each HTTP invocation the
 * host sends the invocation (headers and route parameters in the trigger metadata, no body) and forwards the raw
 * request, body still streaming, to that address with the invocation's id in `x-ms-invocation-id`; the library pairs
 * the two, hands the handler an `HttpRequest` whose body is that stream, and writes the handler's response on the
 * proxied exchange, which the host relays to the client. Nothing is buffered on the way in either direction.
 */
import { Agent, request as httpRequest, Server, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { CoreProgrammingModel } from './coreShim';

/** The header pairing a forwarded request with its invocation (the library's `invocationIdHeader`). */
export const INVOCATION_ID_HEADER = 'x-ms-invocation-id';

/** The capability a worker announces its proxy's address with. */
const HTTP_URI_CAPABILITY = 'HttpUri';

/** What `getInvocationModel` returns: the worker drives one invocation through these steps. */
export interface CoreInvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: (...args: unknown[]) => unknown): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<unknown>;
}

/** The part of the worker's invocation context (`coreCtx`) the library reads. */
export interface CoreInvocationContext {
  invocationId: string;
  request: {
    inputData: { name: string; data: Record<string, unknown> }[];
    triggerMetadata: Record<string, { string?: string; json?: string }>;
  };
  metadata: { name: string; bindings: Record<string, unknown> };
  state: string | undefined;
  log(level: string, category: string, message: string): void;
}

/** A programming model that can stream HTTP (what `@azure/functions` registers). */
interface StreamingProgrammingModel extends CoreProgrammingModel {
  getCapabilities(capabilities: Record<string, string>): Promise<Record<string, string>>;
  getInvocationModel(coreCtx: CoreInvocationContext): CoreInvocationModel;
}

/** The address each programming model's proxy listens on: the library starts one proxy per call, and never stops it. */
const proxies = new WeakMap<object, Promise<string | undefined>>();

/**
 * Asks the app's programming model for its capabilities, as the worker does once it loaded the app, and returns the
 * proxy address when the app enabled HTTP streaming (undefined otherwise). The library's proxy lives as long as the
 * process, as in a worker; since the local host may start several times in one process (tests), it is asked once
 * per library instance, and its server is unref'd so that it never keeps a finished process alive.
 */
export function negotiateHttpStreaming(model: CoreProgrammingModel | undefined): Promise<string | undefined> {
  if (!model || typeof model.getCapabilities !== 'function') return Promise.resolve(undefined);
  const streaming = model as StreamingProgrammingModel;
  let negotiated = proxies.get(model);
  if (!negotiated) {
    negotiated = withServersUnrefd(() => streaming.getCapabilities({})).then((capabilities) => {
      const uri = capabilities[HTTP_URI_CAPABILITY];
      return typeof uri === 'string' && uri !== '' ? uri : undefined;
    });
    proxies.set(model, negotiated);
  }
  return negotiated;
}

/** The invocation model of one streamed HTTP invocation. */
export function streamingInvocationModel(
  model: CoreProgrammingModel | undefined,
  coreCtx: CoreInvocationContext,
): CoreInvocationModel {
  if (!model || typeof model.getInvocationModel !== 'function') {
    throw new Error('The app enabled HTTP streaming but registered no programming model');
  }
  return (model as StreamingProgrammingModel).getInvocationModel(coreCtx);
}

/** Runs `start` with every HTTP server that starts listening meanwhile (synchronously) unref'd. */
async function withServersUnrefd<T>(start: () => Promise<T>): Promise<T> {
  const prototype = Server.prototype as unknown as { listen: (...args: unknown[]) => Server };
  const hadOwn = Object.prototype.hasOwnProperty.call(prototype, 'listen');
  const listen = prototype.listen;
  prototype.listen = function listenUnrefd(this: Server, ...args: unknown[]): Server {
    return listen.apply(this, args).unref();
  };
  let started: Promise<T>;
  try {
    started = start();
  } finally {
    // Put back exactly what was there: http.Server normally inherits `listen` from net.Server.
    if (hadOwn) prototype.listen = listen;
    else delete (prototype as { listen?: unknown }).listen;
  }
  return started;
}

/** How forwarding a request's body to the worker ended. */
export type ForwardedBody = 'complete' | 'tooLarge' | 'aborted' | 'stopped';

/** One request forwarded to the worker's proxy. */
export interface ForwardedRequest {
  /** The worker's response, once it starts. */
  readonly response: Promise<IncomingMessage>;
  /** How the body's forwarding ended: all sent, over `limit`, the client hung up, or stopped by the host. */
  readonly body: Promise<ForwardedBody>;
  /** Stops forwarding the body (the rest is discarded); the worker's response still arrives. */
  stopForwarding(): void;
  /** Bytes of the body handed to the worker so far (what the handler could have read, with the buffers between). */
  forwardedBytes(): number;
  /** Stops forwarding and tears the proxied exchange down (the handler's body stream then fails, if still read). */
  abort(): void;
}

/** Connections retired from the pool: they carried a body the worker may not have read to the end. */
const retired = new WeakSet<Duplex>();

/**
 * Keep-alive connections to the worker's proxy, reused across requests as the Functions host does, instead of a new
 * connection (and a `localhost` lookup) per request. A connection is pooled again only after a request without a
 * body (`retired` otherwise: the worker may not have read the body to the end, and would read the next request as
 * its rest). No socket limit: with one, Node hands a freed socket to a waiting request without asking `keepSocketAlive`.
 */
class WorkerAgent extends Agent {
  override keepSocketAlive(socket: Duplex): void | boolean {
    if (retired.has(socket)) return false;
    return super.keepSocketAlive(socket);
  }
}
// `timeout`: an idle connection is closed here after 4 s, before the worker's server (Node's 5 s keep-alive timeout)
// closes it. Otherwise a request could go out on a connection the server is closing at that moment (ECONNRESET
// before the worker saw it), and the library would wait for that invocation's request for ever.
const workerAgent = new WorkerAgent({ keepAlive: true, maxFreeSockets: 16, timeout: 4_000 });

/**
 * Forwards `req` to the worker's proxy at `proxyUri` for invocation `invocationId`, streaming its body with
 * backpressure and counting it against `limit` (as the host's request size limit applies to a streamed body too).
 */
export function forwardToWorker(
  proxyUri: string,
  invocationId: string,
  req: IncomingMessage,
  publicUrl: URL,
  limit: number,
): ForwardedRequest {
  const target = new URL(`${publicUrl.pathname}${publicUrl.search}`, proxyUri);
  // The library announces `localhost`; its proxy listens on every address, so skip the lookup (and the IPv6 try).
  if (target.hostname === 'localhost') target.hostname = '127.0.0.1';
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  headers[INVOCATION_ID_HEADER] = invocationId;
  headers['x-forwarded-host'] = publicUrl.host;
  headers['x-forwarded-proto'] = publicUrl.protocol.replace(/:$/, '');

  const proxied = httpRequest(target, { method: req.method, headers, agent: workerAgent });
  let bodySent = false;
  // Only a request without a body leaves nothing behind for sure: a body can go out whole while the handler stops
  // reading it (a refusal), and the worker would then read the next request on this connection as that body's rest.
  const bodiless =
    req.headers['transfer-encoding'] === undefined &&
    (req.headers['content-length'] === undefined || req.headers['content-length'] === '0');
  // A handler that answers before it read the whole body (a refusal) leaves the rest unread on the worker's side: that
  // connection is closed once the exchange is over, never pooled (see `workerAgent`).
  const retire = (): void => {
    if (proxied.socket) retired.add(proxied.socket);
  };
  proxied.once('response', () => {
    if (!bodySent) retire();
  });
  let settle: (outcome: ForwardedBody) => void = () => undefined;
  const body = new Promise<ForwardedBody>((resolve) => {
    let settled = false;
    settle = (outcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    proxied.once('response', resolve);
    proxied.once('error', reject);
  });
  // The worker may answer before it read the whole body (a refusal): a rejection nobody awaits must not crash.
  response.catch(() => undefined);

  let size = 0;
  const stop = (outcome: ForwardedBody): void => {
    req.off('data', onData);
    settle(outcome);
    proxied.destroy();
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      stop('tooLarge');
      return;
    }
    if (!proxied.write(chunk)) {
      req.pause();
      proxied.once('drain', () => req.resume());
    }
  };
  req.on('data', onData);
  req.once('end', () => {
    proxied.end(() => {
      bodySent = true;
    });
    settle('complete');
  });
  // Node reports a client hanging up mid-body as an "aborted" error, or as a close before the message completed.
  const clientLeft = (): void => {
    if (!req.complete) stop('aborted');
  };
  req.once('error', clientLeft);
  req.once('close', clientLeft);
  proxied.on('error', () => settle('stopped'));

  const stopForwarding = (): void => {
    // Retiring the connection of a request without a body would cost every such request a new connection.
    if (!bodiless) retire();
    req.off('data', onData);
    settle('stopped');
    // Let Node discard whatever the client still sends, so that its connection can answer.
    req.resume();
  };
  return {
    response,
    body,
    stopForwarding,
    forwardedBytes: () => size,
    abort: () => {
      stopForwarding();
      // A finished exchange has already handed its connection back to the pool (destroying the request is then a
      // no-op); an unfinished one is torn down here.
      proxied.destroy();
    },
  };
}

/**
 * Relays the worker's response to the client: status, headers (without the invocation id the host and worker pair
 * them by) and the body as it streams.
 */
export async function relayResponse(response: IncomingMessage, res: ServerResponse): Promise<void> {
  const headers: [string, string][] = [];
  const raw = response.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name !== INVOCATION_ID_HEADER && !HOP_BY_HOP.has(name)) headers.push([raw[i], raw[i + 1]]);
  }
  res.writeHead(response.statusCode ?? 500, headers.flat());
  // `pipe` with its ends watched here, not `stream.pipeline`: that one aborts an AbortController of its own when it
  // finishes, and Node builds a DOMException (stack trace included) for every abort, once per request.
  await new Promise<void>((resolve) => {
    res.once('finish', resolve);
    // A client that left mid-response ends the relay; there is nobody left to tell.
    res.once('close', () => {
      if (!res.writableFinished) response.destroy();
      resolve();
    });
    // The worker's side broke off mid-response: the client must not take a cut body for a whole one.
    const broken = (): void => {
      if (!response.complete) res.destroy();
      resolve();
    };
    response.once('error', broken);
    response.once('close', broken);
    response.pipe(res);
  });
}

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
