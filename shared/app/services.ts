/**
 * The composition root: the one place that knows every concern and wires them together. Everything below `app/`
 * receives what it needs as arguments; only the function files (through {@link services}) and the test rigs
 * (through {@link createServices} with their own overrides) build the graph of objects.
 *
 * Each part is built on first use and then shared by every invocation of the process, which matters for three of
 * them: one token helper (its token cache and Key Vault read), one outbox store (the per-mailbox accept limiter sees
 * every request) and one subscription lookup (its cache of known ids). Parts are lazy so that a function builds only
 * what it uses: Graph's webhook, which must answer within 3 s, never creates a Graph client or asks for a token.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import { EventPublisher } from '../events/eventPublisher';
import { createGraphClient } from '../graph/graphClient';
import { AppCredential } from '../identity/appCredential';
import { MailSender } from '../mail/mailSender';
import type { MessageApiDependencies } from '../messages/messageHandler';
import type { ThreadMailDependencies } from '../messages/threadHandlers';
import { IDEMPOTENCY_TABLE } from '../outbox/accept/idempotencyStore';
import { LegacyIdempotencyKeys } from '../outbox/accept/legacyIdempotency';
import type { SendMailDependencies } from '../outbox/accept/sendMailHandler';
import type { MailStatusDependencies } from '../outbox/mailStatusHandler';
import type { OutboxProcessorDependencies } from '../outbox/process/outboxProcessor';
import { OutboxBounces } from '../outbox/bounces/bounces';
import type { BounceHandler } from '../watch/bounces/bounceCheck';
import { BounceTracking } from '../outbox/bounces/bounceTracking';
import { OutboxStore } from '../outbox/store/outboxStore';
import { MailboxPacer, MAILBOX_PACING_TABLE } from '../pacing/mailboxPacer';
import { TenantBudget } from '../pacing/tenantBudget';
import { getConfig, type GatewayConfig } from '../platform/config';
import { createQueueClient, createTableClient } from '../platform/storage/storage';
import { CatchUp } from '../watch/delta/catchUp';
import { GraphSubscriptions } from '../watch/subscriptions/graphSubscriptions';
import type { MailboxApiDependencies } from '../watch/mailboxApi';
import type { PollReaderDependencies, PollSchedulerDependencies } from '../watch/delta/mailboxPoll';
import { MAILBOX_POLL_QUEUE } from '../watch/delta/pollMessages';
import type { ProcessorDependencies } from '../watch/notifications/notificationProcessor';
import { NOTIFICATIONS_QUEUE, type ReceiverDependencies } from '../watch/notifications/notificationReceiver';
import type { RenewalDependencies } from '../watch/subscriptions/renewalTimer';
import { SubscriptionLookup } from '../watch/notifications/subscriptionLookup';
import { WatchService } from '../watch/watchService';
import { WatchStore } from '../watch/watchStore';
import type { HousekeepingDependencies } from './housekeeping';

/** Parts a test rig or benchmark supplies itself (its own tables, a simulated clock); the rest is built. */
export interface ServiceOverrides {
  credential?: AppCredential;
  /** The Graph client of the HTTP routes and watching (by default it waits out throttling within GRAPH_MAX_WAIT_SECONDS). */
  graph?: Client;
  outboxStore?: OutboxStore;
  pacer?: MailboxPacer;
  publisher?: EventPublisher;
  watchStore?: WatchStore;
  /** The clock of the outbox processor and of subscription lifetimes. */
  now?: () => number;
}

/** What the function files call, each part built once. */
export class Services {
  private readonly built = new Map<string, unknown>();

  constructor(
    /** The validated settings every part is built from. */
    readonly config: GatewayConfig,
    private readonly overrides: ServiceOverrides = {},
  ) {}

  /** The token helper: one per process, so its token cache and Key Vault read are shared. */
  get credential(): AppCredential {
    return this.once('credential', () => this.overrides.credential ?? new AppCredential(this.config));
  }

