/**
 * A strict Microsoft Graph emulator on loopback HTTPS. It enforces Graph's token, permission, mailbox and
 * throttling rules (see docs/GRAPH-FACTS.md) so the product meets the failures it will meet in production,
 * and lets tests look inside: requests seen, peak concurrency per mailbox, mailbox contents, injected faults.
 *
 * Mail reading, drafts, attachments, upload sessions and sending (with delivery into the tenant's Inboxes) are built
 * in, and so are change notifications (subscriptions, webhook validation and delivery, lifecycle events on an
 * emulated clock), messages delta and JSON `$batch`. Further features plug in as more routes through
 * {@link GraphEmulator.route}, and the pipeline applies the common rules to them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody, sendJson, startHttpsServer, type RunningServer } from '../httpServer';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { PemPair } from '../testCa';
import type { TokenIssuer } from '../tokenIssuer';
import { attachmentRoutes } from './attachmentRoutes';
import { DEFAULT_GRAPH_AUDIENCES } from './auth';
import { batchRoutes } from './batchRoute';
import { OffsetClock, type EmulatedClock } from './clock';
import { DeltaTokens, deltaRoutes } from './deltaRoutes';
import { MailDelivery, type OutboundMail } from './delivery';
import { draftRoutes } from './draftRoutes';
import { FaultInjector, type FaultSpec } from './faults';
import type { EmulatedRequest, FinishedResponse } from './graphResponse';
import { isInspectionPath, serveInspection } from './inspection';
import { MailboxStore, type StoredMessage } from './mailboxStore';
import { mailReadRoutes } from './mailReadRoutes';
import { mailSendRoutes } from './mailSendRoutes';
import { messageActionRoutes } from './messageActionRoutes';
import {
  DEFAULT_DELIVERY_SETTINGS,
  NotificationDispatcher,
  type LifecycleEvent,
  type NotificationDelivery,
} from './notificationDelivery';
import type { NdrRecord } from './nondeliveryReport';
import { GraphPipeline } from './pipeline';
import type { SeenRequest } from './requestLog';
import { RouteTable, type GraphRoute } from './router';
import {
  DEFAULT_MAX_EXPIRATION_MINUTES,
  DEFAULT_MAX_SUBSCRIPTIONS_PER_MAILBOX,
  subscriptionRoutes,
  type SubscriptionRouteDeps,
} from './subscriptionRoutes';
import {
  EXCHANGE_SUBMISSION_LIMITS,
  SubmissionQueue,
  type MinuteCount,
  type SubmissionSummary,
} from './submissionQueue';
import { SubscriptionStore, subscriptionJson } from './subscriptionStore';
import { EXCHANGE_LIMITS, MailboxThrottle } from './throttle';
import { EXCHANGE_UPLOAD_LIMITS, UploadBudget } from './uploadBudget';
import { DEFAULT_UPLOAD_SESSION_LIFETIME_MS, UploadSessions, uploadSessionRoutes } from './uploadSessions';
import { userRoutes } from './userRoutes';
import { ValueStreams, type ValueStreamPacing, type ValueStreamRecord } from './valueStreams';
import { WebhookClient } from './webhookClient';

export type { FaultSpec } from './faults';
export type { SeenRequest } from './requestLog';
export type { GraphRoute, GraphRequestContext, HttpMethod, RouteHandler } from './router';
export type { EmulatedRequest, FinishedResponse, GraphResponse } from './graphResponse';
export { GraphError } from './graphResponse';
export { MailboxStore } from './mailboxStore';
export type { MailboxChange, NewMessage, StoredAttachment, StoredFolder, StoredMessage } from './mailboxStore';
export type { OutboundMail } from './delivery';
export type { EmulatedClock } from './clock';
export type { LifecycleEvent, NotificationDelivery } from './notificationDelivery';
export type { ChangeNotificationItem } from './subscriptionStore';
export type { NdrRecord } from './nondeliveryReport';
export type { ValueStreamPacing, ValueStreamRecord } from './valueStreams';
export type { MinuteCount, SubmissionOutcome, SubmissionRecord, SubmissionSummary } from './submissionQueue';

/** Options of {@link GraphEmulator.start}. */
export interface GraphEmulatorOptions {
  /** The organisation whose users and mailboxes Graph serves. */
  tenant: EmulatedTenant;
  /** Verifies access tokens (signature, lifetime, audience). */
  issuer: TokenIssuer;
  /** Issues the server certificate; clients trust it through NODE_EXTRA_CA_CERTS. */
  ca: PemPair;
  /** Accepted token audiences (default: Graph's resource URI and app id). */
  audiences?: string[];
  /** Emulated service time per request, while the request counts as in flight (default 0). */
  latencyMs?: { min: number; max: number };
  /**
   * Per (app, mailbox) limits (default: Exchange Online's 4 concurrent, 10,000 requests per 10 minutes, 150 MB of
   * request bodies per 5 minutes), Exchange's per-mailbox sending limits (default 30 messages per minute, 10,000
   * recipients per day) and the lifetime of attachment upload URLs (default 2 hours).
   */
  limits?: GraphLimits;
  /** Change-notification timing and limits. */
  subscriptions?: SubscriptionOptions;
}

