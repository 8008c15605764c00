/**
 * What a failed storage call means for an operator: which service refused or did not answer, whose identity, and the
 * role or setting to fix; and the `503 storage-unavailable` problem every route answers with. Never a key or a
 * connection string.
 */
import type { GatewayConfig } from '../config';
import { HttpProblem } from '../problems/httpProblem';
import { problem } from '../problems/problem';
import { isStorageTimeout, storageFailureOf, type StorageService } from './storageDeadline';

/** Roles the gateway's identity needs, per service. */
const ROLES: Record<StorageService, string> = {
  table: "'Storage Table Data Contributor'",
  queue:
    "'Storage Queue Data Contributor' (and 'Storage Queue Data Message Processor' for the Functions host's queue triggers)",
  blob: "'Storage Blob Data Contributor'",
};

const KINDS: Record<StorageService, string> = { table: 'Table', queue: 'Queue', blob: 'Blob' };

/** Seconds a caller should wait before retrying a request that failed on storage. */
export const STORAGE_RETRY_AFTER_SECONDS = 30;

/** Says what a storage failure means and what to fix; never a key or a connection string. */
export function explainStorageError(
  err: unknown,
  service: StorageService,
  resource: string,
  config: GatewayConfig,
): string {
  const kind = KINDS[service];
  const who =
    config.storage.kind === 'identity'
      ? config.storage.managedIdentityClientId
        ? `the managed identity (client id ${config.storage.managedIdentityClientId})`
        : 'the Function App identity'
      : 'the account key of the connection string';
  const { status, code } = restFailure(err);
  if (status === 403) {
    return `${kind} storage refused ${who} for '${resource}' (${code ?? 'Forbidden'}): assign it the role ${ROLES[service]} on the storage account, and allow a few minutes to propagate.`;
  }
  if (status === 401) {
    return `${kind} storage did not accept ${who} for '${resource}' (${code ?? 'Unauthorized'}): check AzureWebJobsStorage (__credential, __clientId) or the account key.`;
  }
  if (isStorageTimeout(err)) {
    return `${kind} storage unreachable (no answer within ${err.budgetMs / 1000} s) for '${resource}': check AzureWebJobsStorage (the ${service} endpoint) and the storage account's health and network rules.`;
  }
  if (status === undefined) {
    const reason = (err as { code?: string } | undefined)?.code ?? (err instanceof Error ? err.message : String(err));
    return `${kind} storage unreachable (${reason}): check AzureWebJobsStorage (the ${service} endpoint) and the storage account's network rules.`;
  }
  return `${kind} storage answered ${status} ${code ?? ''} for '${resource}'.`;
}

/**
 * The `503 storage-unavailable` problem for an error a storage call ended with (storage.ts tags them with their
 * service and resource), naming what to fix, with its `Retry-After`; undefined when `err` is not a storage failure.
 * `consequence` tells the caller what did not happen (e.g. "Nothing was sent.").
 */
export function storageUnavailableProblem(
  err: unknown,
  config: GatewayConfig,
  consequence: string,
): HttpProblem | undefined {
  const failure = storageFailureOf(err);
  if (!failure) return undefined;
  return new HttpProblem(
    problem(
      503,
      'storage-unavailable',
      'The gateway cannot use its storage account',
      `${explainStorageError(err, failure.service, failure.resource, config)} ${consequence}`,
      { dependency: 'storage' },
    ),
    { retryAfterSeconds: STORAGE_RETRY_AFTER_SECONDS },
  );
}

/**
 * The HTTP status and code of a storage SDK error. Duck-typed: the table and queue SDKs may each bundle their own
 * copy of `RestError`, so `instanceof` is not reliable across them.
 */
export function restFailure(err: unknown): { status?: number; code?: string } {
  const e = err as { statusCode?: unknown; code?: unknown } | undefined;
  return {
    status: typeof e?.statusCode === 'number' ? e.statusCode : undefined,
    code: typeof e?.code === 'string' ? e.code : undefined,
  };
}