  /** The Graph client of the HTTP routes and watching; it waits out throttling up to GRAPH_MAX_WAIT_SECONDS. */
  get graph(): Client {
    return this.once(
      'graph',
      () =>
        this.overrides.graph ??
        createGraphClient(this.config, this.credential, { maxTotalWaitSeconds: this.config.graphMaxWaitSeconds }),
    );
  }

  /** The outbox's records, queues and staged attachments. */
  get outboxStore(): OutboxStore {
    return this.once('outboxStore', () => this.overrides.outboxStore ?? OutboxStore.fromConfig(this.config));
  }

  /** The event ledger, the events queue and the optional signed webhook. */
  get publisher(): EventPublisher {
    return this.once('publisher', () => this.overrides.publisher ?? EventPublisher.fromConfig(this.config));
  }

  /** Watched mailboxes and their subscriptions' index. */
  get watchStore(): WatchStore {
    return this.once('watchStore', () => this.overrides.watchStore ?? WatchStore.fromConfig(this.config));
  }

  /** Graph subscriptions (create, renew, delete), batched. */
  get subscriptions(): GraphSubscriptions {
    return this.once('subscriptions', () => new GraphSubscriptions(this.graph, {}, this.overrides.now));
  }

  /**
   * Matches non-delivery reports in watched Inboxes to the outbox's mail (`mail.bounced`). Built on the first report,
   * not with watching: the mailbox API and the webhooks never need the outbox's clients.
   */
  get bounces(): BounceHandler {
    return { handle: (report) => this.outboxBounces.handle(report) };
  }

  private get outboxBounces(): OutboxBounces {
    return this.once('bounces', () => new OutboxBounces(this.outboxStore, this.publisher));
  }

  /** Watching's service (without WEBHOOK_BASE_URL it watches by polling only). */
  get watchService(): WatchService {
    return this.once('watchService', () => {
      const catchUp = new CatchUp(this.graph, this.watchStore, this.publisher, this.bounces);
      return new WatchService(
        this.watchStore,
        this.subscriptions,
        catchUp,
        this.config.watch.webhookBaseUrl,
        this.overrides.now,
      );
    });
  }

  /** What the `pollMailboxes` timer needs. */
  get pollScheduler(): PollSchedulerDependencies {
    return this.once('pollScheduler', () => ({
      store: this.watchStore,
      queue: createQueueClient(this.config, MAILBOX_POLL_QUEUE),
      pollIntervalMs: this.config.watch.pollIntervalMs,
      reconcileIntervalMs: this.config.watch.reconcileIntervalMs,
      ...(this.overrides.now ? { now: this.overrides.now } : {}),
    }));
  }

  /**
   * What `pollMailbox` needs: a catch-up whose Graph client never waits out a 429 itself (budget 0), so a throttled
   * mailbox's read is deferred by its Retry-After instead of holding an instance.
   */
  get pollReader(): PollReaderDependencies {
    return this.once('pollReader', () => {
      const graph = createGraphClient(this.config, this.credential, { maxTotalWaitSeconds: 0 });
      return {
        store: this.watchStore,
        catchUp: new CatchUp(graph, this.watchStore, this.publisher, this.bounces),
        ...(this.overrides.now ? { now: this.overrides.now } : {}),
      };
    });
  }

  /** What `POST /api/mail/send` needs. */
  get sendMail(): SendMailDependencies {
    return this.once('sendMail', () => ({
      config: this.config,
      credential: this.credential,
      outbox: this.outboxStore,
      legacyKeys: new LegacyIdempotencyKeys(createTableClient(this.config, IDEMPOTENCY_TABLE)),
    }));
  }

  /**
   * What the reply and forward routes need: the send route's parts (one outbox, which holds the Idempotency-Keys), since a reply
   * is accepted exactly as a mail is.
   */
  get messageThread(): ThreadMailDependencies {
    return this.once('messageThread', () => ({
      ...this.sendMail,
      // Only for counting a reply's recipients at accept: a throttled read falls back at once rather than wait.
      originals: this.overrides.graph ?? createGraphClient(this.config, this.credential, { maxTotalWaitSeconds: 0 }),
    }));
  }

