/**
 * Works one `mail-outbox` message: decides from the mail's record whether it may go now (the shared mailbox pacer),
 * sends it through today's MailSender, records the outcome and publishes `mail.sent` / `mail.failed` /
 * `mail.deferred`. It never sleeps: anything that must wait is put back on the queue with a visibility delay.
 *
 * The record's moves are the pure transitions of outboxTransitions.ts, and a failed send is classified once
 * (sendFailure.ts); this module reads, decides which move to make, and writes it with the ETag it read.
 *
 * At most once to Graph: before the first Graph call the record gets an attempt marker (`attemptStartedAt`), written
 * with the ETag so that only one invocation can start an attempt. The marker is cleared only when Graph's answer
 * proves the mail was not accepted (a 4xx, 429 or 503). A message that finds a marker left behind (a crash, a lost
 * answer) looks the mail up by the `internetMessageId` the gateway gave it, in the mailbox's Outbox folder (where
 * Exchange holds what it accepted until its own 30-a-minute rate lets it leave) and then in Sent Items: found in
 * either means sent; found in neither means not accepted, and it is tried again. With `saveToSentItems: false` a mail
 * that has left the Outbox is kept nowhere, so such a mail not found in the Outbox is `failed` with "outcome unknown"
 * rather than risk sending it twice.
 *
 * Events without the event ledger: the write that makes a record final (or deferred) is conditional on the ETag read,
 * so the one invocation whose write succeeds publishes the outcome's event (stable CloudEvents id) straight to the
 * queue and webhook. A message that finds the record already final re-publishes that event, with the same id,
 * through the ledger (which also finishes a webhook delivery that failed): a crash between the record's write and the
 * publish repeats nothing and loses nothing, and a message redelivered after a publish that did happen repeats the
 * event with the same id, which consumers drop.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import type { EventPublisher } from '../../events/eventPublisher';
import type { AppCredential } from '../../identity/appCredential';
import { explainAccessDenied } from '../../mail/accessDenied';
import { reviveAttachmentBlobs } from '../../mail/attachmentBlob';
import type { MailSender } from '../../mail/mailSender';
import { parseSendRequest } from '../../mail/sendRequest';
import { parseThreadRequest } from '../../mail/threadRequest';
import { HttpProblem } from '../../platform/problems/httpProblem';
import { problem, type ProblemDocument } from '../../platform/problems/problem';
import { PacerContentionError, type MailboxPacer, type PacerLease, type Reservation } from '../../pacing/mailboxPacer';
import { TenantBudgetContentionError, type TenantBudget } from '../../pacing/tenantBudget';
import { DECISION_VALID_MS } from '../../pacing/messageWindow';
import type { BounceTracking } from '../bounces/bounceTracking';
import { deferredEvent, outcomeEvent } from './outboxEvents';
import { OutboxRecordChangedError, type OutboxRecord, type OutboxStore } from '../store/outboxStore';
import {
  clearAttempt,
  dueAt,
  isFinal,
  toDeferred,
  toFailed,
  toQueued,
  toSending,
  toSent,
  toUnconfirmed,
  undoAttempt,
  withRequestId,
  type DeferralReason,
} from './outboxTransitions';
import { classifySendFailure, DEFAULT_RETRY_MS } from './sendFailure';

/** What the processor needs. */
export interface OutboxProcessorDependencies {
  store: OutboxStore;
  pacer: MailboxPacer;
  /** Sends through a Graph client that does not wait out 429s itself (the outbox re-enqueues instead). */
  sender: MailSender;
  /** For the Outbox and Sent Items lookup of an interrupted attempt (needs Mail.ReadBasic.All or more). */
  graph: Client;
  publisher: EventPublisher;
  /** Explains an access denial by the token's missing roles. */
  credential: Pick<AppCredential, 'requireGraphPermissions'>;
  /** A mail due (its `sendAt`, else its acceptance) longer ago than this fails instead of being tried again. */
  maxAgeMs: number;
  /** The tenant's external recipient budget (TENANT_EXTERNAL_RECIPIENTS_PER_DAY), when on. */
  tenantBudget?: TenantBudget;
  /** BOUNCE_TRACKING=on: watches a sending mailbox's Inbox for bounces before its first mail goes. */
  bounceTracking?: BounceTracking;
  /** The clock (tests pass the pacer's simulated time). */
  now?: () => number;
  /** Uniform in [0, 1): the jitter of a requeue after pacer contention (tests pass a fixed one). */
  random?: () => number;
  /**
   * How long a mail that finds every concurrency lease of its mailbox held waits in the process for one before it
   * is re-queued (default {@link LEASE_WAIT_MS}).
   */
  leaseWaitMs?: number;
}

