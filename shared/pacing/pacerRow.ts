/**
 * The Table storage row of one mailbox's pacing state: the TAT as an explicit Edm.Double (an untyped JSON number
 * above 2³¹ would be left to the service to type; epoch microseconds are exact in a double until the year 2255),
 * the buckets and leases as compact JSON (each far below the 64 KB property limit).
 */
import type { TableEntity, TableEntityResult } from '@azure/data-tables';
import type { LeaseRecord } from './leases';
import type { MessageBuckets } from './messageWindow';
import type { PacingState } from './pacingRules';
import type { RecipientBuckets } from './recipientWindow';

/** The stored entity. */
export interface PacerEntity {
  partitionKey: string;
  rowKey: string;
  messageTatUs: number | { value: number; type: 'Double' };
  /** JSON `[[bucket, messages], …]`; absent in rows written before the sliding minute was kept. */
  messageBuckets?: string;
  /** JSON `[[bucket, recipients], …]`. */
  recipientBuckets: string;
  /** JSON `[{ id, expiresAt, countedAt }, …]` (`countedAt` absent in rows written before it existed). */
  leases: string;
}

/** The entity to write for `state` under `partitionKey`. */
export function toPacerEntity(partitionKey: string, state: PacingState): TableEntity<PacerEntity> {
  return {
    partitionKey,
    rowKey: '',
    messageTatUs: { value: state.messageTatUs, type: 'Double' },
    messageBuckets: JSON.stringify(state.messageBuckets),
    recipientBuckets: JSON.stringify(state.recipientBuckets),
    leases: JSON.stringify(state.leases),
  };
}

/** The state a stored entity holds; a row this code did not write fails loudly instead of pacing wrongly. */
export function fromPacerEntity(entity: TableEntityResult<PacerEntity>): PacingState {
  const tat = typeof entity.messageTatUs === 'number' ? entity.messageTatUs : Number.NaN;
  const buckets = parseJson(entity.recipientBuckets);
  const messages = entity.messageBuckets === undefined ? [] : parseJson(entity.messageBuckets);
  const leases = parseJson(entity.leases);
  const bucketsOk = isBucketList(buckets) && isBucketList(messages);
  const leasesOk =
    Array.isArray(leases) &&
    leases.every(
      (l) =>
        typeof l === 'object' &&
        l !== null &&
        typeof (l as LeaseRecord).id === 'string' &&
        Number.isFinite((l as LeaseRecord).expiresAt) &&
        ((l as LeaseRecord).countedAt === undefined || Number.isFinite((l as LeaseRecord).countedAt)),
    );
  if (!Number.isFinite(tat) || !bucketsOk || !leasesOk) {
    throw new Error(
      `mailbox pacing row ${entity.partitionKey} is malformed (messageTatUs, messageBuckets, recipientBuckets or leases); ` +
        'delete it to reset that mailbox’s pacing',
    );
  }
  return {
    messageTatUs: tat,
    messageBuckets: messages as MessageBuckets,
    recipientBuckets: buckets as RecipientBuckets,
    leases: leases as LeaseRecord[],
  };
}

function isBucketList(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.every((b) => Array.isArray(b) && b.length === 2 && Number.isSafeInteger(b[0]) && Number.isSafeInteger(b[1]))
  );
}

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