  /** What `GET /api/mail/{id}` needs. */
  get mailStatus(): MailStatusDependencies {
    return { config: this.config, outbox: this.outboxStore };
  }

  /**
   * What the outbox processor needs. Its Graph client never waits out a 429 or 503 itself (budget 0): the processor
   * re-enqueues the mail after Retry-After instead of holding an instance.
   */
  get outboxProcessor(): OutboxProcessorDependencies {
    return this.once('outboxProcessor', () => {
      const graph = createGraphClient(this.config, this.credential, { maxTotalWaitSeconds: 0 });
      const outbox = this.config.outbox;
      return {
        store: this.outboxStore,
        pacer:
          this.overrides.pacer ??
          new MailboxPacer(createTableClient(this.config, MAILBOX_PACING_TABLE), {
            messagesPerMinute: outbox.messagesPerMinute,
            recipientsPerDay: outbox.recipientsPerDay,
          }),
        sender: new MailSender(graph, { attachmentBlobs: this.outboxStore }),
        graph,
        publisher: this.publisher,
        credential: this.credential,
        maxAgeMs: outbox.maxAgeMs,
        ...(outbox.bounceTracking ? { bounceTracking: new BounceTracking(this.watchService) } : {}),
        // The tenant's row lives in the pacing table beside the mailboxes' (tenantBudget.ts keeps their keys apart).
        ...(outbox.tenantExternal
          ? {
              tenantBudget: new TenantBudget(
                createTableClient(this.config, MAILBOX_PACING_TABLE),
                outbox.tenantExternal.perDay,
              ),
            }
          : {}),
        ...(this.overrides.now ? { now: this.overrides.now } : {}),
      };
    });
  }

  /** What the mailbox API needs. */
  get mailboxApi(): MailboxApiDependencies {
    return { config: this.config, credential: this.credential, store: this.watchStore, service: this.watchService };
  }

  /** What the message API needs: the routes' Graph client, which waits out throttling within GRAPH_MAX_WAIT_SECONDS. */
  get messageApi(): MessageApiDependencies {
    return { config: this.config, credential: this.credential, graph: this.graph };
  }

  /** What Graph's webhook endpoints need: no Graph client or token, they must answer fast. */
  get notificationReceiver(): ReceiverDependencies {
    return this.once('notificationReceiver', () => ({
      subscriptions: new SubscriptionLookup(this.watchStore),
      queue: createQueueClient(this.config, NOTIFICATIONS_QUEUE),
    }));
  }

  /** What `processNotifications` needs. */
  get notificationProcessor(): ProcessorDependencies {
    const service = this.watchService;
    return this.once('notificationProcessor', () => ({
      graph: this.graph,
      store: this.watchStore,
      service,
      publisher: this.publisher,
      poisonQueue: createQueueClient(this.config, `${NOTIFICATIONS_QUEUE}-poison`),
      bounces: this.bounces,
    }));
  }

  /** What the `renewSubscriptions` timer needs: the renewal, then the housekeeping. */
  get maintenance(): { renewal: RenewalDependencies; housekeeping: HousekeepingDependencies } {
    return this.once('maintenance', () => ({
      renewal: { service: this.watchService, renewalWindowMs: this.config.watch.renewalWindowMs },
      housekeeping: {
        publisher: this.publisher,
        idempotencyTable: createTableClient(this.config, IDEMPOTENCY_TABLE),
        outbox: this.outboxStore,
      },
    }));
  }

  private once<T>(name: string, build: () => T): T {
    if (!this.built.has(name)) this.built.set(name, build());
    return this.built.get(name) as T;
  }
}

/** The services for `config`, with a rig's own parts in `overrides`. */
export function createServices(config: GatewayConfig, overrides: ServiceOverrides = {}): Services {
  return new Services(config, overrides);
}

let processServices: Services | undefined;

/** The process's services, from its validated settings (throws a `ConfigError` while they are invalid). */
export function services(): Services {
  processServices ??= createServices(getConfig());
  return processServices;
}