/** What one message led to. */
export type ProcessOutcome = 'sent' | 'failed' | 'requeued' | 'deferred' | 'republished' | 'ignored';

/** What one message led to, and the mail's record as the processing left it (what the trigger logs). */
export interface ProcessResult {
  outcome: ProcessOutcome;
  /** Absent when the message was ignored without a record to show (none, or another invocation changed it). */
  record?: OutboxRecord;
  /** Why a requeued mail waits when its record does not say (nothing was written), for the log line. */
  waiting?: string;
}

/** A mail whose pacer slot is at least this far off shows it in its status (`notBefore`, reason `rate`). */
const PACED_STATUS_MIN_MS = 2_000;

/**
 * A mail whose pacer row other instances kept changing (a burst from one mailbox) comes back after 1 s plus up to
 * this much jitter, so that the invocations that collided spread out instead of colliding again.
 */
export const CONTENTION_RETRY_MS = { min: 1_000, jitter: 4_000 };

/**
 * A mail that finds the mailbox's 4 Graph leases held waits this long in the process for one: a send usually gives
 * its lease back within a second, while a re-queued message is seen again only after the queue's visibility delay
 * and the next poll (a second or more each), which is what kept a burst's later mails waiting.
 */
export const LEASE_WAIT_MS = 3_000;

/** A record and the ETag it was read (or last written) with. */
interface Current {
  record: OutboxRecord;
  etag: string;
}

/** Processes the queue message for mail `id`; `slotAt` is the pacer slot the message holds, if any. */
export async function processOutboxMail(
  id: string,
  deps: OutboxProcessorDependencies,
  slotAt?: number,
): Promise<ProcessResult> {
  const now = deps.now ?? Date.now;
  const stored = await deps.store.get(id);
  // No record: the accept that wrote this message was rolled back.
  if (!stored) return { outcome: 'ignored' };
  // Final: a redelivered message, maybe of an invocation that died before publishing the outcome.
  if (isFinal(stored.record)) return republish(stored.record, deps);
  let current: Current = stored;
  const { record } = current;
  // Before the mail can go, so that its NDR finds the Inbox watched (see bounceTracking.ts); never throws.
  if (deps.bounceTracking) await deps.bounceTracking.ensure(record.mailbox);

  if (now() - dueAt(record) > deps.maxAgeMs) {
    return fail(
      current,
      deps,
      problem(
        504,
        'outbox-expired',
        'The mail was not sent in time',
        `The mail could not be sent within ${Math.round(deps.maxAgeMs / 3_600_000)} h of being due (OUTBOX_MAX_AGE_HOURS, counted from its sendAt, else from its acceptance); the last reason was: ${record.reason ?? record.status}.`,
      ),
      false,
    );
  }
  // A message holding a pacer slot comes back at it; its record's notBefore is that slot, only for the status.
  if (record.notBefore !== undefined && record.notBefore > now() && slotAt === undefined) {
    // A deferral's own message comes at its notBefore: one sooner is the retry of the invocation that deferred it,
    // whose mail.deferred may not have gone out.
    if (record.status === 'deferred') await deps.publisher.publish(deferredEvent(record), now());
    await deps.store.enqueue(id, record.notBefore - now());
    return { outcome: 'requeued', record };
  }
  if (record.attemptStartedAt !== undefined) {
    const settled = await settleInterruptedAttempt(current, deps);
    if ('outcome' in settled) return settled;
    current = settled;
  }

  // A mail back at its slot is nearly always let go: its request is fetched meanwhile, so that the mail holds its
  // grant (a lease, a count) for less time.
  const prefetched =
    slotAt !== undefined && slotAt <= now() + 1000 ? deps.store.readRequest(current.record) : undefined;
  prefetched?.catch(() => undefined);
  const granted = await reserve(current, deps, slotAt);
  if ('outcome' in granted) return granted;
  return attempt(current, granted.lease, prefetched, deps);
}

/**
 * Asks the pacer whether the mail may go now: the lease to send with, or what the mail does instead (comes back at
 * its slot or after a wait, is deferred to a later day, or fails as too large for any day).
 */
