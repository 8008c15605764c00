/**
 * The pacing decision for one mailbox as a pure function of its stored state, so that the rules can be checked at
 * simulated times and the storage code only has to read, decide and write atomically.
 *
 * Order of the checks: a mail over the whole daily budget can never go; a mail over what is left of it is deferred
 * (checked before the rate so it is not woken every few seconds only to be deferred again); then the concurrency
 * leases and the message rate.
 */
import { liveLeases, msUntilFirstExpiry, type LeaseRecord } from './leases';
import { emissionIntervalUs, messageSlot, US_PER_MS } from './messageRate';
import { addRecipients, capacityReturnsAt, recipientsInWindow, type RecipientBuckets } from './recipientWindow';

/** The limits one mailbox is paced at. */
export interface PacerLimits {
  /** Exchange Online's message rate limit (30). */
  messagesPerMinute: number;
  /** Exchange Online's recipient rate limit over a sliding 24 h (10,000). */
  recipientsPerDay: number;
  /** Graph requests in flight per app and mailbox (Outlook allows 4). */
  maxConcurrent: number;
  /** How long a lease holds a concurrency slot unless released first. */
  leaseMs: number;
}

/** What the mailbox's row holds. */
export interface PacingState {
  /** GCRA theoretical arrival time of the next message, epoch microseconds. */
  messageTatUs: number;
  recipientBuckets: RecipientBuckets;
  leases: readonly LeaseRecord[];
}

/** The state of a mailbox that has never sent. */
export const EMPTY_PACING_STATE: PacingState = { messageTatUs: 0, recipientBuckets: [], leases: [] };

/** The answer to one request to send. */
export type PacingDecision =
  | { kind: 'granted'; leaseId: string; grantedAt: number; expiresAt: number }
  | { kind: 'wait'; retryAfterMs: number; reason: 'rate' | 'concurrency' }
  | { kind: 'deferred'; notBefore: number; reason: 'dailyRecipients' }
  | { kind: 'tooManyRecipients'; recipientsPerDay: number };

/** A decision and, when it changes the row, the state to write. */
export interface PacingStep<T> {
  result: T;
  next?: PacingState;
}

/** `value`, if it is a positive integer; a RangeError naming `name` otherwise. */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`mailbox pacer: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** `limits` checked: every figure a positive integer (a zero or fractional limit is a configuration mistake). */
export function checkedLimits(limits: PacerLimits): PacerLimits {
  for (const [name, value] of Object.entries(limits)) positiveInteger(name, value as number);
  return limits;
}

/** Decides whether a mail to `recipients` recipients may go at `nowMs`, taking lease `leaseId` if it may. */
export function decideReservation(
  state: PacingState,
  limits: PacerLimits,
  recipients: number,
  nowMs: number,
  leaseId: string,
): PacingStep<PacingDecision> {
  positiveInteger('recipients', recipients);
  if (recipients > limits.recipientsPerDay) {
    return { result: { kind: 'tooManyRecipients', recipientsPerDay: limits.recipientsPerDay } };
  }
  const notBefore = capacityReturnsAt(state.recipientBuckets, nowMs, recipients, limits.recipientsPerDay);
  if (notBefore > nowMs) return { result: { kind: 'deferred', notBefore, reason: 'dailyRecipients' } };

  const nowUs = Math.floor(nowMs * US_PER_MS);
  const intervalUs = emissionIntervalUs(limits.messagesPerMinute);
  const slot = messageSlot(state.messageTatUs, nowUs, intervalUs);
  const rateWaitMs = slot.kind === 'closed' ? Math.ceil(slot.waitUs / US_PER_MS) : 0;
  const leases = liveLeases(state.leases, nowMs);
  if (leases.length >= limits.maxConcurrent) {
    // A release can come at any moment, so look again after one message interval (or the first expiry, if
    // sooner); never sooner than the rate allows anyway.
    const leaseWaitMs = Math.min(msUntilFirstExpiry(leases, nowMs), Math.ceil(intervalUs / US_PER_MS));
    return { result: { kind: 'wait', retryAfterMs: Math.max(rateWaitMs, leaseWaitMs, 1), reason: 'concurrency' } };
  }
  if (slot.kind === 'closed') return { result: { kind: 'wait', retryAfterMs: rateWaitMs, reason: 'rate' } };

  const expiresAt = nowMs + limits.leaseMs;
  return {
    result: { kind: 'granted', leaseId, grantedAt: nowMs, expiresAt },
    next: {
      messageTatUs: slot.nextTatUs,
      recipientBuckets: addRecipients(state.recipientBuckets, nowMs, recipients),
      leases: [...leases, { id: leaseId, expiresAt }],
    },
  };
}

/** Frees lease `leaseId` (and drops expired ones); no write when the lease is already gone. */
export function releaseLease(state: PacingState, leaseId: string, nowMs: number): PacingStep<void> {
  if (!state.leases.some((lease) => lease.id === leaseId)) return { result: undefined };
  return {
    result: undefined,
    next: { ...state, leases: liveLeases(state.leases, nowMs).filter((lease) => lease.id !== leaseId) },
  };
}

/** A mailbox's pacing at a glance, for status pages and diagnostics. */
export interface PacingStatus {
  /** Epoch ms from which the next message may go as far as the rate is concerned (`now` if already). */
  nextSlotAt: number;
  /** Recipients counted against the daily budget now. */
  recipientsInWindow: number;
  /** Recipients a mail could still have now. */
  recipientsRemaining: number;
  /** Leases held now. */
  activeLeases: number;
  limits: PacerLimits;
}

/** The status of `state` at `nowMs`. */
export function pacingStatus(state: PacingState, limits: PacerLimits, nowMs: number): PacingStatus {
  const used = recipientsInWindow(state.recipientBuckets, nowMs);
  return {
    nextSlotAt: Math.max(nowMs, Math.ceil(state.messageTatUs / US_PER_MS)),
    recipientsInWindow: used,
    recipientsRemaining: Math.max(0, limits.recipientsPerDay - used),
    activeLeases: liveLeases(state.leases, nowMs).length,
    limits,
  };
}
