/**
 * The Idempotency-Keys claimed in the `idempotency` table by versions before the outbox record became the key's
 * claim. A caller that retried across the upgrade with such a key would otherwise find no record for it and send
 * the mail a second time. So while that table still holds a key that has not expired, a keyed accept looks there
 * first and answers a repeat as those versions did; once none is left (their TTL, IDEMPOTENCY_TTL_HOURS, after the
 * upgrade), nothing writes the table any more, and a process stops looking for good: no accept pays for it.
 */
import { createHash } from 'node:crypto';
import { odata, type TableClient } from '@azure/data-tables';
import { isStatus } from '../../platform/storage/tables';
import type { StoredResult } from './idempotencyStore';

/** How long a process trusts its last look at whether any unexpired key is left. */
const RECHECK_MS = 10 * 60_000;

/** A key as the earlier versions stored it. */
interface LegacyKeyEntity {
  requestHash: string;
  state: 'pending' | 'completed';
  resultStatus?: number;
  resultBody?: string;
  expiresAt: Date;
}

/** What the table says about a key: held by a request with `requestHash`, and its first answer once completed. */
export interface LegacyKey {
  requestHash: string;
  /** The first answer (its body names the mail's id); absent while the request that claimed the key was running. */
  result?: StoredResult;
}

/** The earlier versions' keys, looked up only while unexpired ones remain. */
export class LegacyIdempotencyKeys {
  private live: boolean | undefined;
  private checkedAt = 0;
  private check?: Promise<boolean>;

  constructor(private readonly table: TableClient) {}

  /** The key's unexpired claim from an earlier version, or undefined (none, or none left at all). */
  async lookup(key: string, now: number = Date.now()): Promise<LegacyKey | undefined> {
    if (!(await this.anyLeft(now))) return undefined;
    let entity: LegacyKeyEntity;
    try {
      entity = await this.table.getEntity<LegacyKeyEntity>(keyHash(key), '');
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
    if (new Date(entity.expiresAt).getTime() <= now) return undefined;
    const completed =
      entity.state === 'completed' && entity.resultStatus !== undefined && entity.resultBody !== undefined;
    return {
      requestHash: entity.requestHash,
      ...(completed ? { result: { status: entity.resultStatus!, body: entity.resultBody! } } : {}),
    };
  }

  /** Whether any unexpired key is left; once none is, always false (nothing writes the table any more). */
  private async anyLeft(now: number): Promise<boolean> {
    if (this.live === false) return false;
    if (this.live === true && now - this.checkedAt < RECHECK_MS) return true;
    this.check ??= this.firstUnexpired(now).finally(() => (this.check = undefined));
    const live = await this.check;
    this.live = live;
    this.checkedAt = now;
    return live;
  }

  private async firstUnexpired(now: number): Promise<boolean> {
    try {
      const pages = this.table
        .listEntities({ queryOptions: { filter: odata`expiresAt gt ${new Date(now)}`, select: ['PartitionKey'] } })
        .byPage({ maxPageSize: 1 });
      // A page may come back empty with a continuation token; only the end of the listing says none is left.
      for await (const page of pages) if (page.length > 0) return true;
      return false;
    } catch (err) {
      if (isStatus(err, 404)) return false; // never created: a deployment that started on this version
      throw err;
    }
  }
}

/** The table's key for an Idempotency-Key, as the earlier versions wrote it. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
