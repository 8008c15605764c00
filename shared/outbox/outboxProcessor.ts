/**
 * Works one `mail-outbox` message: decides from the mail's record whether it may go now (the shared mailbox pacer),
 * sends it through today's MailSender, records the outcome and publishes `mail.sent` / `mail.failed` /
 * `mail.deferred`. It never sleeps: anything that must wait is put back on the queue with a visibility delay.
 *
 * At most once to Graph: before the first Graph call the record gets an attempt marker (`attemptStartedAt`), written
 * with the ETag so that only one invocation can start an attempt. The marker is cleared only when Graph's answer
 * proves the mail was not accepted (a 4xx, 429 or 503). A message that finds a marker left behind (a crash, a lost
 * answer) looks the mail up by the `internetMessageId` the gateway gave it, in the mailbox's Outbox folder (where
 * Exchange holds what it accepted until its own 30-a-minute rate lets it leave) and then in Sent Items: found in
 * either means sent; found in neither means not accepted, and it is tried again. With `saveToSentItems: false` a mail
 * that has left the Outbox is kept nowhere, so such a mail not found in the Outbox is `failed` with "outcome unknown"
 * rather than risk sending it twice.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import { mailboxEvent } from '../events/cloudEvent';
import type { EventPublisher } from '../events/eventPublisher';
import type { AppCredential } from '../identity/appCredential';
import { explainAccessDenied } from '../mail/accessDenied';
import { reviveAttachmentBlobs } from '../mail/attachmentBlob';
import type { MailSender } from '../mail/mailSender';
import { HttpProblem } from '../platform/httpProblem';
import { parseSendRequest } from '../mail/sendRequest';
import { problem, type ProblemDocument } from '../platform/problem';
import { PacerContentionError, type MailboxPacer, type Reservation } from '../pacing/mailboxPacer';
import { DECISION_VALID_MS } from '../pacing/messageWindow';
import { OutboxRecordChangedError, type OutboxRecord, type OutboxStore } from './outboxStore';

/** Default of `OUTBOX_MAX_AGE_HOURS`: a mail not sent within a day of being due fails. */
export const DEFAULT_OUTBOX_MAX_AGE_MS = 24 * 3_600_000;

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
  /** The clock (tests pass the pacer's simulated time). */
  now?: () => number;
  /** Uniform in [0, 1): the jitter of a requeue after pacer contention (tests pass a fixed one). */
  random?: () => number;
}

/** What one message led to. */
export type ProcessOutcome = 'sent' | 'failed' | 'requeued' | 'deferred' | 'ignored';

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

/** Backoff when Graph gave no Retry-After, or the answer was lost. */
const DEFAULT_RETRY_MS = 30_000;

/**
 * A mail whose pacer row other instances kept changing (a burst from one mailbox) comes back after 1 s plus up to
 * this much jitter, so that the invocations that collided spread out instead of colliding again.
 */
export const CONTENTION_RETRY_MS = { min: 1_000, jitter: 4_000 };

