/**
 * How an outbox record moves through its life, as pure functions from the record read to the record to write: the
 * processor decides which move to make and stores the result with the ETag it read (see outboxProcessor.ts). Each
 * transition says which of the fields that describe a wait (`notBefore`, `reason`) or an attempt (`attemptStartedAt`)
 * the new state keeps, so that no state carries a field left over from the one before. The moves:
 *
 * - waiting (`queued`, `deferred`) → `sending`: {@link toSending}, the attempt marker set;
 * - `sending` → `sent`: {@link toSent}; any state but `sent` → `failed`: {@link toFailed};
 * - → `queued` with a wait: {@link toQueued} (a pacer slot, Graph's Retry-After, a failed dependency);
 *   → `deferred`: {@link toDeferred} (the mailbox's daily recipients, or the tenant's external recipients);
 * - an attempt undone before it reached Graph: {@link undoAttempt}; an interrupted one proved not accepted:
 *   {@link clearAttempt}; one Graph may have accepted: {@link toUnconfirmed} (still `sending`, marker kept).
 */
import type { ProblemDocument } from '../../platform/problems/problem';
import type { OutboxRecord } from '../store/outboxStore';

/** Why an attempt's outcome is not known; the next try checks the mailbox's Outbox and Sent Items. */
export const UNCONFIRMED_REASON = 'previous attempt interrupted';

/** The fields a state may leave behind. */
type TransientField = 'notBefore' | 'reason' | 'attemptStartedAt' | 'inlineRequest';

/** `record` without `fields`. */
function without(record: OutboxRecord, ...fields: TransientField[]): OutboxRecord {
  const copy = { ...record };
  for (const field of fields) delete copy[field];
  return copy;
}

/**
 * Why a mail is `deferred`: the mailbox's recipients in 24 h, or the tenant's external recipients in 24 h.
 */
export type DeferralReason = 'dailyRecipients' | 'tenantExternalRecipients';

/** Whether the record's outcome is final: nothing more happens to the mail. */
export function isFinal(record: OutboxRecord): boolean {
  return record.status === 'sent' || record.status === 'failed';
}

/**
 * When the mail became due: its `sendAt`, else its acceptance. A mail scheduled days ahead is not old at its send
 * time. A record written before `sendAt` was kept holds it as `notBefore` while it still waits for it.
 */
export function dueAt(record: OutboxRecord): number {
  const sendAt = record.sendAt ?? (record.reason === 'sendAt' ? record.notBefore : undefined);
  return Math.max(record.createdAt, sendAt ?? record.createdAt);
}

/** `record` with Graph's `request-id` of a call made for it added, when there is one. */
export function withRequestId(record: OutboxRecord, requestId: string | undefined): OutboxRecord {
  return requestId === undefined ? record : { ...record, requestIds: [...record.requestIds, requestId] };
}

/** Waits until `notBefore` for `reason` (its pacer slot, Graph's Retry-After, a dependency); no attempt is open. */
export function toQueued(record: OutboxRecord, wait: { notBefore: number; reason: string }, now: number): OutboxRecord {
  return { ...without(record, 'attemptStartedAt'), status: 'queued', ...wait, updatedAt: now };
}

/** Waits until `notBefore` because its recipients do not fit the mailbox's day (or its external ones the tenant's). */
export function toDeferred(
  record: OutboxRecord,
  wait: { notBefore: number; reason?: DeferralReason },
  now: number,
): OutboxRecord {
  const reason = wait.reason ?? 'dailyRecipients';
  return { ...record, status: 'deferred', notBefore: wait.notBefore, reason, updatedAt: now };
}

/** An attempt starts: the marker that it may reach Graph, one more attempt counted, and no wait any more. */
export function toSending(record: OutboxRecord, now: number): OutboxRecord {
  return {
    ...without(record, 'notBefore', 'reason'),
    status: 'sending',
    attempts: record.attempts + 1,
    attemptStartedAt: now,
    updatedAt: now,
  };
}

/** The attempt never reached Graph's submission: its marker goes and it is not counted. */
export function undoAttempt(record: OutboxRecord, now: number): OutboxRecord {
  return {
    ...without(record, 'attemptStartedAt'),
    status: 'queued',
    attempts: Math.max(0, record.attempts - 1),
    updatedAt: now,
  };
}

/** An interrupted attempt proved not accepted by Exchange: the marker goes, and the mail is tried again. */
export function clearAttempt(record: OutboxRecord, now: number): OutboxRecord {
  return { ...without(record, 'attemptStartedAt'), status: 'queued', updatedAt: now };
}

/**
 * Graph may have accepted the mail (no answer, or a 5xx): the marker stays, so that the next try, at `notBefore`,
 * looks for the mail in the mailbox before sending it again.
 */
export function toUnconfirmed(record: OutboxRecord, wait: { notBefore: number }, now: number): OutboxRecord {
  return { ...record, notBefore: wait.notBefore, reason: UNCONFIRMED_REASON, updatedAt: now };
}

/**
 * Sent at `now` (with the message's conversation, when Graph said); the request's content is not kept once the
 * outcome is final.
 */
export function toSent(
  record: OutboxRecord,
  sent: { requestId: string | undefined; conversationId?: string },
  now: number,
): OutboxRecord {
  return {
    ...without(withRequestId(record, sent.requestId), 'attemptStartedAt', 'notBefore', 'reason', 'inlineRequest'),
    ...(sent.conversationId !== undefined ? { conversationId: sent.conversationId } : {}),
    status: 'sent',
    sentAt: now,
    updatedAt: now,
  };
}

/**
 * Failed with `problem`; the request's content is not kept once the outcome is final. `attemptSettled`: the failure
 * settles any attempt (Graph refused it, or the gateway decided it), so the marker goes; otherwise a marker left by an
 * attempt that may have reached Graph stays on the record.
 */
export function toFailed(
  record: OutboxRecord,
  failure: { problem: ProblemDocument; attemptSettled: boolean },
  now: number,
): OutboxRecord {
  const fields: TransientField[] = failure.attemptSettled
    ? ['notBefore', 'inlineRequest', 'attemptStartedAt']
    : ['notBefore', 'inlineRequest'];
  return { ...without(record, ...fields), status: 'failed', problem: failure.problem, updatedAt: now };
}
