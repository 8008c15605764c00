/**
 * Can the gateway use its storage account? One cheap call per service on the gateway's own resources: a query of
 * at most one entity of its idempotency table and the properties of its notifications queue. A failure says which
 * service, whether it is unreachable or forbidden, and the role to assign.
 */
import type { GatewayConfig } from '../platform/config';
import { problem, type ProblemDocument } from '../platform/problem';
import { createQueueClient, createTableClient } from '../platform/storage';
import { isStorageTimeout, storageFailureOf, type StorageService } from '../platform/storageDeadline';
import { IDEMPOTENCY_TABLE } from '../outbox/accept/idempotencyStore';

/** The queue probed: the one Graph notifications go to (provisioned by infra/main.bicep). */
export const PROBE_QUEUE = 'graph-notifications';

/** One storage service's state. */
export interface StorageServiceCheck {
  service: 'table' | 'queue';
  /** The table or queue probed. */
  resource: string;
  status: 'ok' | 'failed';
  detail: string;
}

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
): { doc: ProblemDocument; headers: Record<string, string> } | undefined {
  const failure = storageFailureOf(err);
  if (!failure) return undefined;
  return {
    doc: problem(
      503,
      'storage-unavailable',
      'The gateway cannot use its storage account',
      `${explainStorageError(err, failure.service, failure.resource, config)} ${consequence}`,
      { dependency: 'storage' },
    ),
    headers: { 'retry-after': String(STORAGE_RETRY_AFTER_SECONDS) },
  };
}

/** Probes the table and queue services in parallel. */
export async function probeStorage(config: GatewayConfig): Promise<StorageServiceCheck[]> {
  const table = async (): Promise<StorageServiceCheck> => {
    const client = createTableClient(config, IDEMPOTENCY_TABLE, { probe: true });
    try {
      await client
        .listEntities({ queryOptions: { select: ['PartitionKey'] } })
        .byPage({ maxPageSize: 1 })
        .next();
      return ok('table', IDEMPOTENCY_TABLE, `Table '${IDEMPOTENCY_TABLE}' is readable.`);
    } catch (err) {
      // Authorised and reachable; the gateway creates the table on first use.
      if (restFailure(err).status === 404) {
        return ok('table', IDEMPOTENCY_TABLE, `Table storage answers; '${IDEMPOTENCY_TABLE}' is created on first use.`);
      }
      return failed('table', IDEMPOTENCY_TABLE, explainStorageError(err, 'table', IDEMPOTENCY_TABLE, config));
    }
  };
  const queue = async (): Promise<StorageServiceCheck> => {
    const client = createQueueClient(config, PROBE_QUEUE, { probe: true });
    try {
      await client.getProperties();
      return ok('queue', PROBE_QUEUE, `Queue '${PROBE_QUEUE}' is readable.`);
    } catch (err) {
      if (restFailure(err).status === 404) {
        return ok('queue', PROBE_QUEUE, `Queue storage answers; '${PROBE_QUEUE}' does not exist yet.`);
      }
      return failed('queue', PROBE_QUEUE, explainStorageError(err, 'queue', PROBE_QUEUE, config));
    }
  };
  return Promise.all([table(), queue()]);
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

const ok = (service: StorageServiceCheck['service'], resource: string, detail: string): StorageServiceCheck => ({
  service,
  resource,
  status: 'ok',
  detail,
});
const failed = (service: StorageServiceCheck['service'], resource: string, detail: string): StorageServiceCheck => ({
  service,
  resource,
  status: 'failed',
  detail,
});

/** Probes at most once per `ttlMs`, so `/api/health` stays cheap under frequent polling. */
export class CachedStorageProbe {
  private last?: { at: number; result: Promise<StorageServiceCheck[]> };

  constructor(
    private readonly probe: () => Promise<StorageServiceCheck[]>,
    private readonly ttlMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached result, or a fresh probe once it is older than the TTL (concurrent callers share one). */
  check(): Promise<StorageServiceCheck[]> {
    if (!this.last || this.now() - this.last.at >= this.ttlMs) {
      this.last = { at: this.now(), result: this.probe() };
    }
    return this.last.result;
  }
}
