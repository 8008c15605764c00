/**
 * Watched mailboxes in Table storage (`subscriptions`): one row per watched folder of a mailbox (its Graph
 * subscription, clientState, delta link and outcomes; the Inbox's row is keyed by the mailbox alone, as every row was
 * before folders, so stored records keep working), one index row per subscription id, which the webhook reads to check a notification
 * without knowing its mailbox, and a lease row per mailbox while one instance creates, replaces or deletes its
 * subscription (so concurrent requests on any instance never create two). The clientState is a secret: it is stored
 * here and nowhere else.
 */
import type { TableClient } from '@azure/data-tables';
import type { GatewayConfig } from '../platform/config';
import { createTableClient } from '../platform/storage/storage';
import { ensureTable, isStatus, tableKey } from '../platform/storage/tables';
import { DEFAULT_MAX_BODY_BYTES, wantsContent, type EventContent } from './content/eventContent';
import { DEFAULT_FOLDER } from './watchFolders';

/** Table holding the rows. */
export const SUBSCRIPTIONS_TABLE = 'subscriptions';
const MAILBOX_PARTITION = 'mailbox';
const SUBSCRIPTION_PARTITION = 'subscription';
const LEASE_PARTITION = 'lease';

/** Outcome of the last create/renew/repair of a mailbox's subscription. */
export interface RenewalOutcome {
  at: string;
  /** e.g. `created`, `renewed`, `recreated`, `reauthorized`, `failed`. */
  outcome: string;
  /** Why it failed (Graph's code and message, never a secret). */
  error?: string;
}

/** How a mailbox is asked to be watched: Graph's notifications, the delta query on a schedule, or push falling back. */
export type Delivery = 'push' | 'poll' | 'auto';
/** How a folder is read right now. */
export type DeliveryMode = 'push' | 'poll';

/** A watched folder of a mailbox as stored. */
export interface WatchedMailbox {
  /** Lower-case address. */
  mailbox: string;
  /** The folder (a well-known name lower-cased, or an id); absent means the Inbox (as in records before folders). */
  folder?: string;
  subscriptionId: string;
  clientState: string;
  /** ISO time Graph will delete the subscription unless renewed. */
  expirationDateTime: string;
  /**
   * Minutes of lifetime Graph granted at the last create or renewal (undefined for records from before it was
   * kept): the renewal timer renews no earlier than half of it before expiry.
   */
  grantedMinutes?: number;
  /** The folder's messages delta link; catch-up resumes from it. */
  deltaLink?: string;
  /** When the delta link was last brought up to date (a resync looks back from here). */
  deltaSyncedAt?: string;
  createdAt: string;
  lastRenewal?: RenewalOutcome;
  lastEventAt?: string;
  eventsPublished: number;
  /** What its events carry of the mail (undefined: metadata and links only, as for records from before the option). */
  content?: EventContent;
  /** The delivery asked for (undefined: push, as every record from before delivery modes was). */
  delivery?: Delivery;
  /**
   * The mode in force (undefined: push). Under poll the folder has no subscription: `subscriptionId`, `clientState`
   * and `expirationDateTime` are empty.
   */
  mode?: DeliveryMode;
  /** Why that mode is in force (e.g. `webhook-validation-failed` for auto falling back). */
  modeReason?: string;
  /** When the folder is next read by delta: the next poll, or under push the next reconciliation. */
  nextReadAt?: string;
  /** Under push: mail the reconciliation published that no notification had (Graph's missing notifications). */
  reconciled?: number;
  /** `subscriptionRemoved` events since the last renewal (auto falls back to polling after a few in a row). */
  removals?: number;
  /**
   * Watched by BOUNCE_TRACKING for non-delivery reports only: no `mail.received` for its mail (undefined: a watch
   * someone asked for, every mail announced).
   */
  bounceOnly?: boolean;
}

interface MailboxEntity {
  partitionKey: string;
  rowKey: string;
  mailbox: string;
  /** Absent in rows from before folders (the Inbox). */
  folder?: string;
  subscriptionId: string;
  clientState: string;
  expirationDateTime: string;
  grantedMinutes?: number;
  deltaLink?: string;
  deltaSyncedAt?: string;
  createdAt: string;
  lastRenewalAt?: string;
  lastRenewalOutcome?: string;
  lastRenewalError?: string;
  lastEventAt?: string;
  eventsPublished: number;
  delivery?: string;
  mode?: string;
  modeReason?: string;
  nextReadAt?: string;
  reconciled?: number;
  removals?: number;
  bounceOnly?: boolean;
  /** The content option in three columns; absent in rows from before it (no content). */
  contentBody?: string;
  contentMaxBodyBytes?: number;
  contentAttachments?: string;
}

