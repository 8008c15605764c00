/**
 * The pacing decision for one mailbox as a pure function of its stored state, so that the rules can be checked at
 * simulated times and the storage code only has to read, decide and write atomically.
 *
 * Order of the checks: a mail over the whole daily budget can never go; a mail whose slot in the schedule is later
 * is scheduled for it (messageRate.ts); at its slot (or at once, when the schedule is free) it is deferred if its
 * recipients no longer fit the day's budget, waits if the sliding minute is full or every concurrency lease is held,
 * and goes otherwise, counted in the minute and the day.
 *
 * Why the limits hold:
 * - Messages: every grant and renewal is admitted by the sliding count of messageWindow.ts (N per 61 s; the proof is
 *   in slidingCount.ts), and a mail is counted from its decision until its release, then at the release, so Graph
 *   sees at most N in any 60 s however long each call took (see `releaseLease`). A release that never lands (its
 *   write failed, or the instance died after Graph accepted the mail) leaves the mail's lease in the row: once its
 *   decision has left the window, the live lease itself is counted (`minuteRoomAt`), so the mail stays counted at
 *   every moment Graph could have accepted it, until the lease expires. The schedule (GCRA, with a burst
 *   tolerance of N − 1 slots) only orders mails and lets a quiet mailbox's first N go at once; it is never what keeps
 *   the limit, so the tolerance cannot break it.
 * - Recipients: the same argument with the 24 h count of recipientWindow.ts.
 * - Concurrency: a grant takes a lease only while fewer than `maxConcurrent` live leases are in the row, and the row
 *   is written with the ETag it was read with (mailboxPacer.ts), so no two grants see the same lease count.
 */
import { leaseCountedAt, liveLeases, msUntilFirstExpiry, type LeaseRecord } from './leases';
import { burstToleranceUs, emissionIntervalUs, messageSlot, US_PER_MS } from './messageRate';
import {
  addMessage,
  messageCapacityAt,
  messageStillCounted,
  removeMessage,
  type MessageBuckets,
} from './messageWindow';
import {
  addRecipients,
  capacityReturnsAt,
  recipientsInWindow,
  removeRecipients,
  type RecipientBuckets,
} from './recipientWindow';

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
  /** GCRA theoretical arrival time of the next slot, epoch microseconds. */
  messageTatUs: number;
  /** Messages sent over the last 60 seconds. */
  messageBuckets: MessageBuckets;
  recipientBuckets: RecipientBuckets;
  leases: readonly LeaseRecord[];
}

/** The state of a mailbox that has never sent. */
export const EMPTY_PACING_STATE: PacingState = {
  messageTatUs: 0,
  messageBuckets: [],
  recipientBuckets: [],
  leases: [],
};

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
 * `heldSlotAt` is the slot an earlier decision scheduled the mail for; a holder keeps it until it goes, however late
 * it comes back (the sliding minute keeps the limit).
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
  if (recipients > limits.recipientsPerDay) {
    return { result: { kind: 'tooManyRecipients', recipientsPerDay: limits.recipientsPerDay } };
  }
  let messageTatUs = state.messageTatUs;
  const slotAt = heldSlotAt ?? nowMs;
  if (heldSlotAt === undefined) {
    const nowUs = Math.floor(nowMs * US_PER_MS);
    const n = limits.messagesPerMinute;
    const slot = messageSlot(state.messageTatUs, nowUs, emissionIntervalUs(n), burstToleranceUs(n));
    if (slot.slotUs > nowUs) {
      const slotAt = Math.ceil(slot.slotUs / US_PER_MS);
      return { result: { kind: 'scheduled', slotAt }, next: { ...state, messageTatUs: slot.nextTatUs } };
    }
    // The schedule is free now: the slot is taken only if the mail goes, so a mail that cannot does not use it up.
    messageTatUs = slot.nextTatUs;
  } else if (nowMs < heldSlotAt) {
    return { result: { kind: 'wait', retryAfterMs: heldSlotAt - nowMs, reason: 'rate', slotAt: heldSlotAt } };
  }
  const held = heldSlotAt !== undefined ? { slotAt } : {};

  const notBefore = capacityReturnsAt(state.recipientBuckets, nowMs, recipients, limits.recipientsPerDay);
  if (notBefore > nowMs) return { result: { kind: 'deferred', notBefore, reason: 'dailyRecipients' } };
  const leases = liveLeases(state.leases, nowMs);
  const minuteFreesAt = minuteRoomAt(state.messageBuckets, leases, limits, nowMs);
  if (minuteFreesAt > nowMs) {
    return { result: { kind: 'wait', retryAfterMs: minuteFreesAt - nowMs, reason: 'rate', ...held } };
  }
  if (leases.length >= limits.maxConcurrent) {
    // A release can come at any moment, so look again soon: after 250 ms, or the first expiry if sooner.
    const retryAfterMs = Math.max(1, Math.min(msUntilFirstExpiry(leases, nowMs), CONCURRENCY_RETRY_MS));
    return { result: { kind: 'wait', retryAfterMs, reason: 'concurrency', ...held } };
  }
  const expiresAt = nowMs + limits.leaseMs;
  return {
    result: { kind: 'granted', leaseId, grantedAt: nowMs, expiresAt },
    next: {
      messageTatUs,
      messageBuckets: addMessage(state.messageBuckets, nowMs),
      recipientBuckets: addRecipients(state.recipientBuckets, nowMs, recipients),
      leases: [...leases, { id: leaseId, expiresAt, countedAt: nowMs }],
    },
  };
}

