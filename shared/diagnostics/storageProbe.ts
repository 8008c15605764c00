/**
 * Can the gateway use its storage account? One cheap call per service on the gateway's own resources: a query of
 * at most one entity of its idempotency table and the properties of its notifications queue. A failure says which
 * service, whether it is unreachable or forbidden, and the role to assign.
 */
import type { GatewayConfig } from '../platform/config';
import { createQueueClient, createTableClient } from '../platform/storage/storage';
import { explainStorageError, restFailure } from '../platform/storage/storageErrors';
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
