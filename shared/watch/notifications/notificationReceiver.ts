/**
 * Graph's webhook endpoints (`/api/graph/notifications` and `/api/graph/lifecycle`, anonymous as Graph calls them).
 * They answer the validation handshake, check every item's subscription (a bounded number of storage reads per POST,
 * known ids remembered briefly: see subscriptionLookup.ts) and clientState (in constant time), and
 * write what passes to the `graph-notifications` queue before answering 202, so the answer is fast and nothing
 * accepted is lost: if the queue write fails the answer is 503 and Graph retries. The clientState itself never
 * leaves this module: queue messages and logs carry only subscription ids.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { QueueClient } from '@azure/storage-queue';
import { z } from 'zod';
import { logValue } from '../../platform/logSafe';
import { problem, problemResponse } from '../../platform/problems/problem';
import { ensureQueue } from '../../platform/storage/tables';
import { queuedNotification, type QueuedNotification } from './notificationMessages';
import { DEFAULT_FOLDER } from '../watchFolders';
import { readWebhookBody } from './webhookBody';
import { MAX_UNKNOWN_PER_POST, type ResolvedSubscriptions, type SubscriptionLookup } from './subscriptionLookup';

/** The queue between the webhook and `processNotifications`. */
export const NOTIFICATIONS_QUEUE = 'graph-notifications';
/** Largest notification POST accepted; Graph batches notifications, but never near this. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

const itemSchema = z.looseObject({
  subscriptionId: z.string().min(1).max(256),
  clientState: z.string().max(1024).nullish(),
  changeType: z.string().max(64).optional(),
  resource: z.string().max(2048).optional(),
  resourceData: z.looseObject({ id: z.string().min(1).max(1024).optional() }).nullish(),
  lifecycleEvent: z.string().max(64).optional(),
});
/** The body Graph POSTs: a collection of change or lifecycle notifications. */
export const notificationCollectionSchema = z.looseObject({ value: z.array(itemSchema).min(1).max(1000) });
type NotificationItem = z.infer<typeof itemSchema>;

/** What the receiver needs. */
export interface ReceiverDependencies {
  /** The subscription index as the webhook reads it (bounded, remembering known ids): one per process. */
  subscriptions: SubscriptionLookup;
  queue: QueueClient;
}

/** Why items were dropped, by reason. */
interface Dropped {
  unknownSubscription: string[];
  /** Past the POST's bound of unknown ids, dropped unread. */
  notLookedUp: string[];
  clientStateMismatch: string[];
}

/** Handles one POST from Graph to either webhook endpoint. */
export async function receiveGraphNotifications(
  request: HttpRequest,
  context: InvocationContext,
  deps: ReceiverDependencies,
): Promise<HttpResponseInit> {
  const validationToken = request.query.get('validationToken');
  if (validationToken !== null) {
    // URLSearchParams has already URL-decoded it, as Graph requires. Anyone can make this endpoint reflect any text,
    // so a browser must not sniff it into HTML: text/plain and nosniff, the token itself unchanged (it is Graph's).
    return {
      status: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' },
      body: validationToken,
    };
  }
  const parsed = await readCollection(request);
  if (!parsed.ok) {
    // Nobody reads the answer; a slow client that gave up is not a failure of the gateway (nor worth a stack).
    if (parsed.clientGone) {
      context.info(
        'notifications abandoned: the client disconnected before the request body arrived; nothing was accepted',
      );
    }
    return problemResponse(parsed.problem);
  }

  let resolved: ResolvedSubscriptions;
  try {
    resolved = await deps.subscriptions.resolve(parsed.items.map((item) => item.subscriptionId));
  } catch (err) {
    return unavailable(context, 'reading the subscriptions table', err);
  }

  const dropped: Dropped = { unknownSubscription: [], notLookedUp: [], clientStateMismatch: [] };
  const accepted: QueuedNotification[] = [];
  for (const item of parsed.items) {
    const entry = resolved.known.get(item.subscriptionId);
    if (!entry) {
      if (resolved.notLookedUp.has(item.subscriptionId)) dropped.notLookedUp.push(item.subscriptionId);
      else dropped.unknownSubscription.push(item.subscriptionId);
    } else if (!sameSecret(item.clientState, entry.clientState)) dropped.clientStateMismatch.push(item.subscriptionId);
    else accepted.push(toQueued(item, entry.mailbox, entry.folder ?? DEFAULT_FOLDER));
  }
  const droppedCount =
    dropped.unknownSubscription.length + dropped.notLookedUp.length + dropped.clientStateMismatch.length;
  if (droppedCount > 0) {
    // One line per POST, bounded whatever the POST holds: counts, and a few ids escaped and cut (they are the caller's).
    context.warn(
      `dropped ${droppedCount} of ${parsed.items.length} notification(s): ` +
        `unknown subscription ${sample(dropped.unknownSubscription)}; ` +
        `not looked up ${sample(dropped.notLookedUp)}${dropped.notLookedUp.length > 0 ? ` (past ${MAX_UNKNOWN_PER_POST} unknown subscriptions in one POST: forged)` : ''}; ` +
        `clientState mismatch ${sample(dropped.clientStateMismatch)}`,
    );
  }
  try {
    await ensureQueue(deps.queue);
    await Promise.all(accepted.map((n) => deps.queue.sendMessage(queuedNotification.encode(n))));
  } catch (err) {
    return unavailable(context, 'writing to the notifications queue', err);
  }
  context.info(
    `accepted ${accepted.length} notification(s) for ${new Set(accepted.map((n) => n.mailbox)).size} mailbox(es)`,
  );
  return { status: 202 };
}