/**
 * The earliest time (epoch ms, ≥ `nowMs`) at which one more message fits the sliding minute: the messages its buckets
 * count plus each live lease whose own count has left the window (a mail Graph may still be accepting, or may have
 * accepted, with no release to say when). When such a lease expires the answer may come sooner than computed here;
 * a caller told to wait simply asks again then.
 */
function minuteRoomAt(
  buckets: MessageBuckets,
  leases: readonly LeaseRecord[],
  limits: PacerLimits,
  nowMs: number,
): number {
  const uncounted = leases.filter((lease) => !messageStillCounted(leaseCountedAt(lease, limits.leaseMs), nowMs));
  if (uncounted.length === 0) return messageCapacityAt(buckets, nowMs, limits.messagesPerMinute);
  const firstExpiry = Math.min(...uncounted.map((lease) => lease.expiresAt));
  if (uncounted.length >= limits.messagesPerMinute) return firstExpiry;
  const roomAt = messageCapacityAt(buckets, nowMs, limits.messagesPerMinute - uncounted.length);
  return roomAt > nowMs ? Math.min(roomAt, firstExpiry) : nowMs;
}

/** A grant as `decideRenewal` and `releaseLease` need it. */
export interface GrantToRenew {
  leaseId: string;
  /** Epoch ms the grant counted the message and its recipients at. */
  grantedAt: number;
  recipients: number;
}

/** The answer to renewing a grant. */
export type RenewalDecision =
  { kind: 'granted'; grantedAt: number; expiresAt: number } | { kind: 'wait'; retryAfterMs: number; reason: 'rate' };

/**
 * Renews a grant decided too long ago to send on (messageWindow.ts, `DECISION_VALID_MS`): its message and recipients
 * move from `grantedAt` to `nowMs` if the sliding minute, without the grant's own count, has room at `nowMs`, and its
 * lease is extended. Otherwise the grant is given back whole (count, recipients and lease), and the answer says when
 * the minute has room. Only for a grant on which nothing has been submitted: the count is taken out, not added to.
 */
export function decideRenewal(
  state: PacingState,
  limits: PacerLimits,
  grant: GrantToRenew,
  nowMs: number,
): PacingStep<RenewalDecision> {
  const messageBuckets = removeMessage(state.messageBuckets, grant.grantedAt);
  const recipientBuckets = removeRecipients(state.recipientBuckets, grant.grantedAt, grant.recipients);
  const others = liveLeases(state.leases, nowMs).filter((lease) => lease.id !== grant.leaseId);
  const minuteFreesAt = minuteRoomAt(messageBuckets, others, limits, nowMs);
  if (minuteFreesAt > nowMs) {
    return {
      result: { kind: 'wait', retryAfterMs: minuteFreesAt - nowMs, reason: 'rate' },
      next: { ...state, messageBuckets, recipientBuckets, leases: others },
    };
  }
  const expiresAt = nowMs + limits.leaseMs;
  return {
    result: { kind: 'granted', grantedAt: nowMs, expiresAt },
    next: {
      ...state,
      messageBuckets: addMessage(messageBuckets, nowMs),
      recipientBuckets: addRecipients(recipientBuckets, nowMs, grant.recipients),
      leases: [...others, { id: grant.leaseId, expiresAt, countedAt: nowMs }],
    },
  };
}

/** How soon a mail that found every concurrency lease held looks again. */
const CONCURRENCY_RETRY_MS = 250;

/**
 * Frees the grant's lease (and drops expired ones) once its mail is done with Graph, and moves the message and its
 * recipients from the decision's time to `nowMs`. Exchange counts a mail when it accepts it, somewhere between the
 * decision and Graph's answer; counted at the decision until the release and at the release after it, the mail is in
 * every window it belongs to, however long the call took: within the message window (61 s) of the decision the
 * decision's count covers it, and after that its live lease does (`minuteRoomAt`). No write when the lease is
 * already gone.
 */
export function releaseLease(state: PacingState, grant: GrantToRenew, nowMs: number): PacingStep<void> {
  if (!state.leases.some((lease) => lease.id === grant.leaseId)) return { result: undefined };
  return {
    result: undefined,
    next: {
      ...state,
      messageBuckets: addMessage(removeMessage(state.messageBuckets, grant.grantedAt), nowMs),
      recipientBuckets: addRecipients(
        removeRecipients(state.recipientBuckets, grant.grantedAt, grant.recipients),
        nowMs,
        grant.recipients,
      ),
      leases: liveLeases(state.leases, nowMs).filter((lease) => lease.id !== grant.leaseId),
    },
  };
}

/** A mailbox's pacing at a glance, for status pages and diagnostics. */
export interface PacingStatus {
  /** Epoch ms from which the next message may go as far as the schedule and the sliding minute are concerned (`now` if already). */
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
    nextSlotAt: Math.max(
      nowMs,
      Math.ceil((state.messageTatUs - burstToleranceUs(limits.messagesPerMinute)) / US_PER_MS),
      minuteRoomAt(state.messageBuckets, liveLeases(state.leases, nowMs), limits, nowMs),
    ),
    recipientsInWindow: used,
    recipientsRemaining: Math.max(0, limits.recipientsPerDay - used),
    activeLeases: liveLeases(state.leases, nowMs).length,
    limits,
  };
}