/** Processes the queue message for mail `id`; `slotAt` is the pacer slot the message holds, if any. */
export async function processOutboxMail(
  id: string,
  deps: OutboxProcessorDependencies,
  slotAt?: number,
): Promise<ProcessResult> {
  const now = deps.now ?? Date.now;
  const stored = await deps.store.get(id);
  // No record: the accept that wrote this message was rolled back. Final: a redelivered message.
  if (!stored || stored.record.status === 'sent' || stored.record.status === 'failed') {
    return { outcome: 'ignored', record: stored?.record };
  }
  let { record, etag } = stored;

  if (now() - dueAt(record) > deps.maxAgeMs) {
    return fail(
      record,
      etag,
      deps,
      problem(
        504,
        'outbox-expired',
        'The mail was not sent in time',
        `The mail could not be sent within ${Math.round(deps.maxAgeMs / 3_600_000)} h of being due (OUTBOX_MAX_AGE_HOURS, counted from its sendAt, else from its acceptance); the last reason was: ${record.reason ?? record.status}.`,
      ),
    );
  }
  // A message holding a pacer slot comes back at it; its record's notBefore is that slot, only for the status.
  if (record.notBefore !== undefined && record.notBefore > now() && slotAt === undefined) {
    await deps.store.enqueue(id, record.notBefore - now());
    return { outcome: 'requeued', record };
  }
  if (record.attemptStartedAt !== undefined) {
    const settled = await settleInterruptedAttempt(record, etag, deps);
    if (settled.result) return settled.result;
    ({ record, etag } = settled);
  }

  // A mail back at its slot is nearly always let go: its request is fetched meanwhile, so that the mail holds its
  // grant (a lease, a count) for less time.
  const prefetched = slotAt !== undefined && slotAt <= now() + 1000 ? deps.store.readRequest(record) : undefined;
  prefetched?.catch(() => undefined);
  let reservation: Reservation;
  try {
    reservation = await deps.pacer.reserve(record.mailbox, record.recipients, now, slotAt);
  } catch (err) {
    // Contention on the pacer row is normal under load, not a failure: the message comes back a little later,
    // still holding its slot if it had one; nothing about the mail changed.
    if (!(err instanceof PacerContentionError)) throw err;
    await deps.store.enqueue(id, contentionDelayMs(deps), slotAt);
    return { outcome: 'requeued', record, waiting: 'pacer row busy (other instances sending from the mailbox)' };
  }
  if (reservation.kind === 'scheduled') {
    // The mail has its own slot: it comes back at it, holding it, and nothing else can take it meanwhile.
    await deps.store.enqueue(id, reservation.slotAt - now(), reservation.slotAt);
    if (reservation.slotAt - now() >= PACED_STATUS_MIN_MS) {
      const paced: OutboxRecord = {
        ...record,
        status: 'queued',
        notBefore: reservation.slotAt,
        reason: 'rate',
        updatedAt: now(),
      };
      // Only the status page reads it; the queue message already holds the slot, so a lost write costs nothing.
      const written = await deps.store.update(paced, etag).then(
        () => true,
        () => false,
      );
      if (written) return { outcome: 'requeued', record: paced };
    }
    return { outcome: 'requeued', record };
  }
  if (reservation.kind === 'wait') {
    await deps.store.enqueue(id, reservation.retryAfterMs, reservation.slotAt);
    return { outcome: 'requeued', record };
  }
  if (reservation.kind === 'tooManyRecipients') {
    return fail(
      record,
      etag,
      deps,
      problem(
        422,
        'too-many-recipients-per-day',
        'More recipients than the mailbox may send to in a day',
        `The mail has ${record.recipients} recipients; Exchange allows ${reservation.recipientsPerDay} per mailbox in 24 h.`,
      ),
    );
  }
  if (reservation.kind === 'deferred') {
    const deferred: OutboxRecord = {
      ...record,
      status: 'deferred',
      notBefore: reservation.notBefore,
      reason: 'dailyRecipients',
      updatedAt: now(),
    };
    await deps.store.update(deferred, etag);
    await deps.publisher.publish(
      mailboxEvent(
        'mail.deferred',
        record.mailbox,
        `${id}/${reservation.notBefore}`,
        { id, status: 'deferred', notBefore: new Date(reservation.notBefore).toISOString(), reason: 'dailyRecipients' },
        new Date(now()),
      ),
    );
    await deps.store.enqueue(id, reservation.notBefore - now());
    return { outcome: 'deferred', record: deferred };
  }

  let lease = reservation.lease;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await deps.pacer.release(lease, now).catch(() => undefined);
  };
  try {
    // The marker goes in before Graph is called; losing this race means another invocation owns the attempt.
    const attempt: OutboxRecord = {
      ...record,
      status: 'sending',
      attempts: record.attempts + 1,
      attemptStartedAt: now(),
      updatedAt: now(),
    };
    delete attempt.notBefore;
    delete attempt.reason;
    try {
      etag = await deps.store.update(attempt, etag);
    } catch (err) {
      if (err instanceof OutboxRecordChangedError) return { outcome: 'ignored' };
      throw err;
    }
    record = attempt;
    // Parsed as it downloads: the stored request is held once, as its parsed values, never as bytes and text too.
    // Large attachments are references to their blobs (a request stored before those existed has base64 inline).
    const parsed = parseSendRequest(reviveAttachmentBlobs(await (prefetched ?? deps.store.readRequest(record))));
    if (!parsed.ok) {
      return fail(
        record,
        etag,
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
    const request = { ...parsed.request, internetMessageId: record.internetMessageId };
    // The pacer counts the mail at its decision until the release; a decision grown stale (the uploads of a large
    // draft, a stalled instance) is renewed before submitting, or the mail waits and nothing is submitted.
    const beforeSubmit = async (): Promise<void> => {
      if (now() - lease.grantedAt <= DECISION_VALID_MS) return;
      const renewed = await deps.pacer.renew(lease, now);
      if (renewed.kind !== 'granted') throw new DecisionLapsedError(renewed.retryAfterMs);
      lease = renewed.lease;
    };
    let sent: { requestId?: string } | undefined;
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
    if (sent) return await succeed(record, etag, deps, sent.requestId);
    if (failure instanceof DecisionLapsedError) return await giveBackAttempt(record, etag, deps, failure.retryAfterMs);
    // The renewal before submitting lost to other instances every time: nothing was submitted either.
    if (failure instanceof PacerContentionError)
      return await giveBackAttempt(record, etag, deps, contentionDelayMs(deps));
    return await handleSendFailure(record, etag, deps, failure);
  } finally {
    await release();
  }
}

/** How long a mail waits after pacer contention: {@link CONTENTION_RETRY_MS}, jittered. */
function contentionDelayMs(deps: OutboxProcessorDependencies): number {
  return CONTENTION_RETRY_MS.min + Math.floor((deps.random ?? Math.random)() * CONTENTION_RETRY_MS.jitter);
}

/**
 * When the mail became due: its `sendAt`, else its acceptance. A mail scheduled days ahead is not old at its send
 * time. A record written before `sendAt` was kept holds it as `notBefore` while it still waits for it.
 */
function dueAt(record: OutboxRecord): number {
  const sendAt = record.sendAt ?? (record.reason === 'sendAt' ? record.notBefore : undefined);
  return Math.max(record.createdAt, sendAt ?? record.createdAt);
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
  record: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  retryAfterMs: number,
): Promise<ProcessResult> {
  const queued: OutboxRecord = {
    ...record,
    status: 'queued',
    attempts: Math.max(0, record.attempts - 1),
    updatedAt: (deps.now ?? Date.now)(),
  };
  delete queued.attemptStartedAt;
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
  if (!stored || stored.record.status === 'sent' || stored.record.status === 'failed') {
    return { outcome: 'ignored', record: stored?.record };
  }
  const mayHaveReachedGraph = stored.record.attemptStartedAt !== undefined;
  return fail(
    stored.record,
    stored.etag,
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
  );
}

/** Decides an attempt left unfinished; returns a result, or the record to try again with. */
async function settleInterruptedAttempt(
  record: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
): Promise<{ result: ProcessResult } | { result?: undefined; record: OutboxRecord; etag: string }> {
  if (await acceptedByExchange(deps.graph, record)) return { result: await succeed(record, etag, deps, undefined) };
  if (!record.saveToSentItems) {
    return {
      result: await fail(
        record,
        etag,
        deps,
        problem(
          502,
          'outcome-unknown',
          'Outcome unknown',
          'An attempt to send the mail may have reached Microsoft Graph. It is not waiting in the Outbox, and with saveToSentItems false there is no copy in Sent Items to check. The mail was not sent again, to avoid a duplicate; check with the recipients before sending it again.',
        ),
        true,
      ),
    };
  }
  const cleared: OutboxRecord = { ...record, status: 'queued', updatedAt: (deps.now ?? Date.now)() };
  delete cleared.attemptStartedAt;
  return { record: cleared, etag: await deps.store.update(cleared, etag) };
}

/**
 * Whether Exchange holds the mail: in the mailbox's Outbox (accepted, not yet let go by Exchange's message rate) or,
 * when it keeps a copy, in Sent Items. The Outbox is asked first because Exchange moves a leaving message from there
 * to Sent Items: asked in this order, a move between the two calls still shows in the second; in the other order it
 * could be missed by both. Two plain GETs rather than a `$batch`, whose items Graph may run in any order.
 */
async function acceptedByExchange(graph: Client, record: OutboxRecord): Promise<boolean> {
  if (await inFolder(graph, record, 'outbox')) return true;
  return record.saveToSentItems && (await inFolder(graph, record, 'sentitems'));
}

/** Whether the well-known `folder` of the mailbox holds a message with the mail's internetMessageId. */
async function inFolder(graph: Client, record: OutboxRecord, folder: 'outbox' | 'sentitems'): Promise<boolean> {
  const literal = record.internetMessageId.replace(/'/g, "''");
  const page = (await graph
    .api(`/users/${encodeURIComponent(record.mailbox)}/mailFolders/${folder}/messages`)
    .filter(`internetMessageId eq '${literal}'`)
    .select('id')
    .top(1)
    .get()) as { value?: unknown[] };
  return (page.value?.length ?? 0) > 0;
}

async function handleSendFailure(
  record: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  err: unknown,
): Promise<ProcessResult> {
  if (!(err instanceof HttpProblem)) throw err;
  const graph = err.doc.graph as { status?: number; requestId?: string } | undefined;
  const requestIds = graph?.requestId ? [...record.requestIds, graph.requestId] : record.requestIds;
  const now = (deps.now ?? Date.now)();
  const status = graph?.status;
  if (status === 429 || status === 503) {
    // Graph refused the call: nothing was accepted, so the marker goes and the mail waits out Retry-After.
    const waitMs = Number(err.headers['retry-after'] ?? NaN) * 1000 || DEFAULT_RETRY_MS;
    const retry: OutboxRecord = {
      ...record,
      status: 'queued',
      requestIds,
      notBefore: now + waitMs,
      reason: `graph ${status}`,
      updatedAt: now,
    };
    delete retry.attemptStartedAt;
    await deps.store.update(retry, etag);
    await deps.store.enqueue(record.id, waitMs);
    return { outcome: 'requeued', record: retry };
  }
  if (status !== undefined && status >= 400 && status < 500)
    return fail({ ...record, requestIds }, etag, deps, err.doc, true);
  const slug = err.doc.type.split('/').pop() ?? '';
  if (status === undefined && slug !== 'graph-unreachable') {
    // The gateway's own dependency failed (Key Vault, Entra ID) before the call went out: nothing reached Graph.
    const waitMs = Number(err.headers['retry-after'] ?? NaN) * 1000 || DEFAULT_RETRY_MS;
    const retry: OutboxRecord = {
      ...record,
      status: 'queued',
      requestIds,
      notBefore: now + waitMs,
      reason: `${slug}: ${err.doc.detail}`,
      updatedAt: now,
    };
    delete retry.attemptStartedAt;
    await deps.store.update(retry, etag);
    await deps.store.enqueue(record.id, waitMs);
    return { outcome: 'requeued', record: retry };
  }
  // No answer, or a 5xx: Graph may have accepted the mail. Keep the marker; the next try checks Outbox and Sent Items.
  const ambiguous: OutboxRecord = {
    ...record,
    requestIds,
    notBefore: now + DEFAULT_RETRY_MS,
    reason: 'previous attempt interrupted',
    updatedAt: now,
  };
  await deps.store.update(ambiguous, etag);
  await deps.store.enqueue(record.id, DEFAULT_RETRY_MS);
  return { outcome: 'requeued', record: ambiguous };
}

async function succeed(
  record: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  requestId: string | undefined,
): Promise<ProcessResult> {
  const now = (deps.now ?? Date.now)();
  const sent: OutboxRecord = {
    ...record,
    status: 'sent',
    sentAt: now,
    updatedAt: now,
    requestIds: requestId ? [...record.requestIds, requestId] : record.requestIds,
  };
  delete sent.attemptStartedAt;
  delete sent.notBefore;
  delete sent.reason;
  await finish(sent, etag, deps, now, 'mail.sent', {
    id: record.id,
    status: 'sent',
    internetMessageId: record.internetMessageId,
    requestId: requestId ?? null,
  });
  return { outcome: 'sent', record: sent };
}

async function fail(
  record: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  doc: ProblemDocument,
  clearMarker = false,
): Promise<ProcessResult> {
  const now = (deps.now ?? Date.now)();
  const failed: OutboxRecord = { ...record, status: 'failed', problem: doc, updatedAt: now };
  if (clearMarker) delete failed.attemptStartedAt;
  delete failed.notBefore;
  await finish(failed, etag, deps, now, 'mail.failed', { id: record.id, status: 'failed', problem: doc });
  return { outcome: 'failed', record: failed };
}

/** Records a final outcome, drops the stored request and its attachment blobs, and publishes the outcome's event. */
async function finish(
  final: OutboxRecord,
  etag: string,
  deps: OutboxProcessorDependencies,
  now: number,
  type: 'mail.sent' | 'mail.failed',
  data: Record<string, unknown>,
): Promise<void> {
  // The request's content is not kept once the outcome is final; a failed blob delete only costs storage.
  const inRecord = final.inlineRequest !== undefined;
  delete final.inlineRequest;
  await deps.store.update(final, etag);
  if (!inRecord) await deps.store.deletePayload(final.id).catch(() => undefined);
  await deps.publisher.publish(mailboxEvent(type, final.mailbox, final.id, data, new Date(now)));
}