/** Compares a presented clientState with the stored one in constant time (hashes hide the length too). */
export function sameSecret(presented: string | null | undefined, stored: string): boolean {
  if (typeof presented !== 'string') return false;
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(stored, 'utf8').digest();
  return timingSafeEqual(a, b);
}

async function readCollection(
  request: HttpRequest,
): Promise<
  { ok: true; items: NotificationItem[] } | { ok: false; problem: ReturnType<typeof problem>; clientGone?: true }
> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) return { ok: false, problem: tooLarge() };
  // Read as it streams in: a body without Content-Length is refused at the first chunk past the cap.
  const body = await readWebhookBody(request.body, MAX_BODY_BYTES);
  if (body.kind === 'tooLarge') return { ok: false, problem: tooLarge() };
  if (body.kind === 'clientGone') {
    return { ok: false, problem: notGraphShape('The request body was cut off.'), clientGone: true };
  }
  const raw = body.bytes;
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    return { ok: false, problem: notGraphShape('The body is not JSON, and there is no validationToken in the query.') };
  }
  const parsed = notificationCollectionSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      ok: false,
      problem: notGraphShape(
        `Expected { "value": [ notification, ... ] }: ${first.path.join('.') || 'body'} ${first.message}.`,
      ),
    };
  }
  const bad = parsed.data.value.findIndex((item) => !isChange(item) && !isLifecycle(item));
  if (bad >= 0) {
    return {
      ok: false,
      problem: notGraphShape(
        `value.${bad} is neither a change notification (changeType with resourceData.id) nor a lifecycle notification (lifecycleEvent).`,
      ),
    };
  }
  return { ok: true, items: parsed.data.value };
}

function isChange(item: NotificationItem): boolean {
  return item.lifecycleEvent === undefined && !!item.changeType && messageIdOf(item) !== undefined;
}

function isLifecycle(item: NotificationItem): boolean {
  return typeof item.lifecycleEvent === 'string' && item.lifecycleEvent.length > 0;
}

function messageIdOf(item: NotificationItem): string | undefined {
  if (item.resourceData?.id) return item.resourceData.id;
  const match = /\/messages\/([^/]+)$/i.exec(item.resource ?? '');
  return match?.[1];
}

function toQueued(item: NotificationItem, mailbox: string, folder: string): QueuedNotification {
  if (isLifecycle(item)) {
    return {
      kind: 'lifecycle',
      subscriptionId: item.subscriptionId,
      mailbox,
      folder,
      lifecycleEvent: item.lifecycleEvent!,
    };
  }
  return {
    kind: 'change',
    subscriptionId: item.subscriptionId,
    mailbox,
    folder,
    messageId: messageIdOf(item)!,
    changeType: item.changeType!,
  };
}

function notGraphShape(detail: string) {
  return problem(400, 'not-a-graph-notification', 'Not a Microsoft Graph notification', detail);
}

function tooLarge() {
  return problem(413, 'too-large', 'Notification body too large', `Bodies over ${MAX_BODY_BYTES} bytes are refused.`);
}

function unavailable(context: InvocationContext, what: string, err: unknown): HttpResponseInit {
  context.error(
    `notifications not accepted: ${what} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
  );
  // 5xx makes Graph retry the delivery, so nothing is lost while storage is down.
  return problemResponse(
    problem(
      503,
      'storage-unavailable',
      'Storage unavailable',
      `The gateway could not persist the notifications (${what}); Graph will retry.`,
    ),
    { 'retry-after': '10' },
  );
}

/** How many ids of each kind a dropped line quotes, and how much of each. */
const SAMPLE_IDS = 3;
const SAMPLE_ID_CHARS = 64;

/** `ids` as a bounded log fragment: how many, and the first few distinct ones through `logValue`. */
function sample(ids: string[]): string {
  if (ids.length === 0) return '-';
  const distinct = [...new Set(ids)];
  const shown = distinct.slice(0, SAMPLE_IDS).map((id) => `'${logValue(id, SAMPLE_ID_CHARS)}'`);
  const more = distinct.length > SAMPLE_IDS ? ` and ${distinct.length - SAMPLE_IDS} more` : '';
  return `${ids.length} (${shown.join(', ')}${more})`;
}
