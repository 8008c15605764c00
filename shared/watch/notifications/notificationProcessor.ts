/**
 * `processNotifications`: turns a queued notification into work. A change notification becomes a `mail.received`
 * event (metadata read with `$select`, deduplicated through the event ledger, since Graph redelivers); a lifecycle
 * notification reauthorizes, recreates or catches up. Transient failures are thrown so the queue retries; on the
 * last try, and at once for messages that can never succeed (not a queued notification, or a Graph refusal no retry
 * changes, such as a malformed message id), the message goes to the poison queue with its reason instead of looping.
 */
import type { InvocationContext } from '@azure/functions';
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import type { QueueClient } from '@azure/storage-queue';
import { logValue } from '../../platform/logSafe';
import { MAX_DEQUEUE_COUNT, queueTry } from '../../platform/queues/queueTrigger';
import { PublishInProgressError, type EventPublisher } from '../../events/eventPublisher';
import { ensureQueue } from '../../platform/storage/tables';
import type { Message } from '@microsoft/microsoft-graph-types';
import { checkForBounce, type BounceHandler } from '../bounces/bounceCheck';
import { DEFAULT_FOLDER } from '../watchFolders';
import { fitMailReceived, mailReceivedEvent, mailReceivedIdentity } from '../content/mailReceived';
import { readMessageForEvent, type MessageForEvent } from '../content/messageContent';
import { poisonedNotification, queuedNotification } from './notificationMessages';
import type { WatchService } from '../watchService';
import type { WatchStore } from '../watchStore';

/** What the processor needs. */
export interface ProcessorDependencies {
  graph: Client;
  store: WatchStore;
  service: WatchService;
  publisher: EventPublisher;
  /** `graph-notifications-poison`. */
  poisonQueue: QueueClient;
  /** Matches non-delivery reports arriving in an Inbox to sent mail (absent: reports are ordinary mail). */
  bounces?: BounceHandler;
}