/** What {@link GraphEmulatorOptions.subscriptions} can change. */
export interface SubscriptionOptions {
  /** Longest lifetime a subscription may ask for (default 10,070 minutes, what live tenants answer). */
  maxExpirationMinutes?: number;
  /** How long a webhook has to answer the validation request (default 10,000 ms). */
  validationTimeoutMs?: number;
  /** How long a notification POST may take before it counts as failed (default 10,000 ms). */
  deliveryTimeoutMs?: number;
  /** Waits before each retry of a failed notification POST (default 1, 2, 4, 8 and 16 s). */
  retryDelaysMs?: number[];
  /** Active subscriptions per mailbox over all apps (default 1,000, Outlook's limit). */
  maxSubscriptionsPerMailbox?: number;
}

/** The numbers {@link GraphEmulatorOptions.limits} can change; all must be positive. */
export interface GraphLimits {
  /** Requests in flight at once per (app, mailbox). */
  concurrentPerMailbox?: number;
  /** Requests per {@link windowMs} per (app, mailbox). */
  requestsPerWindow?: number;
  /** The sliding window of {@link requestsPerWindow}, in milliseconds. */
  windowMs?: number;
  /** Request-body bytes (POST/PUT/PATCH, upload-session chunks included) per {@link uploadWindowMs} per (app, mailbox). */
  uploadBytesPerWindow?: number;
  /** The sliding window of {@link uploadBytesPerWindow}, in milliseconds. */
  uploadWindowMs?: number;
  /** How long an attachment upload URL stays valid. */
  uploadSessionLifetimeMs?: number;
  /**
   * Messages that may leave one mailbox's Outbox in any 60 seconds of emulated time; Graph still answers 202 past it
   * and the rest waits, first in first out (Exchange Online: 30).
   */
  messagesPerMinute?: number;
  /**
   * Recipients (To + Cc + Bcc) one mailbox may send to in any 24 hours of emulated time; a message past it becomes an
   * NDR (550 5.1.90) in the sender's Inbox (Exchange Online: 10,000).
   */
  recipientsPerDay?: number;
  /**
   * External recipients (outside the tenant's domain) all mailboxes together may send to in any 24 hours of emulated
   * time (TERRL); a message past it becomes an NDR (550 5.7.233) in the sender's Inbox. Default: not enforced.
   */
  tenantExternalRecipientsPerDay?: number;
}

/** Body cap at the socket; routes apply their own (smaller) caps. */
const SOCKET_BODY_LIMIT = 200 * 1024 * 1024;

