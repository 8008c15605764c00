/**
 * Graph's side of webhooks: the validation handshake, change notifications (batched per notification URL, retried
 * on failure for up to 4 hours, dropped for a throttled endpoint, held while a subscription awaits
 * reauthorization) and lifecycle events. Every POST is recorded in a delivery log tests read.
 *
 * Rules (concepts/change-notifications-delivery-webhooks.md, concepts/change-notifications-lifecycle-events.md):
 * an answer must be 2xx; over 2,900 ms counts as slow; a failed notification is retried, then discarded after 4 hours.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { TenantUser } from '../tenant';
import type { EmulatedClock } from './clock';
import { GraphError } from './graphResponse';
import type { MailboxChange } from './mailboxStore';
import {
  subscriptionDateTime,
  type ChangeNotificationItem,
  type StoredSubscription,
  type SubscriptionStore,
} from './subscriptionStore';
import type { WebhookClient } from './webhookClient';

/** One POST Graph made (or dropped) to a webhook. */
export interface NotificationDelivery {
  kind: 'validation' | 'change' | 'lifecycle';
  /** The notification or lifecycle URL as the subscription names it (validation: before the token is added). */
  url: string;
  subscriptionIds: string[];
  /** 1 for the first try; 0 for a notification dropped without trying. */
  attempt: number;
  status?: number;
  error?: string;
  durationMs: number;
  /** Answered after more than 2,900 ms: Graph counts such responses against the endpoint. */
  slow: boolean;
  /** True when Graph gave up on (or never sent) these notifications. */
  dropped?: boolean;
  /** Emulated time of the attempt. */
  at: Date;
  /** The JSON posted. */
  body?: unknown;
}

/** Lifecycle events Graph sends (concepts/change-notifications-lifecycle-events.md). */
export type LifecycleEvent = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed';

/** Timing of validation and delivery. */
export interface DeliverySettings {
  /** How long an endpoint has to answer the validation request (Graph: 10 s). */
  validationTimeoutMs: number;
  /** How long a notification POST may take before it counts as failed (Graph's client: 3 s; default 10 s). */
  deliveryTimeoutMs: number;
  /** Wait before each retry of a failed POST; when they run out, the notifications are dropped. */
  retryDelaysMs: readonly number[];
}

/** Graph's defaults, with a generous delivery timeout so slow CI receivers do not flake. */
export const DEFAULT_DELIVERY_SETTINGS: DeliverySettings = {
  validationTimeoutMs: 10_000,
  deliveryTimeoutMs: 10_000,
  retryDelaysMs: [1000, 2000, 4000, 8000, 16000],
};

/** Responses slower than this count as slow (the docs' 2,900 ms). */
export const SLOW_RESPONSE_MS = 2900;
/** Notifications older than this are discarded instead of retried. */
export const MAX_RETRY_AGE_MS = 4 * 3600_000;

interface Job {
  kind: 'change' | 'lifecycle';
  url: string;
  items: Array<ChangeNotificationItem | Record<string, unknown>>;
  /** Emulated time the notifications were raised. */
  createdAt: number;
  attempt: number;
}

/** Delivers notifications for the subscriptions in a store. */
export class NotificationDispatcher {
  /** Every POST made or dropped, oldest first. */
  readonly log: NotificationDelivery[] = [];

  private readonly pendingByUrl = new Map<string, ChangeNotificationItem[]>();
  private flush: NodeJS.Immediate | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private busy = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  /** URL prefixes Graph "cannot reach": their validation requests fail without a connection being made. */
  private readonly unreachable = new Set<string>();

  constructor(
    private readonly settings: DeliverySettings,
    private readonly clock: EmulatedClock,
    private readonly client: Pick<WebhookClient, 'post' | 'close'>,
    private readonly store: SubscriptionStore,
    private readonly tenantId: string,
  ) {}

