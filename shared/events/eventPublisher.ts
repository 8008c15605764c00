/**
 * Publishes each event once: to the `mail-events` queue (base64 JSON, as a Functions queue trigger reads it by
 * default; an event larger than a queue message holds is cut to fit by its type's rule) and, when configured, whole
 * to the signed downstream webhook. A ledger row per event id in Table storage
 * remembers what was done, so Graph's redeliveries, catch-ups that see the same mail and retried queue messages
 * don't publish twice. A crash between the queue write and the ledger update can still repeat an event; the
 * stable CloudEvents id lets consumers drop that rare repeat.
 *
 * An event that only one invocation can publish first (the outbox's outcomes: the record's conditional write made
 * that invocation the only one to finish the mail) goes without the ledger, `publishOwned`; the ledger takes over
 * only when its webhook delivery fails, so that the retry redoes the webhook alone.
 */
import type { TableClient } from '@azure/data-tables';
import type { QueueClient } from '@azure/storage-queue';
import type { GatewayConfig } from '../platform/config';
import { createQueueClient, createTableClient } from '../platform/storage/storage';
import { queueMessageContract } from '../platform/queues/queueMessages';
import { ensureQueue, ensureTable, isStatus, purgeExpired, tableKey } from '../platform/storage/tables';
import { cloudEventSchema, type CloudEvent } from './cloudEvent';
import { WebhookSender } from './webhookSender';

/** Table of the ledger. */
const PUBLISHED_EVENTS_TABLE = 'publishedEvents';
/** Queue other services read mail events from. */
export const MAIL_EVENTS_QUEUE = 'mail-events';
/** A `mail-events` message: the event itself, as the README documents it for consumers. */
const mailEventMessage = queueMessageContract(cloudEventSchema);
/** How long a published event is remembered for deduplication (Graph retries for 4 hours; catch-up looks back 6 days). */
export const EVENT_RETENTION_MS = 7 * 86_400_000;
/** A Storage queue message holds at most 64 KiB of text (learn: storage queues, "scalability targets"). */
const QUEUE_MESSAGE_MAX_CHARS = 65_536;
/**
 * The most UTF-8 bytes of event JSON one `mail-events` message holds: the message is the JSON in base64, which
 * writes every 3 bytes as 4 characters, so 64 KiB of text holds 48 KiB of JSON.
 */
export const QUEUE_EVENT_MAX_JSON_BYTES = Math.floor(QUEUE_MESSAGE_MAX_CHARS / 4) * 3;

/** Makes an event fit a queue message (`maxJsonBytes` of JSON), cutting what its type allows to cut. */
export type QueueFit<E extends CloudEvent = CloudEvent> = (event: E, maxJsonBytes: number) => E;

/** How long a publisher holds an event before another may take it over (its process may have died). */
const CLAIM_MS = 2 * 60_000;

interface LedgerEntity {
  partitionKey: string;
  rowKey: string;
  type: string;
  queued: boolean;
  webhookDone: boolean;
  claimedUntil: Date;
  expiresAt: Date;
}

/** Another publisher is publishing the same event right now; retry later (the queue message will be retried). */
export class PublishInProgressError extends Error {
  constructor(id: string) {
    super(`event ${id} is being published by another invocation`);
    this.name = 'PublishInProgressError';
  }
}

/** What {@link EventPublisher.publish} did. */
export type PublishOutcome = 'published' | 'duplicate';

/** Publishes events once each. */
export class EventPublisher {
  constructor(
    private readonly ledger: TableClient,
    private readonly queue: QueueClient,
    private readonly webhook: WebhookSender | undefined,
  ) {}

  /** The publisher for `config`'s storage and events webhook. */
  static fromConfig(config: GatewayConfig): EventPublisher {
    const hook = config.events.webhook;
    return new EventPublisher(
      createTableClient(config, PUBLISHED_EVENTS_TABLE),
      createQueueClient(config, MAIL_EVENTS_QUEUE),
      hook && new WebhookSender(hook.url, hook.signingSecret),
    );
  }

