/**
 * Builds the Microsoft Graph client: `@microsoft/microsoft-graph-client` with the token helper's credential, the
 * cloud's (or overridden) Graph root, and the SDK's own middleware for what it already does well: a fresh
 * `client-request-id` per request (TelemetryHandler) and retries that honour `Retry-After`, fractional seconds
 * included (RetryHandler). One handler of our own: a token Graph calls invalid (revoked, expired early) is dropped
 * from the credential's cache and the call is made once more with a new token. Every Graph client of the process
 * sends over one bounded keep-alive pool (platform/http/connectionPools.ts): the last middleware (graphTransport.ts)
 * sends every request there with undici's `request`, and hands a download's body over as a Node stream.
 */
import {
  AuthenticationHandler,
  type AuthenticationProvider,
  Client,
  type Context,
  type Middleware,
  RedirectHandler,
  RedirectHandlerOptions,
  RetryHandler,
  RetryHandlerOptions,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import type { TokenCredential } from '@azure/identity';
import type { GatewayConfig } from '../platform/config';
import { GraphTransport } from './graphTransport';

/** Hosts the Graph SDK already treats as Graph (it attaches tokens and request ids only to Graph hosts). */
const SDK_GRAPH_HOSTS = new Set([
  'graph.microsoft.com',
  'graph.microsoft.us',
  'dod-graph.microsoft.us',
  'graph.microsoft.de',
  'microsoftgraph.chinacloudapi.cn',
  'canary.graph.microsoft.com',
]);

/** Retry policy for 429/503/504 answers. */
export interface GraphRetryPolicy {
  /** Retries after the first attempt (default 5, at most 10). */
  maxRetries?: number;
  /** Longest total wait per call in seconds; a retry that would exceed it is not made (default 30). */
  maxTotalWaitSeconds?: number;
}

/** Seconds a 429/503 answer asks to wait: `Retry-After` as seconds (fractional too) or an HTTP date. */
export function retryAfterSeconds(headers: { get(name: string): string | null } | undefined): number | undefined {
  const value = headers?.get('Retry-After');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** A credential that can forget a token Graph refused, so that the next `getToken` asks Entra for a new one. */
export interface TokenRejectionAware {
  tokenRejected(token: string): void;
}

function isTokenRejectionAware(credential: object): credential is TokenRejectionAware {
  return typeof (credential as Partial<TokenRejectionAware>).tokenRejected === 'function';
}

/**
 * Graph's `401 InvalidAuthenticationToken` on a token the cache still holds (revoked, or the clock says it is valid
 * but Graph does not): drop it and repeat the call once; the AuthenticationHandler after this one attaches a fresh
 * token. A second 401 reaches the caller.
 */
class RejectedTokenHandler implements Middleware {
  private next?: Middleware;

  constructor(private readonly credential: TokenRejectionAware) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    await this.next!.execute(context);
    const response = context.response;
    if (response?.status !== 401) return;
    const body = (await response
      .clone()
      .json()
      .catch(() => undefined)) as { error?: { code?: string } } | undefined;
    if (body?.error?.code !== 'InvalidAuthenticationToken') return;
    const token = takeBearerToken(context);
    if (token === undefined) return;
    this.credential.tokenRejected(token);
    await response.arrayBuffer().catch(() => undefined);
    context.response = undefined;
    await this.next!.execute(context);
  }
}

/** Removes the Authorization header the AuthenticationHandler set (it appends, never replaces) and returns its token. */
function takeBearerToken(context: Context): string | undefined {
  const headers = context.options?.headers;
  if (!headers) return undefined;
  let value: string | undefined;
  if (headers instanceof Headers) {
    value = headers.get('authorization') ?? undefined;
    headers.delete('authorization');
  } else if (!Array.isArray(headers)) {
    const record = headers as Record<string, string>;
    for (const name of Object.keys(record)) {
      if (name.toLowerCase() !== 'authorization') continue;
      value = record[name];
      delete record[name];
    }
  }
  return value?.replace(/^Bearer\s+/i, '');
}

/**
 * The token of each Graph call, from the credential. The SDK's `TokenCredentialAuthenticationProvider` does the same
 * but builds an `Error` (a captured stack trace) on every call in case it needs one: about 1 % of a message `GET`'s
 * CPU in the functions host.
 */
class CredentialTokens implements AuthenticationProvider {
  constructor(
    private readonly credential: TokenCredential,
    private readonly scope: string,
  ) {}

  async getAccessToken(): Promise<string> {
    const token = await this.credential.getToken(this.scope);
    if (!token) throw new Error(`the credential returned no token for ${this.scope}`);
    return token.token;
  }
}

/** Creates a Graph client for `config`'s cloud that authenticates with `credential`. */
export function createGraphClient(
  config: GatewayConfig,
  credential: TokenCredential,
  retry: GraphRetryPolicy = {},
): Client {
  const graphHost = new URL(config.endpoints.graphBaseUrl).hostname;
  const budget = retry.maxTotalWaitSeconds ?? 30;
  // The SDK keeps one options object per call across its retries: the key for "time already waited".
  const waited = new WeakMap<object, number>();
  const retryOptions = new RetryHandlerOptions(1, retry.maxRetries ?? 5, (delay, attempt, _req, options, response) => {
    const wait = retryAfterSeconds(response.headers) ?? delay * 2 ** attempt;
    const key = options ?? {};
    const spent = waited.get(key) ?? 0;
    // Waiting longer than the caller can afford is worse than answering "try later" now.
    if (spent + wait > budget) return false;
    waited.set(key, spent + wait);
    return true;
  });
  const authentication = new AuthenticationHandler(new CredentialTokens(credential, config.endpoints.graphScope));
  return Client.initWithMiddleware({
    baseUrl: config.endpoints.graphBaseUrl,
    defaultVersion: 'v1.0',
    middleware: [
      ...(isTokenRejectionAware(credential) ? [new RejectedTokenHandler(credential)] : []),
      authentication,
      new RetryHandler(retryOptions),
      new RedirectHandler(new RedirectHandlerOptions()),
      new TelemetryHandler(),
      new GraphTransport(),
    ],
    // The SDK sends neither the token nor a client-request-id to a Graph host it does not know.
    ...(SDK_GRAPH_HOSTS.has(graphHost) ? {} : { customHosts: new Set([graphHost]) }),
  });
}