async function reserve(
  current: Current,
  deps: OutboxProcessorDependencies,
  slotAt: number | undefined,
): Promise<{ lease: PacerLease } | ProcessResult> {
  const now = deps.now ?? Date.now;
  const { record } = current;
  const id = record.id;
  const external = deps.tenantBudget ? (record.externalRecipients ?? 0) : 0;
  let tenantGrant: { countedAt: number } | undefined;
  let reservation: Reservation;
  try {
    // The tenant first: a mail past its budget waits without taking the mailbox's slot. Internal mail skips it.
    if (deps.tenantBudget && external > 0) {
      const tenant = await deps.tenantBudget.reserve(external, now());
      if (tenant.kind === 'deferred') return defer(current, deps, tenant.notBefore, tenant.reason);
      if (tenant.kind === 'tooManyExternalRecipients') {
        return fail(
          current,
          deps,
          problem(
            422,
            'too-many-external-recipients-per-day',
            'More external recipients than the tenant may send to in a day',
            `The mail has ${external} external recipients; TENANT_EXTERNAL_RECIPIENTS_PER_DAY allows ${tenant.externalRecipientsPerDay} in 24 h.`,
          ),
          false,
        );
      }
      tenantGrant = tenant;
    }
    reservation = await deps.pacer.reserve(record.mailbox, record.recipients, now, slotAt);
    // Every lease held: wait here for one (a release in this process wakes the wait at once), then ask again.
    const waitUntil = Date.now() + (deps.leaseWaitMs ?? LEASE_WAIT_MS);
    while (reservation.kind === 'wait' && reservation.reason === 'concurrency' && Date.now() < waitUntil) {
      await deps.pacer.leaseFreed(record.mailbox, Math.min(reservation.retryAfterMs * 2, waitUntil - Date.now()));
      reservation = await deps.pacer.reserve(record.mailbox, record.recipients, now, reservation.slotAt ?? slotAt);
    }
  } catch (err) {
    await giveBackTenant(deps, tenantGrant, external);
    // Contention on the pacer row is normal under load, not a failure: the message comes back a little later,
    // still holding its slot if it had one; nothing about the mail changed.
    if (!(err instanceof PacerContentionError || err instanceof TenantBudgetContentionError)) throw err;
    await deps.store.enqueue(id, contentionDelayMs(deps), slotAt);
    return { outcome: 'requeued', record, waiting: 'pacer row busy (other instances sending from the mailbox)' };
  }
  // Only a grant sends now: otherwise the mail comes back later and is counted then, so its external recipients go
  // back (a send undone later, before Graph, keeps them counted: an over-count, never an NDR).
  if (reservation.kind !== 'granted') await giveBackTenant(deps, tenantGrant, external);
  switch (reservation.kind) {
    case 'granted':
      return { lease: reservation.lease };
    case 'scheduled': {
      // The mail has its own slot: it comes back at it, holding it, and nothing else can take it meanwhile.
      await deps.store.enqueue(id, reservation.slotAt - now(), reservation.slotAt);
      if (reservation.slotAt - now() < PACED_STATUS_MIN_MS) return { outcome: 'requeued', record };
      const paced = toQueued(record, { notBefore: reservation.slotAt, reason: 'rate' }, now());
      // Only the status page reads it; the queue message already holds the slot, so a lost write costs nothing.
      const written = await deps.store.update(paced, current.etag).then(
        () => true,
        () => false,
      );
      return { outcome: 'requeued', record: written ? paced : record };
    }
    case 'wait':
      await deps.store.enqueue(id, reservation.retryAfterMs, reservation.slotAt);
      return { outcome: 'requeued', record };
    case 'tooManyRecipients':
      return fail(
        current,
        deps,
        problem(
          422,
          'too-many-recipients-per-day',
          'More recipients than the mailbox may send to in a day',
          `The mail has ${record.recipients} recipients; Exchange allows ${reservation.recipientsPerDay} per mailbox in 24 h.`,
        ),
        false,
      );
    case 'deferred':
      return defer(current, deps, reservation.notBefore, reservation.reason);
  }
}

/** Gives back the tenant's count for a mail that is not sent now (best effort: a failure only over-counts). */
async function giveBackTenant(
  deps: OutboxProcessorDependencies,
  grant: { countedAt: number } | undefined,
  external: number,
): Promise<void> {
  if (!grant || !deps.tenantBudget) return;
  await deps.tenantBudget.giveBack(grant.countedAt, external).catch(() => undefined);
}