/** A running Graph emulator. */
export class GraphEmulator {
  /** HTTPS origin, e.g. `https://127.0.0.1:43123`; Graph's routes are under `/v1.0`. */
  readonly url: string;
  /** Every Graph request answered (inspection calls excluded), oldest first. */
  readonly requests: SeenRequest[] = [];
  /** Mail sent to recipients outside the tenant, oldest first (also at `GET /_emulator/outbound`). */
  readonly outbound: OutboundMail[];
  /** Emulated time: subscription expiry and the 4-hour retry window follow it; tests move it forward. */
  readonly clock: EmulatedClock;

  private readonly tenant: EmulatedTenant;
  private readonly routes = new RouteTable();
  private readonly throttle: MailboxThrottle;
  private readonly uploads: UploadBudget;
  private readonly faults = new FaultInjector();
  private readonly mailboxes = new Map<string, MailboxStore>();
  private readonly pipeline: GraphPipeline;
  private readonly subscriptionStore: SubscriptionStore;
  private readonly subscriptionDeps: SubscriptionRouteDeps;
  private readonly dispatcher: NotificationDispatcher;
  private readonly deltaTokens = new DeltaTokens();
  private readonly submissionQueue: SubmissionQueue;
  private readonly valueStreams = new ValueStreams();

  private constructor(
    options: GraphEmulatorOptions,
    private readonly server: RunningServer,
  ) {
    this.url = server.url;
    this.tenant = options.tenant;
    const limits = {
      ...EXCHANGE_LIMITS,
      ...EXCHANGE_UPLOAD_LIMITS,
      ...EXCHANGE_SUBMISSION_LIMITS,
      uploadSessionLifetimeMs: DEFAULT_UPLOAD_SESSION_LIFETIME_MS,
      ...definedOnly(options.limits ?? {}),
    };
    for (const [name, value] of Object.entries(limits)) {
      if (!(value > 0)) throw new Error(`GraphEmulator limits.${name} must be positive`);
    }
    this.throttle = new MailboxThrottle(limits);
    this.uploads = new UploadBudget(limits);
    const delivery = new MailDelivery(options.tenant, (user) => this.mailboxOf(user));
    this.outbound = delivery.outbound;
    const latencyMs = options.latencyMs ?? { min: 0, max: 0 };
    if (latencyMs.min < 0 || latencyMs.max < latencyMs.min)
      throw new Error('GraphEmulator latencyMs needs 0 <= min <= max');
    this.pipeline = new GraphPipeline({
      tenant: options.tenant,
      issuer: options.issuer,
      audiences: options.audiences ?? DEFAULT_GRAPH_AUDIENCES,
      latencyMs,
      routes: this.routes,
      throttle: this.throttle,
      uploads: this.uploads,
      faults: this.faults,
      log: this.requests,
      mailboxOf: (user) => this.mailboxOf(user),
      origin: server.url,
    });
    const sessions = new UploadSessions(limits.uploadSessionLifetimeMs);
    const watch = options.subscriptions ?? {};
    const clock = new OffsetClock(() => {
      this.subscriptionStore.sweep();
      this.submissionQueue.release();
    });
    this.clock = clock;
    this.submissionQueue = new SubmissionQueue(
      { ...limits, tenantDomains: [options.tenant.domain.toLowerCase()] },
      clock,
      delivery,
      (user) => this.mailboxOf(user),
    );
    this.subscriptionStore = new SubscriptionStore(clock);
    this.dispatcher = new NotificationDispatcher(
      {
        validationTimeoutMs: watch.validationTimeoutMs ?? DEFAULT_DELIVERY_SETTINGS.validationTimeoutMs,
        deliveryTimeoutMs: watch.deliveryTimeoutMs ?? DEFAULT_DELIVERY_SETTINGS.deliveryTimeoutMs,
        retryDelaysMs: watch.retryDelaysMs ?? DEFAULT_DELIVERY_SETTINGS.retryDelaysMs,
      },
      clock,
      new WebhookClient(options.ca.certPem),
      this.subscriptionStore,
      options.tenant.tenantId,
    );
    this.subscriptionDeps = {
      tenant: options.tenant,
      clock,
      store: this.subscriptionStore,
      dispatcher: this.dispatcher,
      mailboxOf: (user) => this.mailboxOf(user),
      maxExpirationMinutes: watch.maxExpirationMinutes ?? DEFAULT_MAX_EXPIRATION_MINUTES,
      maxPerMailbox: watch.maxSubscriptionsPerMailbox ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_MAILBOX,
    };
    for (const def of [
      ...userRoutes(),
      ...mailReadRoutes(),
      ...draftRoutes(),
      ...attachmentRoutes(this.valueStreams),
      ...messageActionRoutes(this.valueStreams),
      ...mailSendRoutes({ tenant: options.tenant, submissions: this.submissionQueue }),
      ...uploadSessionRoutes({
        tenant: options.tenant,
        sessions,
        budget: this.uploads,
        mailboxOf: (user) => this.mailboxOf(user),
      }),
      ...subscriptionRoutes(this.subscriptionDeps),
      ...deltaRoutes(this.deltaTokens),
      ...batchRoutes(),
    ]) {
      this.routes.add(def);
    }
  }

