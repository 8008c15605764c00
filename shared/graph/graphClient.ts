/**
 * Builds the Microsoft Graph client: `@microsoft/microsoft-graph-client` with the token helper's credential, the
 * cloud's (or overridden) Graph root, and the SDK's own middleware for what it already does well: a fresh
 * `client-request-id` per request (TelemetryHandler) and retries that honour `Retry-After`, fractional seconds
 * included (RetryHandler).
 */
import {
  AuthenticationHandler,
  Client,
  HTTPMessageHandler,
  RedirectHandler,
  RedirectHandlerOptions,
  RetryHandler,
  RetryHandlerOptions,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import type { TokenCredential } from '@azure/identity';
import type { GatewayConfig } from '../platform/config';

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
  const authentication = new AuthenticationHandler(
    new TokenCredentialAuthenticationProvider(credential, { scopes: [config.endpoints.graphScope] }),
  );
  return Client.initWithMiddleware({
    baseUrl: config.endpoints.graphBaseUrl,
    defaultVersion: 'v1.0',
    middleware: [
      authentication,
      new RetryHandler(retryOptions),
      new RedirectHandler(new RedirectHandlerOptions()),
      new TelemetryHandler(),
      new HTTPMessageHandler(),
    ],
    // The SDK sends neither the token nor a client-request-id to a Graph host it does not know.
    ...(SDK_GRAPH_HOSTS.has(graphHost) ? {} : { customHosts: new Set([graphHost]) }),
  });
}
