/**
 * Idempotency-Key records in Table storage: the first request with a key claims it (an insert, which Table storage
 * makes atomic), later ones get the stored result, a different request (another canonical hash, see requestHash.ts)
 * gets a conflict. Records expire after `IDEMPOTENCY_TTL_HOURS`; an expired record is replaced, guarded by its ETag.
 */
import { createHash } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { RestError, type TableEntityResult } from '@azure/data-tables';
import type { GatewayConfig } from '../../platform/config';
import { createTableClient } from '../../platform/storage';
import { ensureTable } from '../../platform/tables';

/** Table holding the records. */
export const IDEMPOTENCY_TABLE = 'idempotency';

/** A stored outcome. */
export interface StoredResult {
  status: number;
  body: string;
}

/** What the store says about a key. */
export type Claim =
  { kind: 'claimed' } | { kind: 'completed'; result: StoredResult } | { kind: 'conflict' } | { kind: 'inProgress' };

interface IdempotencyEntity {
  partitionKey: string;
  rowKey: string;
  requestHash: string;
  state: 'pending' | 'completed';
  resultStatus?: number;
  resultBody?: string;
  expiresAt: Date;
}

/** Idempotency records for one table. */
export class IdempotencyStore {
  constructor(
    private readonly table: TableClient,
    private readonly ttlMs: number,
    /** A pending claim older than this is considered abandoned (its process died). */
    private readonly pendingTimeoutMs = 5 * 60_000,
  ) {}

  /** The store for `config`'s storage account. */
  static fromConfig(config: GatewayConfig): IdempotencyStore {
    return new IdempotencyStore(createTableClient(config, IDEMPOTENCY_TABLE), config.idempotencyTtlMs);
  }

  /** Claims `key` for a request whose canonical hash (requestHash.ts) is `requestHash`, or reports why not. */
  async claim(key: string, requestHash: string, now = Date.now()): Promise<Claim> {
    await ensureTable(this.table);
    const partitionKey = keyHash(key);
    const entity: IdempotencyEntity = {
      partitionKey,
      rowKey: '',
      requestHash,
      state: 'pending',
      expiresAt: new Date(now + this.pendingTimeoutMs),
    };
    try {
      await this.table.createEntity(entity);
      return { kind: 'claimed' };
    } catch (err) {
      if (!(err instanceof RestError && err.statusCode === 409)) throw err;
    }
    const existing = await this.table.getEntity<IdempotencyEntity>(partitionKey, '');
    if (new Date(existing.expiresAt).getTime() <= now) {
      // Expired or abandoned: take it over unless someone else just did (ETag).
      try {
        await this.table.updateEntity(entity, 'Replace', { etag: existing.etag });
        return { kind: 'claimed' };
      } catch (err) {
        if (err instanceof RestError && err.statusCode === 412) return { kind: 'inProgress' };
        throw err;
      }
    }
    if (existing.requestHash !== requestHash) return { kind: 'conflict' };
    if (existing.state === 'completed' && existing.resultStatus !== undefined && existing.resultBody !== undefined) {
      return { kind: 'completed', result: { status: existing.resultStatus, body: existing.resultBody } };
    }
    return { kind: 'inProgress' };
  }

  /** Stores the result of a claimed key for the TTL. */
  async complete(key: string, requestHash: string, result: StoredResult, now = Date.now()): Promise<void> {
    const entity: IdempotencyEntity = {
      partitionKey: keyHash(key),
      rowKey: '',
      requestHash,
      state: 'completed',
      resultStatus: result.status,
      resultBody: result.body,
      expiresAt: new Date(now + this.ttlMs),
    };
    await this.table.upsertEntity(entity, 'Replace');
  }

  /** Gives a claimed key up (the send failed), so a retry with the same key can send. */
  async release(key: string): Promise<void> {
    try {
      await this.table.deleteEntity(keyHash(key), '');
    } catch (err) {
      if (!(err instanceof RestError && err.statusCode === 404)) throw err;
    }
  }

  /** Reads a record (tests and diagnostics). */
  async read(key: string): Promise<TableEntityResult<IdempotencyEntity> | undefined> {
    try {
      return await this.table.getEntity<IdempotencyEntity>(keyHash(key), '');
    } catch (err) {
      if (err instanceof RestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }
}

/** Table keys forbid `/ \ # ?` and control characters; a hash of the caller's key has none. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
