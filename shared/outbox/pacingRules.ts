/**
 * The pacing decision for one mailbox as a pure function of its stored state, so that the rules can be checked at
 * simulated times and the storage code only has to read, decide and write atomically.
 *
 * Order of the checks: a mail over the whole daily budget can never go; a mail over what is left of it at its slot
 * is deferred; a mail whose slot is later is scheduled for it (its recipients counted at the slot); a mail whose slot
 * is now, or that comes back holding its slot, goes if a concurrency lease is free.
 */
import { liveLeases, msUntilFirstExpiry, type LeaseRecord } from './leases';
import { emissionIntervalUs, messageSlot, SLOT_LATENESS_MS, US_PER_MS } from './messageRate';
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
  | { kind: 'scheduled'; slotAt: number }
  | { kind: 'wait'; retryAfterMs: number; reason: 'rate' | 'concurrency'; slotAt?: number }
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

/**
 * Decides whether a mail to `recipients` recipients may go at `nowMs`, taking lease `leaseId` if it may.
 * `heldSlotAt` is the slot an earlier decision scheduled the mail for: its rate and recipients are already counted,
 * so it only needs a lease, from its slot until {@link SLOT_LATENESS_MS} after it; later, it asks like a new mail.
 */
export function decideReservation(
  state: PacingState,
  limits: PacerLimits,
  recipients: number,
  nowMs: number,
  leaseId: string,
  heldSlotAt?: number,
): PacingStep<PacingDecision> {
  positiveInteger('recipients', recipients);
  const leases = liveLeases(state.leases, nowMs);
  const intervalUs = emissionIntervalUs(limits.messagesPerMinute);
  if (heldSlotAt !== undefined && nowMs <= heldSlotAt + SLOT_LATENESS_MS) {
    if (nowMs < heldSlotAt) {
      return { result: { kind: 'wait', retryAfterMs: heldSlotAt - nowMs, reason: 'rate', slotAt: heldSlotAt } };
    }
    if (leases.length >= limits.maxConcurrent) return { result: concurrencyWait(leases, nowMs, heldSlotAt) };
    return grant(state, leases, limits, nowMs, leaseId);
  }
  if (recipients > limits.recipientsPerDay) {
    return { result: { kind: 'tooManyRecipients', recipientsPerDay: limits.recipientsPerDay } };
  }
  const slot = messageSlot(state.messageTatUs, Math.floor(nowMs * US_PER_MS), intervalUs);
  const slotAt = Math.ceil(slot.slotUs / US_PER_MS);
  const notBefore = capacityReturnsAt(state.recipientBuckets, slotAt, recipients, limits.recipientsPerDay);
  if (notBefore > slotAt) return { result: { kind: 'deferred', notBefore, reason: 'dailyRecipients' } };
  // Recorded at the latest moment the mail can go, so that Exchange's 24 hours end no later than the count's.
  const recipientBuckets = addRecipients(state.recipientBuckets, nowMs, recipients, slotAt + SLOT_LATENESS_MS);
  if (slotAt > nowMs) {
    return {
      result: { kind: 'scheduled', slotAt },
      next: { messageTatUs: slot.nextTatUs, recipientBuckets, leases },
    };
  }
  // The slot is now: take it only with a lease, so a mail that cannot go does not use up the rate.
  if (leases.length >= limits.maxConcurrent) return { result: concurrencyWait(leases, nowMs) };
  return grant(
    { ...state, messageTatUs: slot.nextTatUs, recipientBuckets },
    leases,
    limits,
    nowMs,
    leaseId,
  );
}

/** `state` (rate and recipients already counted) with lease `leaseId` added. */
function grant(
  state: PacingState,
  leases: readonly LeaseRecord[],
  limits: PacerLimits,
  nowMs: number,
  leaseId: string,
): PacingStep<PacingDecision> {
  const expiresAt = nowMs + limits.leaseMs;
  return {
    result: { kind: 'granted', leaseId, grantedAt: nowMs, expiresAt },
    next: { ...state, leases: [...leases, { id: leaseId, expiresAt }] },
  };
}

/**
 * All leases are held. A release can come at any moment, so look again soon: after 250 ms or the first expiry,
 * whichever is sooner (a slot holder keeps its slot meanwhile, as long as its lateness allows).
 */
function concurrencyWait(leases: readonly LeaseRecord[], nowMs: number, slotAt?: number): PacingDecision {
  const retryAfterMs = Math.max(1, Math.min(msUntilFirstExpiry(leases, nowMs), CONCURRENCY_RETRY_MS));
  return { kind: 'wait', retryAfterMs, reason: 'concurrency', ...(slotAt !== undefined ? { slotAt } : {}) };
}

/** How soon a mail that found every lease held looks again. */
const CONCURRENCY_RETRY_MS = 250;

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