  /** Starts the emulator on a free loopback port. */
  static async start(options: GraphEmulatorOptions): Promise<GraphEmulator> {
    let emulator: GraphEmulator | undefined;
    const server = await startHttpsServer(options.ca, (req, res) => {
      if (!emulator) throw new Error('Graph emulator is still starting');
      return emulator.serve(req, res);
    });
    try {
      emulator = new GraphEmulator(options, server);
    } catch (err) {
      await server.close();
      throw err;
    }
    return emulator;
  }

  /** Stops the server, cutting open connections, and every notification timer and POST. */
  close(): Promise<void> {
    this.dispatcher.close();
    this.submissionQueue.close();
    return this.server.close();
  }

  /** Every webhook POST Graph made or dropped (validation, change, lifecycle), oldest first. */
  get notificationDeliveries(): NotificationDelivery[] {
    return this.dispatcher.log;
  }

  /** Share of slow (> 2,900 ms) answers among change and lifecycle POSTs, to `url` when given; 0 when none. */
  slowDeliveryRatio(url?: string): number {
    return this.dispatcher.slowRatio(url);
  }

  /**
   * While on, Graph "cannot reach" webhooks whose URL starts with `urlPrefix`: creating a subscription (or renewing
   * its notificationUrl) fails validation with Graph's 400 ValidationError, as behind a firewall or private endpoint.
   */
  setWebhookUnreachable(urlPrefix: string, on: boolean): void {
    this.dispatcher.setUnreachable(urlPrefix, on);
  }

  /** While on, change notifications for the subscription are dropped (logged `dropped: true`), as for a throttled endpoint. */
  dropNotifications(subscriptionId: string, on: boolean): void {
    const sub = this.subscriptionStore.get(subscriptionId);
    if (!sub) throw new Error(`no live subscription '${subscriptionId}'`);
    sub.dropping = on;
  }

  /**
   * POSTs a lifecycle event to the subscription's lifecycleNotificationUrl (rejects when it has none or the
   * subscription does not exist).
   * `subscriptionRemoved` deletes the subscription first; `reauthorizationRequired` holds its change notifications
   * until reauthorize or renewal.
   */
  async sendLifecycleEvent(subscriptionId: string, event: LifecycleEvent): Promise<NotificationDelivery> {
    const sub = this.subscriptionStore.get(subscriptionId);
    if (!sub) throw new Error(`no live subscription '${subscriptionId}'`);
    if (!sub.lifecycleNotificationUrl)
      throw new Error(`subscription '${subscriptionId}' has no lifecycleNotificationUrl`);
    if (event === 'subscriptionRemoved') this.subscriptionStore.delete(sub.id);
    if (event === 'reauthorizationRequired') sub.awaitingReauthorization = true;
    return this.dispatcher.sendLifecycle(sub, event);
  }