  /**
   * Validates `url` as Graph does before creating a subscription; resolves with the GraphError to answer when the
   * endpoint fails the handshake.
   */
  async validate(url: string, subscriptionId: string): Promise<GraphError | undefined> {
    if ([...this.unreachable].some((prefix) => url.startsWith(prefix))) {
      this.log.push({
        kind: 'validation',
        url,
        subscriptionIds: [subscriptionId],
        attempt: 1,
        error: 'unreachable (emulated)',
        durationMs: 0,
        slow: false,
        at: this.clock.now(),
      });
      return notOk('the endpoint could not be reached (emulated: setWebhookUnreachable)');
    }
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`;
    // Appended by hand so the token is encoded exactly as encodeURIComponent does (spaces as %20) and the URL's own
    // query string is kept as written.
    const target = `${url}${url.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(token)}`;
    const outcome = await this.client.post({
      url: target,
      contentType: 'text/plain; charset=utf-8',
      timeoutMs: this.settings.validationTimeoutMs,
    });
    this.log.push({
      kind: 'validation',
      url,
      subscriptionIds: [subscriptionId],
      attempt: 1,
      status: outcome.status,
      error: outcome.error,
      durationMs: outcome.durationMs,
      slow: outcome.durationMs > SLOW_RESPONSE_MS,
      at: this.clock.now(),
    });
    if (outcome.status === undefined) {
      return /^no answer within/.test(outcome.error ?? '')
        ? new GraphError(400, 'InvalidRequest', 'Subscription validation request timed out.')
        : notOk(`the endpoint could not be reached: ${outcome.error ?? 'unknown error'}`);
    }
    if (outcome.status !== 200) return notOk(`the endpoint answered ${outcome.status}`);
    const contentType = (outcome.contentType ?? '').split(';')[0].trim().toLowerCase();
    if (contentType !== 'text/plain') {
      return mismatch(`the answer's Content-Type was '${outcome.contentType ?? ''}', not text/plain`);
    }
    if (outcome.text !== token) return mismatch('the answer was not the decoded validation token');
    return undefined;
  }

  /** Makes webhooks under `urlPrefix` unreachable for Graph's validation (a firewall, a private endpoint), or not. */
  setUnreachable(urlPrefix: string, on: boolean): void {
    if (on) this.unreachable.add(urlPrefix);
    else this.unreachable.delete(urlPrefix);
  }

  /** Queues notifications for every subscription that watches this change. */
  onMailboxChange(user: TenantUser, change: MailboxChange): void {
    if (this.closed) return;
    for (const sub of this.store.all()) {
      if (sub.mailboxId !== user.id || !sub.changeTypes.has(change.type)) continue;
      if (sub.folderId !== undefined && sub.folderId !== change.folderId) continue;
      const item = this.changeItem(sub, user, change);
      if (sub.dropping) {
        this.log.push({
          kind: 'change',
          url: sub.notificationUrl,
          subscriptionIds: [sub.id],
          attempt: 0,
          durationMs: 0,
          slow: false,
          dropped: true,
          at: this.clock.now(),
          body: { value: [item] },
        });
      } else if (sub.awaitingReauthorization) {
        sub.held.push(item);
      } else {
        this.enqueue(sub.notificationUrl, [item]);
      }
    }
  }

  /** Delivers what a subscription held while it awaited reauthorization. */
  release(sub: StoredSubscription): void {
    sub.awaitingReauthorization = false;
    const items = sub.held.splice(0);
    if (items.length > 0) this.enqueue(sub.notificationUrl, items);
  }

  /** POSTs a lifecycle event to the subscription's lifecycle URL; resolves with the first attempt. */
  sendLifecycle(sub: StoredSubscription, event: LifecycleEvent): Promise<NotificationDelivery> {
    if (!sub.lifecycleNotificationUrl) throw new Error(`subscription ${sub.id} has no lifecycleNotificationUrl`);
    const item = {
      subscriptionId: sub.id,
      subscriptionExpirationDateTime: subscriptionDateTime(sub.expirationDateTime),
      tenantId: this.tenantId,
      clientState: sub.clientState,
      lifecycleEvent: event,
    };
    return this.attempt({
      kind: 'lifecycle',
      url: sub.lifecycleNotificationUrl,
      items: [item],
      createdAt: this.clock.now().getTime(),
      attempt: 1,
    });
  }

  /** Resolves once nothing is queued, in flight or waiting to be retried. */
  idle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Share of slow answers among the change and lifecycle POSTs made (to `url` when given); 0 when none. */
  slowRatio(url?: string): number {
    const tried = this.log.filter(
      (d) => d.kind !== 'validation' && d.attempt > 0 && (url === undefined || d.url === url),
    );
    return tried.length === 0 ? 0 : tried.filter((d) => d.slow).length / tried.length;
  }

  /** Forgets the log (queued and in-flight notifications go on). */
  clearLog(): void {
    this.log.length = 0;
  }

  /** Stops every timer and POST; nothing is delivered afterwards. */
  close(): void {
    this.closed = true;
    if (this.flush) clearImmediate(this.flush);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.pendingByUrl.clear();
    this.client.close();
    this.busy = 0;
    this.settle();
  }

  private changeItem(sub: StoredSubscription, user: TenantUser, change: MailboxChange): ChangeNotificationItem {
    const path = `Users/${user.id}/Messages/${change.message.id}`;
    return {
      id: randomBytes(9).toString('base64url'),
      subscriptionId: sub.id,
      subscriptionExpirationDateTime: subscriptionDateTime(sub.expirationDateTime),
      changeType: change.type,
      resource: path,
      resourceData: {
        '@odata.type': '#Microsoft.Graph.Message',
        '@odata.id': path,
        '@odata.etag': `W/"${change.message.changeKey}"`,
        id: change.message.id,
      },
      ...(sub.clientState !== null ? { clientState: sub.clientState } : {}),
      tenantId: this.tenantId,
    };
  }

  /** Collects items per URL and sends them after the current request: never inside the request that changed mail. */
  private enqueue(url: string, items: ChangeNotificationItem[]): void {
    const pending = this.pendingByUrl.get(url);
    if (pending) pending.push(...items);
    else this.pendingByUrl.set(url, [...items]);
    if (this.flush) return;
    this.busy++;
    this.flush = setImmediate(() => {
      this.flush = undefined;
      const batches = [...this.pendingByUrl];
      this.pendingByUrl.clear();
      const createdAt = this.clock.now().getTime();
      for (const [target, batch] of batches) {
        void this.attempt({ kind: 'change', url: target, items: batch, createdAt, attempt: 1 });
      }
      this.done();
    });
  }

  private async attempt(job: Job): Promise<NotificationDelivery> {
    this.busy++;
    try {
      // A subscription deleted or expired since the change gets nothing more.
      const items =
        job.kind === 'change'
          ? job.items.filter((i) => this.store.get(String(i.subscriptionId)) !== undefined)
          : job.items;
      const subscriptionIds = [...new Set(items.map((i) => String(i.subscriptionId)))];
      const body = { value: items };
      if (items.length === 0 || this.closed) {
        return {
          kind: job.kind,
          url: job.url,
          subscriptionIds,
          attempt: job.attempt,
          durationMs: 0,
          slow: false,
          dropped: true,
          at: this.clock.now(),
          body,
        };
      }
      const outcome = await this.client.post({
        url: job.url,
        contentType: 'application/json',
        body: JSON.stringify(body),
        timeoutMs: this.settings.deliveryTimeoutMs,
      });
      const entry: NotificationDelivery = {
        kind: job.kind,
        url: job.url,
        subscriptionIds,
        attempt: job.attempt,
        status: outcome.status,
        error: outcome.error,
        durationMs: outcome.durationMs,
        slow: outcome.durationMs > SLOW_RESPONSE_MS,
        at: this.clock.now(),
        body,
      };
      const ok = outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
      if (!ok && !this.closed) {
        const delay = this.settings.retryDelaysMs[job.attempt - 1];
        if (delay === undefined || this.clock.now().getTime() - job.createdAt >= MAX_RETRY_AGE_MS) entry.dropped = true;
        else this.retryLater({ ...job, items, attempt: job.attempt + 1 }, delay);
      }
      this.log.push(entry);
      return entry;
    } finally {
      this.done();
    }
  }

  private retryLater(job: Job, delayMs: number): void {
    this.busy++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.clock.now().getTime() - job.createdAt >= MAX_RETRY_AGE_MS) {
        this.log.push({
          kind: job.kind,
          url: job.url,
          subscriptionIds: [...new Set(job.items.map((i) => String(i.subscriptionId)))],
          attempt: job.attempt,
          error: 'older than 4 hours: discarded',
          durationMs: 0,
          slow: false,
          dropped: true,
          at: this.clock.now(),
          body: { value: job.items },
        });
      } else {
        void this.attempt(job);
      }
      this.done();
    }, delayMs);
    this.timers.add(timer);
  }

  private done(): void {
    if (this.busy > 0) this.busy--;
    this.settle();
  }

  private settle(): void {
    if (this.busy !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function notOk(note: string): GraphError {
  return new GraphError(
    400,
    'ValidationError',
    'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.',
    { 'x-emulator-note': note },
  );
}

function mismatch(note: string): GraphError {
  return new GraphError(
    400,
    'ValidationError',
    'Subscription validation request failed. Response must exactly match validationToken query parameter.',
    { 'x-emulator-note': note },
  );
}