/** Processes one queue message; resolves when done (or poisoned), rejects to have it retried. */
export async function processNotification(
  message: unknown,
  context: InvocationContext,
  deps: ProcessorDependencies,
): Promise<void> {
  const parsed = queuedNotification.schema.safeParse(message);
  if (!parsed.success) {
    await poison(deps, context, message, `not a queued notification: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return;
  }
  const work = parsed.data;
  try {
    const outcome =
      work.kind === 'change' ? await publishChange(work, deps, context) : await handleLifecycle(work, deps);
    context.info(
      `${work.kind === 'change' ? 'notification' : logValue(work.lifecycleEvent)} for ${work.mailbox}: ${outcome}`,
    );
  } catch (err) {
    const { tries: dequeueCount, last } = queueTry(context);
    const reason = describe(err);
    if (isPermanentRefusal(err)) {
      await poison(deps, context, message, `Graph refuses it for good (try ${dequeueCount}): ${reason}`);
      return;
    }
    if (last) {
      await poison(deps, context, message, `failed ${dequeueCount} times, last: ${reason}`);
      return;
    }
    context.warn(`${work.kind} for ${work.mailbox} failed (try ${dequeueCount} of ${MAX_DEQUEUE_COUNT}): ${reason}`);
    throw err;
  }
}

async function publishChange(
  work: { mailbox: string; folder: string; messageId: string; subscriptionId: string },
  deps: ProcessorDependencies,
  context: InvocationContext,
): Promise<string> {
  // An unwatched folder's late notifications are not wanted; a replaced subscription's still are (dedupe covers it).
  const record = await deps.store.get(work.mailbox, work.folder);
  if (!record) return 'ignored (mailbox no longer watched)';
  if (record.bounceOnly) return checkBounceOnly(work, deps);
  if (await deps.publisher.wasPublished(mailReceivedIdentity(work.mailbox, work.messageId))) return 'duplicate';
  let read: MessageForEvent;
  try {
    read = await readMessageForEvent(deps.graph, work.mailbox, work.messageId, record.content);
  } catch (err) {
    // Deleted or moved before we looked: there is nothing left to announce.
    if (err instanceof GraphError && err.statusCode === 404) return 'ignored (message no longer exists)';
    throw err;
  }
  if (read.unreadable) context.warn(`mail.received for ${work.mailbox} goes out without content: ${read.unreadable}`);
  // A report of a sent mail is announced as mail.bounced first: a failure retries both, the ledger dedupes each.
  if (deps.bounces && work.folder === DEFAULT_FOLDER) {
    const bounce = await checkForBounce(deps.graph, deps.bounces, work.mailbox, read.message);
    if (bounce) context.info(`report in ${work.mailbox}: ${bounce}`);
  }
  let outcome;
  try {
    outcome = await deps.publisher.publish(
      mailReceivedEvent(work.mailbox, read.message, read.content, work.folder),
      undefined,
      fitMailReceived,
    );
  } catch (err) {
    // A redelivery processed at the same moment: that invocation owns the event (and retries it if it fails).
    if (err instanceof PublishInProgressError) return 'duplicate (being published by another invocation)';
    throw err;
  }
  if (outcome === 'published') {
    // Statistics only: the event is out, so a busy mailbox's contended row must not fail (and repeat) the work.
    await deps.store
      .update(
        work.mailbox,
        (r) => ({ ...r, eventsPublished: r.eventsPublished + 1, lastEventAt: new Date().toISOString() }),
        work.folder,
      )
      .catch((err: unknown) => context.debug(`event counter of ${work.mailbox} not updated: ${describe(err)}`));
  }
  return outcome;
}

/**
 * A change in an Inbox watched for bounces only (BOUNCE_TRACKING): its metadata is read to see whether it may be a
 * report; nothing else is published for it.
 */
async function checkBounceOnly(
  work: { mailbox: string; folder: string; messageId: string },
  deps: ProcessorDependencies,
): Promise<string> {
  if (!deps.bounces || work.folder !== DEFAULT_FOLDER) return 'ignored (watched for bounces only)';
  let listed: Message & { id: string };
  try {
    listed = (await deps.graph
      .api(`/users/${encodeURIComponent(work.mailbox)}/messages/${encodeURIComponent(work.messageId)}`)
      .select('id,from,subject')
      .get()) as Message & { id: string };
  } catch (err) {
    if (err instanceof GraphError && err.statusCode === 404) return 'ignored (message no longer exists)';
    throw err;
  }
  return (await checkForBounce(deps.graph, deps.bounces, work.mailbox, listed)) ?? 'ignored (no report; bounces only)';
}

async function handleLifecycle(
  work: { mailbox: string; folder: string; subscriptionId: string; lifecycleEvent: string },
  deps: ProcessorDependencies,
): Promise<string> {
  switch (work.lifecycleEvent) {
    case 'reauthorizationRequired':
      return deps.service.reauthorize(work.mailbox, work.subscriptionId, work.folder);
    case 'subscriptionRemoved':
      return deps.service.replaceRemoved(work.mailbox, work.subscriptionId, work.folder);
    case 'missed': {
      const result = await deps.service.catchUpMailbox(work.mailbox, work.folder);
      if (!result) return 'ignored (mailbox no longer watched)';
      return `caught up: ${result.published} published, ${result.duplicates} already published${result.resynced ? ', resynced' : ''}`;
    }
    default:
      // The event name is the caller's text (checked against the subscription's clientState, but still not ours).
      return `ignored (unknown lifecycle event '${logValue(work.lifecycleEvent)}')`;
  }
}

async function poison(deps: ProcessorDependencies, context: InvocationContext, message: unknown, reason: string) {
  context.error(`moving a notification to ${deps.poisonQueue.name}: ${reason}`);
  await ensureQueue(deps.poisonQueue);
  await deps.poisonQueue.sendMessage(
    poisonedNotification.encode({ reason, failedAt: new Date().toISOString(), message }),
  );
}

/**
 * Graph statuses no retry can change (learn.microsoft.com/graph/errors): the request itself is wrong (400, e.g.
 * `ErrorInvalidIdMalformed` for a message id that is no Exchange id), access is denied (403: permission, application
 * access policy, conditional access), or the request can never be served as made (405, 406, 410, 411, 413, 414, 415,
 * 422). Not among them: 401 (an expired token; the next try gets a new one), 404 (a deleted message is handled where
 * it is read, and a mailbox may be back), 409, 412, 423 (state that changes), 429 and 5xx (throttling and outages).
 */
const PERMANENT_STATUSES = new Set([400, 403, 405, 406, 410, 411, 413, 414, 415, 422]);

/** True for a Graph answer that retrying cannot change (a 403 that says it throttles is not one). */
export function isPermanentRefusal(err: unknown): boolean {
  if (!(err instanceof GraphError) || !PERMANENT_STATUSES.has(err.statusCode)) return false;
  return !(err.statusCode === 403 && /throttl|too ?many|quota/i.test(`${err.code ?? ''} ${err.message}`));
}

/** How much of an error message a log line or poison reason quotes. */
const REASON_MAX_CHARS = 300;

/** An error as a one-line reason: Graph's answers can quote the request (a message id from the webhook's caller). */
function describe(err: unknown): string {
  if (err instanceof GraphError) {
    return `Graph ${err.statusCode} ${logValue(err.code ?? '')}: ${logValue(err.message, REASON_MAX_CHARS)}`;
  }
  return err instanceof Error
    ? `${err.name}: ${logValue(err.message.split('\n')[0], REASON_MAX_CHARS)}`
    : logValue(String(err), REASON_MAX_CHARS);
}