  /** Resolves once no notification is queued, in flight or waiting for a retry. */
  idle(): Promise<void> {
    return this.dispatcher.idle();
  }

  /**
   * Changes the longest lifetime Graph grants a subscription from now on (a tenant's own limit; Graph also names
   * 1,440 minutes for a subscription with resource data). Creates and renewals asking for more get Graph's 400
   * "can only be N minutes in the future".
   */
  setMaxExpirationMinutes(minutes: number): void {
    if (!Number.isInteger(minutes) || minutes < 45)
      throw new Error('setMaxExpirationMinutes needs whole minutes, at least 45');
    this.subscriptionDeps.maxExpirationMinutes = minutes;
  }

  /** Live subscriptions of every app, as Graph's resource. */
  activeSubscriptions(): Array<Record<string, unknown>> {
    return this.subscriptionStore.all().map(subscriptionJson);
  }

  /** Makes every delta token of the mailbox (id, UPN or mail) fail with Graph's sync-state error (410). */
  invalidateDeltaTokens(mailbox: string): void {
    const user = this.tenant.findUser(mailbox);
    if (!user) throw new Error(`the emulated tenant has no user '${mailbox}'`);
    this.deltaTokens.invalidate(user.id);
  }

  /** Adds a route below `/v1.0`; throws when the same method and pattern exists. */
  route(def: GraphRoute): void {
    this.routes.add(def);
  }

  /** Runs a request through Graph's rules without HTTP (for `$batch`-style callers and tests). */
  dispatch(request: EmulatedRequest): Promise<FinishedResponse> {
    this.subscriptionStore.sweep();
    return this.pipeline.handle(request);
  }

  /** Peak in-flight requests any single app had against the mailbox (user id, UPN or mail); 0 when unknown. */
  peakConcurrency(mailbox: string): number {
    const user = this.tenant.findUser(mailbox);
    return user ? this.throttle.peak(user.id) : 0;
  }

  /** The mailbox of the user with this id, UPN or mail; throws when the tenant has no such user. */
  mailbox(addressOrId: string): MailboxStore {
    return this.mailboxOf(this.requireUser(addressOrId));
  }

  /**
   * The Inbox of the user with this id, UPN or mail, newest first, each message with its attachments (base64
   * `contentBytes`) and internet headers; throws when the tenant has no such user.
   */
  inbox(addressOrId: string): StoredMessage[] {
    return this.mailbox(addressOrId).listMessages('inbox');
  }

  /**
   * What Exchange did with the mailbox's (id, UPN or mail) accepted submissions: how many wait in its Outbox, were
   * delivered or became NDRs, and each message's submittedAt/deliveredAt on the emulated clock.
   */
  submissions(mailbox: string): SubmissionSummary {
    return this.submissionQueue.summary(this.requireUser(mailbox).id);
  }

  /** Messages the mailbox delivered in each emulated minute, oldest first (minutes without deliveries left out). */
  deliveredPerMinute(mailbox: string): MinuteCount[] {
    return this.submissionQueue.perMinute(this.requireUser(mailbox).id);
  }

  /** Sends (sendMail and draft send) Graph accepted with 202 for the mailbox. */
  sendsAccepted(mailbox: string): number {
    return this.submissionQueue.accepted(this.requireUser(mailbox).id);
  }

  /**
   * Every `$value` body (attachment bytes, message or attached-message MIME) sent, oldest first, with when it started
   * and when its last byte went out: a client that streams answers before `finishedAt`.
   */
  get valueStreamLog(): readonly ValueStreamRecord[] {
    return this.valueStreams.log;
  }

  /**
   * Paces `$value` bodies from now on: `chunkBytes` per chunk with `delayMs` between chunks (default 64 KiB, no
   * delay), so that a test can prove a client streams. {@link reset} restores the default.
   */
  setValueStreamPacing(pacing: Partial<ValueStreamPacing>): void {
    this.valueStreams.setPacing(pacing);
  }