interface SubscriptionEntity {
  partitionKey: string;
  rowKey: string;
  mailbox: string;
  folder?: string;
  clientState: string;
}

interface LeaseEntity {
  partitionKey: string;
  rowKey: string;
  holder: string;
  /** Epoch ms after which another instance may take the lease over (its holder is presumed dead). */
  leaseUntil: number;
}

/** A mailbox's lease as its holder knows it: the ETag proves it is still the holder. */
export interface MailboxLease {
  mailbox: string;
  holder: string;
  etag: string;
}

/** The lease was taken over (its holder was too slow and presumed dead): the holder must not write. */
export class LeaseLostError extends Error {
  constructor(mailbox: string) {
    super(`the lease on ${mailbox} was taken over by another instance`);
    this.name = 'LeaseLostError';
  }
}

/** What the webhook needs to judge a notification. */
export interface SubscriptionIndexEntry {
  mailbox: string;
  /** Absent means the Inbox. */
  folder?: string;
  clientState: string;
}

/**
 * The row key of a mailbox's folder (and of its lease): the mailbox alone for the Inbox (as before folders), else
 * mailbox and folder (`/` cannot occur in either, so keys never collide).
 */
export function watchKey(mailbox: string, folder: string | undefined = DEFAULT_FOLDER): string {
  const address = mailbox.toLowerCase();
  return folder === DEFAULT_FOLDER ? address : `${address}/${folder}`;
}

/** Reads and writes watched mailboxes. */
export class WatchStore {
  constructor(private readonly table: TableClient) {}

  /** The store for `config`'s storage account. */
  static fromConfig(config: GatewayConfig): WatchStore {
    return new WatchStore(createTableClient(config, SUBSCRIPTIONS_TABLE));
  }