/** The mail waits for a budget's window to move: `deferred`, `mail.deferred`, and back on the queue at `notBefore`. */
async function defer(
  current: Current,
  deps: OutboxProcessorDependencies,
  notBefore: number,
  reason: DeferralReason,
): Promise<ProcessResult> {
  const now = deps.now ?? Date.now;
  const { record } = current;
  const id = record.id;
  const deferred = toDeferred(record, { notBefore, reason }, now());
  await deps.store.update(deferred, current.etag);
  await deps.publisher.publishOwned(deferredEvent(deferred), now());
  await deps.store.enqueue(id, notBefore - now());
  return { outcome: 'deferred', record: deferred };
}

/**
 * One attempt with the pacer's grant: the marker, the send, and the outcome recorded. The lease is released as soon
 * as Graph has answered (or never will for this attempt), and in any case before returning.
 */
async function attempt(
  current: Current,
  granted: PacerLease,
  prefetched: Promise<unknown> | undefined,
  deps: OutboxProcessorDependencies,
): Promise<ProcessResult> {
  const now = deps.now ?? Date.now;
  let lease = granted;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    // A release that fails costs throughput, not the limit: the pacer counts an unreleased lease as a mail in flight
    // until it expires (pacingRules.ts), and the outcome below matters more than the count moving sooner.
    await deps.pacer.release(lease, now).catch(() => undefined);
  };
  try {
    // The marker goes in before Graph is called; losing this race means another invocation owns the attempt.
    const sending = toSending(current.record, now());
    let etag: string;
    try {
      etag = await deps.store.update(sending, current.etag);
    } catch (err) {
      if (err instanceof OutboxRecordChangedError) return { outcome: 'ignored' };
      throw err;
    }
    const started: Current = { record: sending, etag };
    // Parsed as it downloads: the stored request is held once, as its parsed values, never as bytes and text too.
    // Large attachments are references to their blobs (a request stored before those existed has base64 inline).
    const parsed = parseStoredRequest(
      sending,
      reviveAttachmentBlobs(await (prefetched ?? deps.store.readRequest(sending))),
    );
    if (!parsed.ok) {
      return fail(
        started,
        deps,
        problem(
          500,
          'outbox-payload-invalid',
          'The stored request is no longer valid',
          'The stored request failed validation; it was valid when accepted.',
        ),
        true,
      );
    }
    const request = { ...parsed.request, internetMessageId: sending.internetMessageId };
    // The pacer counts the mail at its decision until the release; a decision grown stale (the uploads of a large
    // draft, a stalled instance) is renewed before submitting, or the mail waits and nothing is submitted.
    const beforeSubmit = async (): Promise<void> => {
      if (now() - lease.grantedAt <= DECISION_VALID_MS) return;
      const renewed = await deps.pacer.renew(lease, now);
      if (renewed.kind !== 'granted') throw new DecisionLapsedError(renewed.retryAfterMs);
      lease = renewed.lease;
    };
    let sent: { requestId?: string; conversationId?: string } | undefined;
    let failure: unknown;
    try {
      sent = await deps.sender
        .send(request, { beforeSubmit })
        .catch((err: unknown) => explainAccessDenied(err, request, deps.credential));
    } catch (err) {
      failure = err;
    }
    // Graph has answered (or never will for this attempt): the lease goes and the count moves to now at once, before
    // the outcome is written, so that the count lies as close after Exchange's acceptance as it can.
    await release();
    if (sent) return await succeed(started, deps, sent.requestId, sent.conversationId);
    if (failure instanceof DecisionLapsedError) return await giveBackAttempt(started, deps, failure.retryAfterMs);
    // The renewal before submitting lost to other instances every time: nothing was submitted either.
    if (failure instanceof PacerContentionError) return await giveBackAttempt(started, deps, contentionDelayMs(deps));
    if (failure instanceof HttpProblem) return await settleSendFailure(started, deps, failure);
    throw failure;
  } finally {
    await release();
  }
}

/**
 * The stored request of `record` as the processor sends it: a reply or forward (the record keeps what it answers) is
 * read with its own contract, anything else (every record stored before replies existed) as a new mail.
 */
function parseStoredRequest(record: OutboxRecord, json: unknown): ReturnType<typeof parseSendRequest> {
  const { thread } = record;
  if (!thread) return parseSendRequest(json);
  return parseThreadRequest(thread.kind === 'forward' ? 'forward' : 'reply', record.mailbox, thread.messageId, json);
}