  /** True when `event` (by source and id) has been published everywhere it goes. */
  async wasPublished(event: Pick<CloudEvent, 'source' | 'id'>): Promise<boolean> {
    await ensureTable(this.ledger);
    try {
      const row = await this.ledger.getEntity<LedgerEntity>(tableKey(event.source), event.id);
      return row.queued && (row.webhookDone || !this.webhook);
    } catch (err) {
      if (isStatus(err, 404)) return false;
      throw err;
    }
  }

  /**
   * Publishes `event` unless it already was. Throws {@link PublishInProgressError} when another invocation holds
   * it, and the webhook's error when it could not be delivered (the queue part is kept; a retry only redoes the
   * webhook). The webhook gets `event` whole; the queue gets what `fitQueue` makes of it, since a queue message
   * holds at most {@link QUEUE_EVENT_MAX_JSON_BYTES} of JSON.
   */
  async publish<E extends CloudEvent>(event: E, now = Date.now(), fitQueue?: QueueFit<E>): Promise<PublishOutcome> {
    await Promise.all([ensureTable(this.ledger), ensureQueue(this.queue)]);
    const entity: LedgerEntity = {
      partitionKey: tableKey(event.source),
      rowKey: event.id,
      type: event.type,
      queued: false,
      webhookDone: !this.webhook,
      claimedUntil: new Date(now + CLAIM_MS),
      expiresAt: new Date(now + EVENT_RETENTION_MS),
    };
    let etag: string | undefined;
    try {
      etag = (await this.ledger.createEntity(entity)).etag;
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      const existing = await this.ledger.getEntity<LedgerEntity>(entity.partitionKey, entity.rowKey);
      if (existing.queued && (existing.webhookDone || !this.webhook)) return 'duplicate';
      if (new Date(existing.claimedUntil).getTime() > now) throw new PublishInProgressError(event.id);
      entity.queued = existing.queued;
      entity.webhookDone = existing.webhookDone || !this.webhook;
      try {
        etag = (await this.ledger.updateEntity(entity, 'Replace', { etag: existing.etag })).etag;
      } catch (e) {
        if (isStatus(e, 412)) throw new PublishInProgressError(event.id);
        throw e;
      }
    }
    const save = async (): Promise<void> => {
      etag = (await this.ledger.updateEntity(entity, 'Replace', { etag })).etag;
    };
    if (!entity.queued) {
      await this.queue.sendMessage(
        mailEventMessage.encode(fitQueue ? fitQueue(event, QUEUE_EVENT_MAX_JSON_BYTES) : event),
      );
      entity.queued = true;
      await save();
    }
    if (!entity.webhookDone && this.webhook) {
      try {
        await this.webhook.deliver(event);
      } catch (err) {
        // Let the next try take over at once instead of waiting out the claim.
        entity.claimedUntil = new Date(0);
        await save().catch(() => undefined);
        throw err;
      }
      entity.webhookDone = true;
      await save();
    }
    return 'published';
  }

  /**
   * Publishes `event`, which the caller alone publishes first, without the ledger: to the queue, then to the webhook.
   * When the webhook could not take it, a ledger row records that the queue has it, and the webhook's error is
   * thrown: a retry that calls {@link publish} with the same event then only redoes the webhook.
   */
  async publishOwned<E extends CloudEvent>(event: E, now = Date.now(), fitQueue?: QueueFit<E>): Promise<void> {
    await ensureQueue(this.queue);
    await this.queue.sendMessage(
      mailEventMessage.encode(fitQueue ? fitQueue(event, QUEUE_EVENT_MAX_JSON_BYTES) : event),
    );
    if (!this.webhook) return;
    try {
      await this.webhook.deliver(event);
    } catch (err) {
      const entity: LedgerEntity = {
        partitionKey: tableKey(event.source),
        rowKey: event.id,
        type: event.type,
        queued: true,
        webhookDone: false,
        claimedUntil: new Date(0),
        expiresAt: new Date(now + EVENT_RETENTION_MS),
      };
      // Without this row the retry queues the event again too: a repeat with the same id, not a loss.
      await ensureTable(this.ledger)
        .then(() => this.ledger.upsertEntity(entity, 'Replace'))
        .catch(() => undefined);
      throw err;
    }
  }

  /** Forgets events past their retention; returns how many. */
  purgeExpired(now: Date): Promise<number> {
    return purgeExpired(this.ledger, now);
  }
}
