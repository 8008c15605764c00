/**
 * The tenant's external recipient budget shared by all instances: one Table row (in the pacing table, beside the
 * mailboxes' rows) holds the external recipients of the last 24 h in five-minute buckets. Each call reads the row,
 * decides (tenantRules.ts) and writes it back with `If-Match` on the ETag it read, as the mailbox pacer does, so two
 * instances cannot both spend the last of the budget.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { ensureTable, isStatus } from '../platform/storage/tables';
import { positiveInteger } from './pacingRules';
import { recipientsInWindow, type RecipientBuckets } from './recipientWindow';
import { decideTenantExternal, giveBackExternal, type TenantDecision } from './tenantRules';

/**
 * The row's keys: a mailbox row has rowKey '' (mailboxPacer.ts), so this row cannot collide with any mailbox's.
 */
const PARTITION_KEY = 'tenant';
const ROW_KEY = 'externalRecipients';

/** Read-decide-write rounds per call before giving up on a row other instances keep changing. */
const MAX_ATTEMPTS = 10;

interface TenantEntity {
  partitionKey: string;
  rowKey: string;
  /** JSON `[[bucket, recipients], …]`. */
  externalBuckets: string;
}

/** Other instances changed the tenant's row on every attempt; the caller should retry the message later. */
export class TenantBudgetContentionError extends Error {
  constructor(readonly attempts: number) {
    super(`tenant external recipient row changed under each of ${attempts} attempts; try again later`);
    this.name = 'TenantBudgetContentionError';
  }
}

/** The external recipient budget of the tenant, over the pacing table. */
export class TenantBudget {
  /** External recipients per sliding 24 h. */
  readonly externalRecipientsPerDay: number;

  constructor(
    private readonly table: TableClient,
    externalRecipientsPerDay: number,
  ) {
    this.externalRecipientsPerDay = positiveInteger('externalRecipientsPerDay', externalRecipientsPerDay);
  }

  /** Counts a mail's `external` recipients at `now` if the budget has room (see tenantRules.ts). */
  async reserve(external: number, now: number = Date.now()): Promise<TenantDecision> {
    if (external === 0) return { kind: 'granted', countedAt: now };
    return this.update((buckets) => decideTenantExternal(buckets, this.externalRecipientsPerDay, external, now));
  }

  /** Gives back a grant whose mail did not reach Graph (the mailbox could not send it yet). */
  async giveBack(countedAt: number, external: number): Promise<void> {
    if (external === 0) return;
    await this.update((buckets) => ({ result: undefined, next: giveBackExternal(buckets, countedAt, external) }));
  }

  /** External recipients counted in the last 24 h at `now`. */
  async used(now: number = Date.now()): Promise<number> {
    await ensureTable(this.table);
    const row = await this.read();
    return recipientsInWindow(row?.buckets ?? [], now);
  }

  private async update<T>(decide: (buckets: RecipientBuckets) => { result: T; next?: RecipientBuckets }): Promise<T> {
    await ensureTable(this.table);
    for (let attempt = 1; ; attempt++) {
      const row = await this.read();
      const { result, next } = decide(row?.buckets ?? []);
      if (!next) return result;
      const entity = { partitionKey: PARTITION_KEY, rowKey: ROW_KEY, externalBuckets: JSON.stringify(next) };
      try {
        if (row) await this.table.updateEntity(entity, 'Replace', { etag: row.etag });
        else await this.table.createEntity(entity);
        return result;
      } catch (err) {
        if (!isStatus(err, row ? 412 : 409)) throw err;
      }
      if (attempt >= MAX_ATTEMPTS) throw new TenantBudgetContentionError(attempt);
      // Writers that lost together would collide again; a random, growing pause spreads them out.
      await sleep(Math.random() * Math.min(200, 5 * 2 ** attempt));
    }
  }

  private async read(): Promise<{ buckets: RecipientBuckets; etag: string } | undefined> {
    let entity: TableEntityResult<TenantEntity>;
    try {
      entity = await this.table.getEntity<TenantEntity>(PARTITION_KEY, ROW_KEY);
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
    const buckets = parseBuckets(entity.externalBuckets);
    if (!buckets) {
      throw new Error('tenant external recipient row is malformed (externalBuckets); delete it to reset the budget');
    }
    return { buckets, etag: entity.etag };
  }
}

function parseBuckets(text: unknown): RecipientBuckets | undefined {
  if (typeof text !== 'string') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
  const ok =
    Array.isArray(value) &&
    value.every((b) => Array.isArray(b) && b.length === 2 && Number.isSafeInteger(b[0]) && Number.isSafeInteger(b[1]));
  return ok ? (value as RecipientBuckets) : undefined;
}