  /** The record of the mailbox's folder (the Inbox unless named), or undefined. */
  async get(mailbox: string, folder: string = DEFAULT_FOLDER): Promise<WatchedMailbox | undefined> {
    await ensureTable(this.table);
    try {
      return fromEntity(
        await this.table.getEntity<MailboxEntity>(MAILBOX_PARTITION, tableKey(watchKey(mailbox, folder))),
      );
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /** The records of every watched folder of the mailbox (none when it is not watched). */
  async listMailbox(mailbox: string): Promise<WatchedMailbox[]> {
    await ensureTable(this.table);
    const rows: WatchedMailbox[] = [];
    const address = mailbox.toLowerCase().replace(/'/g, "''");
    const query = this.table.listEntities<MailboxEntity>({
      queryOptions: { filter: `PartitionKey eq '${MAILBOX_PARTITION}' and mailbox eq '${address}'` },
    });
    for await (const entity of query) rows.push(fromEntity(entity));
    return rows;
  }

  /** Every watched folder of every mailbox, in address order. */
  async list(): Promise<WatchedMailbox[]> {
    await ensureTable(this.table);
    const rows: WatchedMailbox[] = [];
    const query = this.table.listEntities<MailboxEntity>({
      queryOptions: { filter: `PartitionKey eq '${MAILBOX_PARTITION}'` },
    });
    for await (const entity of query) rows.push(fromEntity(entity));
    return rows;
  }

  /** The mailbox and clientState of a subscription id, or undefined when it is not ours (any more). */
  async lookupSubscription(subscriptionId: string): Promise<SubscriptionIndexEntry | undefined> {
    await ensureTable(this.table);
    try {
      const row = await this.table.getEntity<SubscriptionEntity>(SUBSCRIPTION_PARTITION, tableKey(subscriptionId));
      return { mailbox: row.mailbox, folder: row.folder ?? DEFAULT_FOLDER, clientState: row.clientState };
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /**
   * Stores the record (a new subscription replaces the old one). The index row is written first, so a
   * notification for the new subscription is recognised as soon as the record exists; the old index row goes last.
   */
  async save(record: WatchedMailbox, previousSubscriptionId?: string): Promise<void> {
    await ensureTable(this.table);
    // A polled folder has no subscription, so nothing for the webhook to recognise.
    if (record.subscriptionId) {
      await this.table.upsertEntity<SubscriptionEntity>(
        {
          partitionKey: SUBSCRIPTION_PARTITION,
          rowKey: tableKey(record.subscriptionId),
          mailbox: record.mailbox,
          folder: record.folder,
          clientState: record.clientState,
        },
        'Replace',
      );
    }
    await this.table.upsertEntity(toEntity(record), 'Replace');
    if (previousSubscriptionId && previousSubscriptionId !== record.subscriptionId) {
      await this.deleteIndex(previousSubscriptionId);
    }
  }

  /**
   * Applies `change` to the stored record, retrying on concurrent writers (ETag); a change that returns its argument
   * itself writes nothing. Returns the updated record, or undefined when the mailbox is no longer watched.
   */
  async update(
    mailbox: string,
    change: (record: WatchedMailbox) => WatchedMailbox,
    folder: string = DEFAULT_FOLDER,
  ): Promise<WatchedMailbox | undefined> {
    await ensureTable(this.table);
    for (let attempt = 0; ; attempt++) {
      let entity;
      try {
        entity = await this.table.getEntity<MailboxEntity>(MAILBOX_PARTITION, tableKey(watchKey(mailbox, folder)));
      } catch (err) {
        if (isStatus(err, 404)) return undefined;
        throw err;
      }
      const current = fromEntity(entity);
      const updated = change(current);
      // A change that returns the record it was given changes nothing: no write, so no ETag moved under other writers.
      if (updated === current) return updated;
      try {
        await this.table.updateEntity(toEntity(updated), 'Replace', { etag: entity.etag });
        return updated;
      } catch (err) {
        // Deleted between the read and the write: the mailbox is no longer watched.
        if (isStatus(err, 404)) return undefined;
        if (!isStatus(err, 412) || attempt >= 8) throw err;
      }
      // Writers that collided spread out before the next try instead of colliding again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * (attempt + 1)));
    }
  }

  /** Forgets the mailbox's folder and its subscription's index row. */
  async remove(record: WatchedMailbox): Promise<void> {
    await ensureTable(this.table);
    await this.deleteIndex(record.subscriptionId);
    try {
      await this.table.deleteEntity(MAILBOX_PARTITION, tableKey(watchKey(record.mailbox, record.folder)));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }

  /**
   * Takes the mailbox's lease for `ttlMs`: creates the lease row, or takes over one whose holder let it run out (ETag
   * guarded, so of several instances taking over at once exactly one wins). Undefined while someone else holds it.
   */
  async tryLease(mailbox: string, holder: string, ttlMs: number): Promise<MailboxLease | undefined> {
    await ensureTable(this.table);
    const rowKey = tableKey(mailbox.toLowerCase());
    const entity: LeaseEntity = { partitionKey: LEASE_PARTITION, rowKey, holder, leaseUntil: Date.now() + ttlMs };
    try {
      const created = await this.table.createEntity(entity);
      return { mailbox, holder, etag: created.etag ?? '*' };
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
    let current;
    try {
      current = await this.table.getEntity<LeaseEntity>(LEASE_PARTITION, rowKey);
    } catch (err) {
      // Released meanwhile: the caller's next try creates it.
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
    if (current.leaseUntil > Date.now()) return undefined;
    try {
      const taken = await this.table.updateEntity(entity, 'Replace', { etag: current.etag });
      return { mailbox, holder, etag: taken.etag ?? '*' };
    } catch (err) {
      if (isStatus(err, 412) || isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /**
   * Proves the lease is still held and extends it by `ttlMs`, just before the holder writes what it did under it.
   * Throws {@link LeaseLostError} when another instance took it over.
   */
  async confirmLease(lease: MailboxLease, ttlMs: number): Promise<void> {
    const entity: LeaseEntity = {
      partitionKey: LEASE_PARTITION,
      rowKey: tableKey(lease.mailbox.toLowerCase()),
      holder: lease.holder,
      leaseUntil: Date.now() + ttlMs,
    };
    try {
      const updated = await this.table.updateEntity(entity, 'Replace', { etag: lease.etag });
      lease.etag = updated.etag ?? lease.etag;
    } catch (err) {
      if (isStatus(err, 412) || isStatus(err, 404)) throw new LeaseLostError(lease.mailbox);
      throw err;
    }
  }

  /** Gives the lease back (a lease taken over meanwhile is left to its new holder). */
  async releaseLease(lease: MailboxLease): Promise<void> {
    try {
      await this.table.deleteEntity(LEASE_PARTITION, tableKey(lease.mailbox.toLowerCase()), { etag: lease.etag });
    } catch (err) {
      if (!isStatus(err, 404) && !isStatus(err, 412)) throw err;
    }
  }

  /** Forgets a subscription's index row, so its notifications are dropped as unknown. */
  async forgetSubscription(subscriptionId: string): Promise<void> {
    await ensureTable(this.table);
    await this.deleteIndex(subscriptionId);
  }

  private async deleteIndex(subscriptionId: string): Promise<void> {
    if (!subscriptionId) return;
    try {
      await this.table.deleteEntity(SUBSCRIPTION_PARTITION, tableKey(subscriptionId));
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }
}

function toEntity(record: WatchedMailbox): MailboxEntity {
  return {
    partitionKey: MAILBOX_PARTITION,
    rowKey: tableKey(watchKey(record.mailbox, record.folder)),
    mailbox: record.mailbox,
    // The Inbox's row stays as rows were before folders, so an older version reading it back sees its own shape.
    ...(record.folder === undefined || record.folder === DEFAULT_FOLDER ? {} : { folder: record.folder }),
    subscriptionId: record.subscriptionId,
    clientState: record.clientState,
    expirationDateTime: record.expirationDateTime,
    grantedMinutes: record.grantedMinutes,
    deltaLink: record.deltaLink,
    deltaSyncedAt: record.deltaSyncedAt,
    createdAt: record.createdAt,
    lastRenewalAt: record.lastRenewal?.at,
    lastRenewalOutcome: record.lastRenewal?.outcome,
    lastRenewalError: record.lastRenewal?.error,
    lastEventAt: record.lastEventAt,
    eventsPublished: record.eventsPublished,
    delivery: record.delivery,
    mode: record.mode,
    modeReason: record.modeReason,
    nextReadAt: record.nextReadAt,
    reconciled: record.reconciled,
    removals: record.removals,
    ...(record.bounceOnly ? { bounceOnly: true } : {}),
    ...(wantsContent(record.content)
      ? {
          contentBody: record.content.body,
          contentMaxBodyBytes: record.content.maxBodyBytes,
          contentAttachments: record.content.attachments,
        }
      : {}),
  };
}

function fromEntity(entity: MailboxEntity): WatchedMailbox {
  return {
    mailbox: entity.mailbox,
    folder: entity.folder ?? DEFAULT_FOLDER,
    subscriptionId: entity.subscriptionId,
    clientState: entity.clientState,
    expirationDateTime: entity.expirationDateTime,
    grantedMinutes: entity.grantedMinutes,
    deltaLink: entity.deltaLink,
    deltaSyncedAt: entity.deltaSyncedAt,
    createdAt: entity.createdAt,
    lastRenewal: entity.lastRenewalAt
      ? { at: entity.lastRenewalAt, outcome: entity.lastRenewalOutcome ?? '', error: entity.lastRenewalError }
      : undefined,
    lastEventAt: entity.lastEventAt,
    eventsPublished: entity.eventsPublished ?? 0,
    content: contentOf(entity),
    delivery: entity.delivery === 'poll' || entity.delivery === 'auto' ? entity.delivery : 'push',
    mode: entity.mode === 'poll' ? 'poll' : 'push',
    modeReason: entity.modeReason,
    nextReadAt: entity.nextReadAt,
    reconciled: entity.reconciled ?? 0,
    removals: entity.removals,
    ...(entity.bounceOnly ? { bounceOnly: true } : {}),
  };
}

/** The stored content option; anything a later version might write that this one does not know reads as none. */
function contentOf(entity: MailboxEntity): EventContent | undefined {
  const content: EventContent = {
    body: entity.contentBody === 'text' || entity.contentBody === 'html' ? entity.contentBody : 'none',
    maxBodyBytes:
      typeof entity.contentMaxBodyBytes === 'number' && entity.contentMaxBodyBytes > 0
        ? entity.contentMaxBodyBytes
        : DEFAULT_MAX_BODY_BYTES,
    attachments: entity.contentAttachments === 'list' ? 'list' : 'none',
  };
  return wantsContent(content) ? content : undefined;
}
