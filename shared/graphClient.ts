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
import type { GatewayConfig } from './config';

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
  /** Retries after the first attempt (default 3, at most 10). */
  maxRetries?: number;
  /** Longest `Retry-After` the client will wait in seconds; a longer one is returned to the caller (default 60). */
  maxRetryAfterSeconds?: number;
}

/** Creates a Graph client for `config`'s cloud that authenticates with `credential`. */
export function createGraphClient(
  config: GatewayConfig,
  credential: TokenCredential,
  retry: GraphRetryPolicy = {},
): Client {
  const graphHost = new URL(config.endpoints.graphBaseUrl).hostname;
  const maxRetryAfter = retry.maxRetryAfterSeconds ?? 60;
  const retryOptions = new RetryHandlerOptions(3, retry.maxRetries ?? 3, (_d, _a, _req, _opts, response) => {
    // Waiting longer than the caller can afford is worse than answering "try later" now.
    const retryAfter = Number(response.headers.get('Retry-After'));
    return !(Number.isFinite(retryAfter) && retryAfter > maxRetryAfter);
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