  /** Every NDR Exchange wrote into a sender's Inbox, oldest first. */
  get ndrs(): readonly NdrRecord[] {
    return this.submissionQueue.ndrs;
  }

  /**
   * Resolves once no Outbox holds mail. Held mail leaves as emulated time passes: in real time, or at once through
   * `clock.advance`.
   */
  idleSubmissions(): Promise<void> {
    return this.submissionQueue.idle();
  }

  /** Arms a fault for the next matching authenticated requests. */
  injectFaults(fault: FaultSpec): void {
    this.faults.add(fault);
  }

  /** Disarms every fault. */
  clearFaults(): void {
    this.faults.clear();
  }

  /**
   * Forgets seen requests, the notification delivery log, concurrency peaks, request and upload budgets, Exchange's
   * sending windows, submission records and NDR log, faults, and `$value` pacing and log (mailbox contents, outbound mail, subscriptions and open
   * upload sessions stay; mail still in an Outbox leaves as the emptied windows allow).
   */
  reset(): void {
    this.requests.length = 0;
    this.submissionQueue.reset();
    this.dispatcher.clearLog();
    this.throttle.reset();
    this.uploads.reset();
    this.faults.clear();
    this.valueStreams.reset();
  }

  private requireUser(addressOrId: string): TenantUser {
    const user = this.tenant.findUser(addressOrId);
    if (!user) throw new Error(`the emulated tenant has no user '${addressOrId}'`);
    return user;
  }

  private mailboxOf(user: TenantUser): MailboxStore {
    let store = this.mailboxes.get(user.id);
    if (!store) {
      store = new MailboxStore(user);
      store.onChange((change) => this.dispatcher.onMailboxChange(user, change));
      this.mailboxes.set(user.id, store);
    }
    return store;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', this.url).pathname;
    this.subscriptionStore.sweep();
    if (isInspectionPath(pathname)) {
      await serveInspection(req, res, {
        tenant: this.tenant,
        requests: this.requests,
        outbound: this.outbound,
        mailboxOf: (u) => this.mailboxOf(u),
        submissions: (u) => ({
          ...this.submissionQueue.summary(u.id),
          sendsAccepted: this.submissionQueue.accepted(u.id),
          deliveredPerMinute: this.submissionQueue.perMinute(u.id),
        }),
        notifications: {
          subscriptions: () =>
            this.activeSubscriptions().map((s) => ({ ...s, clientState: s.clientState === null ? null : '***' })),
          deliveries: () => this.dispatcher.log,
          lifecycle: (id, event) => (this.subscriptionStore.get(id) ? this.sendLifecycleEvent(id, event) : undefined),
          drop: (id, on) => {
            if (!this.subscriptionStore.get(id)) return false;
            this.dropNotifications(id, on);
            return true;
          },
          advanceClock: (ms) => this.clock.advance(ms),
          now: () => this.clock.now(),
        },
      });
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, SOCKET_BODY_LIMIT);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      sendJson(res, 413, { error: { code: 'RequestEntityTooLarge', message: err.message } }, { connection: 'close' });
      return;
    }
    const answer = await this.pipeline.handle({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body,
    });
    if (answer.stream) {
      res.writeHead(answer.status, answer.headers);
      await writeStream(res, answer.stream);
      return;
    }
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
    res.end(answer.body);
  }
}

/** Writes chunks as they come, waiting for the socket to drain, so a slow stream reaches the client as it goes. */
async function writeStream(res: ServerResponse, stream: AsyncIterable<Buffer>): Promise<void> {
  try {
    for await (const chunk of stream) {
      if (res.destroyed) return;
      if (!res.write(chunk)) await drainedOrClosed(res);
    }
    res.end();
  } catch {
    // The client went away or the source failed: cut the connection so the client sees a truncated body.
    res.destroy();
  }
}

/** Resolves when the socket can take more, or when it closed (a client that went away never drains). */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