/** How long a mail waits after pacer contention: {@link CONTENTION_RETRY_MS}, jittered. */
function contentionDelayMs(deps: OutboxProcessorDependencies): number {
  return CONTENTION_RETRY_MS.min + Math.floor((deps.random ?? Math.random)() * CONTENTION_RETRY_MS.jitter);
}

/** The pacer took back a grant that went stale before the mail was submitted; the mail waits `retryAfterMs`. */
class DecisionLapsedError extends Error {
  constructor(readonly retryAfterMs: number) {
    super('the pacer took back a stale grant before the mail was submitted');
    this.name = 'DecisionLapsedError';
  }
}

/**
 * Undoes an attempt that never reached Graph's submission (its grant lapsed): the marker goes, the attempt is not
 * counted, and the mail asks the pacer again after `retryAfterMs`, for a new slot.
 */
async function giveBackAttempt(
  { record, etag }: Current,
  deps: OutboxProcessorDependencies,
  retryAfterMs: number,
): Promise<ProcessResult> {
  const queued = undoAttempt(record, (deps.now ?? Date.now)());
  await deps.store.update(queued, etag);
  await deps.store.enqueue(record.id, retryAfterMs);
  return { outcome: 'requeued', record: queued };
}

/**
 * The last try of a message failed (storage, pacer or token trouble that outlasted the queue's retries): record the
 * mail as failed, so that its status and a `mail.failed` event say so instead of the mail sitting in the poison
 * queue with a record that still reads `queued`. When an attempt may have reached Graph, the problem says the outcome
 * is unknown. Throws when even that cannot be written (the host then moves the message to the poison queue).
 */
export async function failAfterRetries(
  id: string,
  tries: number,
  lastError: string,
  deps: OutboxProcessorDependencies,
): Promise<ProcessResult> {
  const stored = await deps.store.get(id);
  if (!stored) return { outcome: 'ignored' };
  if (isFinal(stored.record)) return republish(stored.record, deps);
  const mayHaveReachedGraph = stored.record.attemptStartedAt !== undefined;
  return fail(
    stored,
    deps,
    problem(
      503,
      mayHaveReachedGraph ? 'outcome-unknown' : 'outbox-retries-exhausted',
      mayHaveReachedGraph ? 'The outcome of the send is unknown' : 'The gateway could not process the mail',
      `Processing failed ${tries} times (last: ${lastError}). ${
        mayHaveReachedGraph
          ? 'An attempt may have reached Graph, so the mail is not sent again; check the recipient or Sent Items before resending.'
          : 'The mail was not sent; fix the cause named above and send it again.'
      }`,
    ),
    false,
  );
}

/** Decides an attempt left unfinished; returns a result, or the record to try again with. */
async function settleInterruptedAttempt(
  current: Current,
  deps: OutboxProcessorDependencies,
): Promise<ProcessResult | Current> {
  const { record, etag } = current;
  const found = await acceptedByExchange(deps.graph, record);
  if (found) return succeed(current, deps, undefined, found.conversationId);
  if (!record.saveToSentItems) {
    return fail(
      current,
      deps,
      problem(
        502,
        'outcome-unknown',
        'Outcome unknown',
        'An attempt to send the mail may have reached Microsoft Graph. It is not waiting in the Outbox, and with saveToSentItems false there is no copy in Sent Items to check. The mail was not sent again, to avoid a duplicate; check with the recipients before sending it again.',
      ),
      true,
    );
  }
  const cleared = clearAttempt(record, (deps.now ?? Date.now)());
  return { record: cleared, etag: await deps.store.update(cleared, etag) };
}

/**
 * Whether Exchange holds the mail: in the mailbox's Outbox (accepted, not yet let go by Exchange's message rate) or,
 * when it keeps a copy, in Sent Items. The Outbox is asked first because Exchange moves a leaving message from there
 * to Sent Items: asked in this order, a move between the two calls still shows in the second; in the other order it
 * could be missed by both. Two plain GETs rather than a `$batch`, whose items Graph may run in any order.
 */
async function acceptedByExchange(graph: Client, record: OutboxRecord): Promise<FoundMessage | undefined> {
  const inOutbox = await inFolder(graph, record, 'outbox');
  if (inOutbox || !record.saveToSentItems) return inOutbox;
  return inFolder(graph, record, 'sentitems');
}

/** A copy of the mail Exchange holds. */
interface FoundMessage {
  conversationId?: string;
}

