/**
 * The process's long-lived services, created on first use from the validated configuration: one token helper (so
 * its token cache and Key Vault read are shared by every invocation) and one Graph client.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import { AppCredential } from '../identity/appCredential';
import { getConfig } from '../platform/config';
import { createGraphClient } from '../graph/graphClient';
import { IdempotencyStore } from '../outbox/accept/idempotencyStore';
import { MailSender } from '../mail/mailSender';
import type { SendMailDependencies } from '../outbox/accept/sendMailHandler';
import { EventPublisher } from '../events/eventPublisher';
import { CatchUp } from '../watch/catchUp';
import { GraphSubscriptions } from '../watch/graphSubscriptions';
import type { MailboxApiDependencies } from '../watch/mailboxApi';
import { NOTIFICATIONS_QUEUE, type ReceiverDependencies } from '../watch/notificationReceiver';
import type { ProcessorDependencies } from '../watch/notificationProcessor';
import type { RenewalDependencies } from '../watch/renewalTimer';
import { WatchService } from '../watch/watchService';
import { SubscriptionLookup } from '../watch/subscriptionLookup';
import { WatchStore } from '../watch/watchStore';
import { createQueueClient, createTableClient } from '../platform/storage';
import { IDEMPOTENCY_TABLE } from '../outbox/accept/idempotencyStore';
import { MailboxPacer, MAILBOX_PACING_TABLE } from '../pacing/mailboxPacer';
import type { OutboxProcessorDependencies } from '../outbox/outboxProcessor';
import { OutboxStore } from '../outbox/outboxStore';
import type { MailStatusDependencies } from '../outbox/mailStatusHandler';

let credential: AppCredential | undefined;
let graph: Client | undefined;
let sendDependencies: SendMailDependencies | undefined;

/** The process-wide token helper. */
export function getAppCredential(): AppCredential {
  credential ??= new AppCredential(getConfig());
  return credential;
}

/** The process-wide Graph client, authenticated by {@link getAppCredential}. */
export function getGraphClient(): Client {
  graph ??= createGraphClient(getConfig(), getAppCredential(), {
    maxTotalWaitSeconds: getConfig().graphMaxWaitSeconds,
  });
  return graph;
}

/** What `POST /api/mail/send` needs, shared by every invocation (so the per-mailbox limiter sees them all). */
export function getSendMailDependencies(): SendMailDependencies {
  sendDependencies ??= {
    config: getConfig(),
    credential: getAppCredential(),
    outbox: getOutboxStore(),
    idempotency: IdempotencyStore.fromConfig(getConfig()),
  };
  return sendDependencies;
}

/** Everything watching needs, built once per process. */
interface WatchParts {
  store: WatchStore;
  publisher: EventPublisher;
  service: WatchService | undefined;
}

let watchParts: WatchParts | undefined;

function getWatchParts(): WatchParts {
  if (!watchParts) {
    const config = getConfig();
    const store = WatchStore.fromConfig(config);
    const publisher = EventPublisher.fromConfig(config);
    const graph = getGraphClient();
    const base = config.watch.webhookBaseUrl;
    watchParts = {
      store,
      publisher,
      service: base
        ? new WatchService(store, new GraphSubscriptions(graph), new CatchUp(graph, store, publisher), base)
        : undefined,
    };
  }
  return watchParts;
}

/** What the mailbox API needs. */
export function getMailboxApiDependencies(): MailboxApiDependencies {
  const { store, service } = getWatchParts();
  return { config: getConfig(), credential: getAppCredential(), store, service };
}

let receiver: ReceiverDependencies | undefined;

/** What Graph's webhook endpoints need (no Graph client or token: they must answer fast). */
export function getReceiverDependencies(): ReceiverDependencies {
  receiver ??= {
    subscriptions: new SubscriptionLookup(WatchStore.fromConfig(getConfig())),
    queue: createQueueClient(getConfig(), NOTIFICATIONS_QUEUE),
  };
  return receiver;
}

/** What `processNotifications` needs; throws when WEBHOOK_BASE_URL is unset (lifecycle work needs it). */
export function getProcessorDependencies(): ProcessorDependencies {
  const { store, publisher, service } = getWatchParts();
  if (!service) throw new Error('WEBHOOK_BASE_URL is not set: notifications cannot be processed');
  return {
    graph: getGraphClient(),
    store,
    service,
    publisher,
    poisonQueue: createQueueClient(getConfig(), `${NOTIFICATIONS_QUEUE}-poison`),
  };
}

/** What `renewSubscriptions` needs. */
export function getRenewalDependencies(): RenewalDependencies {
  const { publisher, service } = getWatchParts();
  return {
    service,
    publisher,
    idempotencyTable: createTableClient(getConfig(), IDEMPOTENCY_TABLE),
    outbox: getOutboxStore(),
    renewalWindowMs: getConfig().watch.renewalWindowMs,
  };
}

let outbox: OutboxProcessorDependencies | undefined;

/**
 * What the outbox processor needs. Its Graph client never waits out a 429 or 503 itself (budget 0): the processor
 * re-enqueues the mail after Retry-After instead of holding an instance.
 */
export function getOutboxDependencies(): OutboxProcessorDependencies {
  if (!outbox) {
    const config = getConfig();
    const graph = createGraphClient(config, getAppCredential(), { maxTotalWaitSeconds: 0 });
    const store = getOutboxStore();
    outbox = {
      store,
      pacer: new MailboxPacer(createTableClient(config, MAILBOX_PACING_TABLE), {
        messagesPerMinute: config.outbox.messagesPerMinute,
        recipientsPerDay: config.outbox.recipientsPerDay,
      }),
      sender: new MailSender(graph, { attachmentBlobs: store }),
      graph,
      publisher: getWatchParts().publisher,
      credential: getAppCredential(),
      maxAgeMs: config.outbox.maxAgeMs,
    };
  }
  return outbox;
}

let outboxStore: OutboxStore | undefined;

/** The process-wide outbox store. */
export function getOutboxStore(): OutboxStore {
  outboxStore ??= OutboxStore.fromConfig(getConfig());
  return outboxStore;
}

/** What `GET /api/mail/{id}` needs. */
export function getMailStatusDependencies(): MailStatusDependencies {
  return { config: getConfig(), outbox: getOutboxStore() };
}