/** The message with the mail's internetMessageId in the well-known `folder` of the mailbox, if there is one. */
async function inFolder(
  graph: Client,
  record: OutboxRecord,
  folder: 'outbox' | 'sentitems',
): Promise<FoundMessage | undefined> {
  const literal = record.internetMessageId.replace(/'/g, "''");
  const page = (await graph
    .api(`/users/${encodeURIComponent(record.mailbox)}/mailFolders/${folder}/messages`)
    .filter(`internetMessageId eq '${literal}'`)
    .select('id,conversationId')
    .top(1)
    .get()) as { value?: { conversationId?: string | null }[] };
  const found = page.value?.[0];
  if (!found) return undefined;
  return found.conversationId ? { conversationId: found.conversationId } : {};
}

/** Records what a failed send means for the mail (sendFailure.ts): it waits, fails, or is looked for next time. */
async function settleSendFailure(
  { record, etag }: Current,
  deps: OutboxProcessorDependencies,
  err: HttpProblem,
): Promise<ProcessResult> {
  const now = (deps.now ?? Date.now)();
  const failure = classifySendFailure(err);
  const requeue = async (next: OutboxRecord, delayMs: number): Promise<ProcessResult> => {
    await deps.store.update(next, etag);
    await deps.store.enqueue(record.id, delayMs);
    return { outcome: 'requeued', record: next };
  };
  switch (failure.kind) {
    case 'throttled': {
      // Graph refused the call: nothing was accepted, so the marker goes and the mail waits out Retry-After.
      const tried = withRequestId(record, failure.requestId);
      const wait = { notBefore: now + failure.retryAfterMs, reason: failure.reason };
      return requeue(toQueued(tried, wait, now), failure.retryAfterMs);
    }
    case 'dependency':
      // Nothing reached Graph: the marker goes and the mail waits as the failure asks.
      return requeue(
        toQueued(record, { notBefore: now + failure.retryAfterMs, reason: failure.reason }, now),
        failure.retryAfterMs,
      );
    case 'rejected':
      return fail({ record: withRequestId(record, failure.requestId), etag }, deps, failure.problem, true);
    case 'ambiguous': {
      // Graph may have accepted the mail. The marker stays; the next try checks Outbox and Sent Items.
      const tried = withRequestId(record, failure.requestId);
      return requeue(toUnconfirmed(tried, { notBefore: now + DEFAULT_RETRY_MS }, now), DEFAULT_RETRY_MS);
    }
  }
}

/**
 * Records the mail as sent (with Graph's `request-id` of the submission and the message's conversation, when known)
 * and publishes `mail.sent`.
 */
async function succeed(
  { record, etag }: Current,
  deps: OutboxProcessorDependencies,
  requestId: string | undefined,
  conversationId?: string,
): Promise<ProcessResult> {
  const now = (deps.now ?? Date.now)();
  const sent = toSent(record, { requestId, ...(conversationId ? { conversationId } : {}) }, now);
  await finish(record, sent, etag, deps, now);
  return { outcome: 'sent', record: sent };
}

/** Records the mail as failed with `doc` and publishes `mail.failed`; `attemptSettled`: see `toFailed`. */
async function fail(
  { record, etag }: Current,
  deps: OutboxProcessorDependencies,
  doc: ProblemDocument,
  attemptSettled: boolean,
): Promise<ProcessResult> {
  const now = (deps.now ?? Date.now)();
  const failed = toFailed(record, { problem: doc, attemptSettled }, now);
  await finish(record, failed, etag, deps, now);
  return { outcome: 'failed', record: failed };
}

/**
 * Records a final outcome, drops the stored request and its attachment blobs, and publishes the outcome's event:
 * without the ledger, since the conditional write just made this invocation the only one to finish the mail.
 */
async function finish(
  before: OutboxRecord,
  final: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  now: number,
): Promise<void> {
  await deps.store.update(final, etag);
  // A request kept in the record went with it; a failed blob delete only costs storage.
  if (before.inlineRequest === undefined) await deps.store.deletePayload(final.id).catch(() => undefined);
  await deps.publisher.publishOwned(outcomeEvent(final), now);
}

/**
 * Publishes again the event of a mail already final, with the same id, through the ledger: the invocation that
 * finished it may have died before publishing, or its webhook delivery failed (the ledger then says the queue has
 * the event, and only the webhook is redone).
 */
async function republish(record: OutboxRecord, deps: OutboxProcessorDependencies): Promise<ProcessResult> {
  await deps.publisher.publish(outcomeEvent(record), (deps.now ?? Date.now)());
  return { outcome: 'republished', record };
}
