/**
 * Watching a mailbox end to end, folder by folder (each folder is watched as the Inbox alone was before folders):
 * create or repair its Graph subscription (fresh clientState, longest expiry, first
 * delta link taken before the subscription exists so nothing slips between them), renew, recreate what Graph lost
 * and catch up, reauthorize, and stop watching.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { forEachLimited } from '../platform/concurrency';
import type { CatchUp, CatchUpResult } from './delta/catchUp';
import { wantsContent, type EventContent } from './content/eventContent';
import {
  isWebhookValidationFailure,
  parseFolderResource,
  type GraphSubscription,
  type GraphSubscriptions,
  type RenewResult,
} from './subscriptions/graphSubscriptions';
import { DEFAULT_FOLDER } from './watchFolders';
import {
  LeaseLostError,
  watchKey,
  type Delivery,
  type MailboxLease,
  type WatchedMailbox,
  type WatchStore,
} from './watchStore';

/** Paths of the webhook endpoints below the app's origin. */
const NOTIFICATIONS_PATH = '/api/graph/notifications';
const LIFECYCLE_PATH = '/api/graph/lifecycle';

/** Table writes in flight at once while storing renewal outcomes. */
const STORE_CONCURRENCY = 16;

/** How far back the first delta link looks, for mail arriving while the watch is set up. */
const INITIAL_LOOKBACK_MS = 60_000;

/**
 * How long a mailbox's lease holder may take to create or replace its subscription (the delta link, Graph's two
 * webhook validations of up to 10 s each, the table writes) before another instance presumes it dead and takes over.
 */
const LEASE_MS = 60_000;
/** How long a request waits for another caller's lease on the same mailbox before giving up. */
const LEASE_WAIT_MS = LEASE_MS + 30_000;
/** Rounds of "look, then create or renew" one watch call makes while others keep changing the mailbox. */
const MAX_WATCH_ATTEMPTS = 5;

/** The mailbox's subscription is being changed by another caller for longer than a request can wait. */
export class WatchBusyError extends Error {
  constructor(readonly mailbox: string) {
    super(`another request is still changing the subscription of ${mailbox}`);
    this.name = 'WatchBusyError';
  }
}

/** A fresh clientState: 32 random bytes, base64url (43 characters; Graph allows 128). */
export function newClientState(): string {
  return randomBytes(32).toString('base64url');
}

/** What {@link WatchService.watch} did. */
export type WatchOutcome = 'created' | 'renewed' | 'recreated';

/** Why a folder is polled when delivery is auto and Graph could not validate the webhook (the problem's slug). */
export const VALIDATION_FAILED_REASON = 'webhook-validation-failed';
/** Why an auto folder is polled after Graph removed its subscription again and again. */
export const REMOVED_REASON = 'subscription-removed-repeatedly';
/** `subscriptionRemoved` events in a row (no renewal between them) after which an auto folder falls back to polling. */
export const MAX_REMOVALS = 3;

/** Why a folder is polled when there is no webhook to push to. */
export const NO_WEBHOOK_REASON = 'WEBHOOK_BASE_URL is not set';

/** One mailbox folder's result of a renewal run. */
export interface RenewalReport {
  mailbox: string;
  /** Absent means the Inbox. */
  folder?: string;
  /** `pushed`: an auto mailbox's polled folder is pushed again; `polling`: it falls back (or stays) to polling. */
  outcome: 'renewed' | 'recreated' | 'failed' | 'pushed' | 'polling';
  error?: string;
  catchUp?: CatchUpResult;
}

/** Watch operations over the store, Graph's subscriptions and catch-up. */
export class WatchService {
  constructor(
    private readonly store: WatchStore,
    private readonly subscriptions: GraphSubscriptions,
    private readonly catchUp: CatchUp,
    /** Undefined when WEBHOOK_BASE_URL is unset: then folders are polled. */
    private readonly webhookBaseUrl: string | undefined,
    /** The clock due dates and granted lifetimes are judged by (tests pass a simulated one). */
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Watches `mailbox` (lower-cased): creates the subscription, or renews the existing one, or recreates it when
   * Graph no longer has it (then catches up). Idempotent, also when called concurrently on any number of instances:
   * only the holder of the mailbox's lease creates, and the others then renew what it created.
   */
  async watch(
    mailbox: string,
    content?: EventContent,
    folders: readonly string[] = [DEFAULT_FOLDER],
    delivery: Delivery = 'push',
  ): Promise<{ outcome: WatchOutcome; record: WatchedMailbox; records: WatchedMailbox[] }> {
    const address = mailbox.toLowerCase();
    // Stored as asked: a PUT states the whole watch, so one without content turns content off, and a folder it no
    // longer names stops being watched.
    const wanted = wantsContent(content) ? content : undefined;
    const records: WatchedMailbox[] = [];
    const outcomes: WatchOutcome[] = [];
    for (const folder of folders) {
      const { outcome, record } = await this.watchFolder(address, folder, wanted, delivery);
      records.push(record);
      outcomes.push(outcome);
    }
    for (const stale of await this.store.listMailbox(address)) {
      if (!folders.includes(stale.folder ?? DEFAULT_FOLDER)) await this.unwatchFolder(address, stale.folder);
    }
    const outcome = outcomes.includes('created') ? 'created' : outcomes.includes('recreated') ? 'recreated' : 'renewed';
    // The first folder's record answers for the mailbox where one record is shown (as the Inbox's did).
    return { outcome, record: records[0], records };
  }

  /**
   * BOUNCE_TRACKING: makes sure `mailbox`'s Inbox is watched, at least for non-delivery reports. A mailbox whose
   * Inbox is watched already (by anyone's PUT, or earlier by this) is left as it is, since every watch of an Inbox
   * reports bounces; else a bounce-only watch is created, delivery `auto` (push when Graph validates the webhook,
   * else polling). Returns what it did.
   */
  async watchForBounces(mailbox: string): Promise<'already watched' | 'created'> {
    const address = mailbox.toLowerCase();
    if (await this.store.get(address, DEFAULT_FOLDER)) return 'already watched';
    const { outcome } = await this.watchFolder(address, DEFAULT_FOLDER, undefined, 'auto', true);
    return outcome === 'created' ? 'created' : 'already watched';
  }

  /**
   * Watches one folder of the mailbox (see {@link watch}). `bounceOnly`: for {@link watchForBounces}, which creates
   * a bounce-only watch and never changes one that exists; a watch asked for turns a bounce-only one into a full one.
   */
  private async watchFolder(
    address: string,
    folder: string,
    wanted: EventContent | undefined,
    delivery: Delivery,
    bounceOnly = false,
  ): Promise<{ outcome: WatchOutcome; record: WatchedMailbox }> {
    const polled = delivery === 'poll' || !this.webhookBaseUrl;
    for (let attempt = 0; ; attempt++) {
      const existing = await this.store.get(address, folder);
      if (existing && bounceOnly) return { outcome: 'renewed', record: existing };
      if (existing && (existing.mode ?? 'push') === 'poll') {
        const record = polled ? existing : await this.toPush(existing, delivery);
        if (record) return { outcome: 'renewed', record: await this.withSettings(record, wanted, delivery) };
      } else if (existing && polled) {
        const record = await this.toPoll(existing, delivery === 'poll' ? 'delivery poll' : NO_WEBHOOK_REASON);
        if (record) return { outcome: 'renewed', record: await this.withSettings(record, wanted, delivery) };
      } else if (existing) {
        const kept = await this.keep(existing);
        if (kept) return { ...kept, record: await this.withSettings(kept.record, wanted, delivery) };
      } else {
        const record = await this.leased(watchKey(address, folder), async (lease) => {
          if (polled) {
            const reason = delivery === 'poll' ? 'delivery poll' : NO_WEBHOOK_REASON;
            return this.createPolledUnderLease(address, folder, lease, wanted, delivery, reason, bounceOnly);
          }
          try {
            return await this.createUnderLease(address, folder, lease, wanted, delivery, bounceOnly);
          } catch (err) {
            if (delivery !== 'auto' || !isWebhookValidationFailure(err)) throw err;
            return this.createPolledUnderLease(
              address,
              folder,
              lease,
              wanted,
              delivery,
              VALIDATION_FAILED_REASON,
              bounceOnly,
            );
          }
        });
        if (record) {
          // Mail that arrived after the delta link was taken but before notifications flowed.
          await this.catchUp.run(record);
          return { outcome: 'created', record: (await this.store.get(address, folder)) ?? record };
        }
      }
      // Another instance created the subscription, or a DELETE removed it, meanwhile: look again.
      if (attempt >= MAX_WATCH_ATTEMPTS) throw new WatchBusyError(address);
    }
  }

  /**
   * Stops watching: deletes the subscription in Graph (and any other this deployment holds on the mailbox), then the
   * records, under the mailbox's lease so that no create runs meanwhile. False when the mailbox wasn't watched.
   */
  async unwatch(mailbox: string): Promise<boolean> {
    const address = mailbox.toLowerCase();
    let any = false;
    for (const record of await this.store.listMailbox(address)) {
      if (await this.unwatchFolder(address, record.folder)) any = true;
    }
    return any;
  }

  /** Stops watching one folder of the mailbox (see {@link unwatch}). */
  private async unwatchFolder(address: string, folder: string | undefined): Promise<boolean> {
    return this.leased(watchKey(address, folder), async () => {
      const existing = await this.store.get(address, folder);
      if (!existing) return false;
      await this.subscriptions.delete(existing.subscriptionId);
      await this.deleteDuplicates(address, folder);
      await this.store.remove(existing);
      return true;
    });
  }

  /**
   * Replaces the mailbox's subscription with a new one (fresh clientState) and catches up from the stored delta
   * link. A catch-up failure is reported, not thrown: the new subscription stands and the next run retries. Runs
   * under the mailbox's lease: when another caller already replaced `previous`, its record is returned as is
   * (nothing created); undefined when the mailbox is no longer watched.
   */
  async recreate(
    previous: WatchedMailbox,
  ): Promise<{ record: WatchedMailbox; catchUp?: CatchUpResult; error?: string } | undefined> {
    const replaced = await this.leased(watchKey(previous.mailbox, previous.folder), async (lease) => {
      const current = await this.store.get(previous.mailbox, previous.folder);
      if (!current || current.subscriptionId !== previous.subscriptionId) return current && { record: current };
      const clientState = newClientState();
      const askedAt = this.now();
      const created = await this.subscriptions.create(this.request(current.mailbox, current.folder, clientState));
      if (!(await this.stillHolding(lease, created.id))) {
        const now = await this.store.get(previous.mailbox, previous.folder);
        return now && { record: now };
      }
      const record: WatchedMailbox = {
        ...current,
        subscriptionId: created.id,
        clientState,
        expirationDateTime: created.expirationDateTime,
        grantedMinutes: grantedMinutes(askedAt, created.expirationDateTime),
        lastRenewal: { at: new Date(this.now()).toISOString(), outcome: 'recreated' },
      };
      await this.store.save(record, previous.subscriptionId);
      // The old subscription may linger in Graph (e.g. a removed-then-restored one): it must not notify twice.
      await this.subscriptions.delete(previous.subscriptionId).catch(() => undefined);
      return { record, fresh: true };
    });
    if (!replaced || !('fresh' in replaced)) return replaced;
    const { record } = replaced;
    try {
      const catchUp = await this.catchUp.run(record);
      return { record, catchUp };
    } catch (err) {
      return { record, error: `catch-up failed: ${describe(err)}` };
    }
  }

  /** Catches up the mailbox folder of a subscription (after a `missed` lifecycle event). */
  async catchUpMailbox(mailbox: string, folder: string = DEFAULT_FOLDER): Promise<CatchUpResult | undefined> {
    const record = await this.store.get(mailbox, folder);
    return record && this.catchUp.run(record);
  }

  /** Answers `reauthorizationRequired`: reauthorize, or renew if that fails; recreate if Graph lost it. */
  async reauthorize(mailbox: string, subscriptionId: string, folder: string = DEFAULT_FOLDER): Promise<string> {
    const record = await this.store.get(mailbox, folder);
    if (!record || record.subscriptionId !== subscriptionId) return 'stale';
    let outcome = 'reauthorized';
    try {
      await this.subscriptions.reauthorize(subscriptionId);
    } catch {
      const askedAt = this.now();
      const renewed = await this.subscriptions.renew(subscriptionId);
      if (!renewed) return (await this.recreate(record)) ? 'recreated' : 'stale';
      outcome = 'renewed';
      await this.store.update(
        mailbox,
        (r) => ({
          ...r,
          expirationDateTime: renewed.expirationDateTime,
          grantedMinutes: grantedMinutes(askedAt, renewed.expirationDateTime),
        }),
        folder,
      );
    }
    await this.store.update(mailbox, (r) => ({ ...r, lastRenewal: { at: new Date().toISOString(), outcome } }), folder);
    return outcome;
  }

  /** Answers `subscriptionRemoved`: recreate (unless already replaced) and catch up. */
  async replaceRemoved(mailbox: string, subscriptionId: string, folder: string = DEFAULT_FOLDER): Promise<string> {
    const record = await this.store.get(mailbox, folder);
    if (!record || record.subscriptionId !== subscriptionId) return 'stale';
    const removals = (record.removals ?? 0) + 1;
    if (record.delivery === 'auto' && removals >= MAX_REMOVALS) {
      // Graph keeps taking the subscription away: polling reads the folder without one; renewal runs try push again.
      // Due for a poll at once, which catches up from the stored delta link.
      await this.toPoll(record, REMOVED_REASON);
      return `fell back to polling (${REMOVED_REASON}: ${removals} removals in a row)`;
    }
    const result = await this.recreate(record);
    if (!result) return 'stale';
    await this.store.update(mailbox, (r) => ({ ...r, removals }), folder).catch(() => undefined);
    if (result.error) throw new Error(result.error);
    return 'recreated';
  }

  /**
   * Deletes this deployment's Graph subscriptions (those notifying its webhook) that no watch record holds: left by
   * a creator that died between Graph's answer and its table write, or by a DELETE whose Graph call failed. Until
   * they expire (up to a week) Graph would keep sending their notifications, each looked up and dropped as forged,
   * and each counts against the mailbox's subscriptions. A subscription is only judged under its mailbox folder's
   * lease, which every creator holds until its record is written, so one being created right now is never taken for
   * an orphan; a folder whose lease is held is left for the next run. Returns the ids deleted.
   */
  async sweepOrphans(): Promise<string[]> {
    if (!this.webhookBaseUrl) return [];
    const listed = await this.subscriptions.listNotifying(`${this.webhookBaseUrl}${NOTIFICATIONS_PATH}`);
    const known = new Set((await this.store.list()).map((record) => record.subscriptionId));
    const byFolder = new Map<string, { mailbox: string; folder: string; ids: string[] }>();
    for (const sub of listed) {
      const target = parseFolderResource(sub.resource);
      if (known.has(sub.id) || !target) continue;
      const key = watchKey(target.mailbox, target.folder);
      const entry = byFolder.get(key) ?? { ...target, ids: [] };
      entry.ids.push(sub.id);
      byFolder.set(key, entry);
    }
    const deleted: string[] = [];
    for (const [key, { mailbox, folder, ids }] of byFolder) {
      const lease = await this.store.tryLease(key, randomUUID(), LEASE_MS);
      if (!lease) continue;
      try {
        const current = await this.store.get(mailbox, folder);
        for (const id of ids.filter((id) => id !== current?.subscriptionId)) {
          await this.subscriptions.delete(id);
          await this.store.forgetSubscription(id).catch(() => undefined);
          deleted.push(id);
        }
      } finally {
        await this.store.releaseLease(lease).catch(() => undefined);
      }
    }
    return deleted;
  }

  /**
   * Renews every subscription that is due ({@link renewalThresholdMs}: expiring within `windowMs`, and within half
   * of the lifetime Graph granted it) through `$batch`, recreates (and catches up) those Graph lost or that already
   * expired, and stores each outcome. One mailbox's failure never stops the others.
   */
  async renewDue(windowMs: number, stats: { graphRequests: number } = { graphRequests: 0 }): Promise<RenewalReport[]> {
    const now = this.now();
    const all = await this.store.list();
    const due = all.filter(
      (r) =>
        (r.mode ?? 'push') === 'push' &&
        new Date(r.expirationDateTime).getTime() - now < renewalThresholdMs(windowMs, r.grantedMinutes),
    );
    const expired = due.filter((r) => new Date(r.expirationDateTime).getTime() <= now);
    const live = due.filter((r) => new Date(r.expirationDateTime).getTime() > now);
    const reports: RenewalReport[] = [];
    let renewed = new Map<string, RenewResult>();
    const askedAt = this.now();
    try {
      renewed = await this.subscriptions.renewMany(
        live.map((r) => r.subscriptionId),
        stats,
      );
    } catch (err) {
      for (const r of live) renewed.set(r.subscriptionId, { kind: 'failed', status: 0, error: describe(err) });
    }
    const toRecreate = [...expired];
    const gone = new Set(
      live.filter((r) => renewed.get(r.subscriptionId)?.kind === 'gone').map((r) => r.subscriptionId),
    );
    toRecreate.push(...live.filter((r) => gone.has(r.subscriptionId)));
    // Outcomes are stored a few at a time: thousands of sequential table writes would dominate the run.
    await forEachLimited(
      live.filter((r) => !gone.has(r.subscriptionId)),
      STORE_CONCURRENCY,
      async (record) => {
        const result = renewed.get(record.subscriptionId) ?? { kind: 'failed', status: 0, error: 'no result' };
        const report: RenewalReport =
          result.kind === 'renewed'
            ? { ...reportedAs(record), outcome: 'renewed' }
            : {
                ...reportedAs(record),
                outcome: 'failed',
                error: result.kind === 'failed' ? result.error : 'gone',
              };
        reports.push(report);
        const at = new Date().toISOString();
        await this.store
          .update(
            record.mailbox,
            (r) => ({
              ...r,
              ...(result.kind === 'renewed'
                ? {
                    expirationDateTime: result.expirationDateTime,
                    grantedMinutes: grantedMinutes(askedAt, result.expirationDateTime),
                  }
                : {}),
              lastRenewal: { at, outcome: report.outcome, error: report.error },
              ...(result.kind === 'renewed' ? { removals: 0 } : {}),
            }),
            record.folder,
          )
          .catch((err: unknown) => {
            report.outcome = 'failed';
            report.error = `storing the outcome failed: ${describe(err)}`;
          });
      },
    );
    for (const record of toRecreate) {
      try {
        const result = await this.recreate(record);
        // Unwatched while the run went on: nothing to report.
        if (!result) continue;
        reports.push({
          ...reportedAs(record),
          outcome: 'recreated',
          catchUp: result.catchUp,
          error: result.error,
        });
      } catch (err) {
        if (record.delivery === 'auto' && isWebhookValidationFailure(err)) {
          await this.toPoll(record, VALIDATION_FAILED_REASON).catch(() => undefined);
          reports.push({ ...reportedAs(record), outcome: 'polling', error: describe(err) });
          continue;
        }
        const error = `recreating the subscription failed: ${describe(err)}`;
        reports.push({ ...reportedAs(record), outcome: 'failed', error });
        await this.store
          .update(
            record.mailbox,
            (r) => ({ ...r, lastRenewal: { at: new Date().toISOString(), outcome: 'failed', error } }),
            record.folder,
          )
          .catch(() => undefined);
      }
    }
    // An auto mailbox that fell back to polling tries push again at every renewal run.
    if (this.webhookBaseUrl) {
      for (const record of all.filter((r) => r.mode === 'poll' && r.delivery === 'auto')) {
        try {
          const now = await this.toPush(record, 'auto');
          const pushed = now?.mode === 'push';
          reports.push({
            ...reportedAs(record),
            outcome: pushed ? 'pushed' : 'polling',
            ...(pushed ? {} : { error: now?.modeReason ?? 'unwatched' }),
          });
        } catch (err) {
          reports.push({ ...reportedAs(record), outcome: 'polling', error: describe(err) });
        }
      }
    }
    return reports;
  }

  /**
   * Switches a polled folder to push: creates its subscription and catches up what arrived since the last poll. For
   * auto, a webhook Graph cannot validate leaves it polled (the reason stored). Undefined when unwatched meanwhile.
   */
  async toPush(previous: WatchedMailbox, delivery: Delivery): Promise<WatchedMailbox | undefined> {
    const switched = await this.leased(watchKey(previous.mailbox, previous.folder), async (lease) => {
      const current = await this.store.get(previous.mailbox, previous.folder);
      if (!current || current.mode !== 'poll') return current;
      const clientState = newClientState();
      const askedAt = this.now();
      let created: GraphSubscription;
      try {
        created = await this.subscriptions.create(this.request(current.mailbox, current.folder, clientState));
      } catch (err) {
        if (delivery !== 'auto' || !isWebhookValidationFailure(err)) throw err;
        return this.store.update(
          current.mailbox,
          (r) => ({ ...r, modeReason: VALIDATION_FAILED_REASON }),
          current.folder,
        );
      }
      if (!(await this.stillHolding(lease, created.id))) return this.store.get(previous.mailbox, previous.folder);
      const record: WatchedMailbox = {
        ...current,
        subscriptionId: created.id,
        clientState,
        expirationDateTime: created.expirationDateTime,
        grantedMinutes: grantedMinutes(askedAt, created.expirationDateTime),
        mode: 'push',
        modeReason: delivery === 'auto' ? 'auto: Graph validated the webhook' : 'delivery push',
        nextReadAt: undefined,
        lastRenewal: { at: new Date(this.now()).toISOString(), outcome: 'created' },
      };
      await this.store.save(record);
      return record;
    });
    // What arrived between the last poll and the subscription.
    if (switched?.mode === 'push' && previous.mode === 'poll') await this.catchUp.run(switched).catch(() => undefined);
    return switched && ((await this.store.get(switched.mailbox, switched.folder)) ?? switched);
  }

  /**
   * Switches a pushed folder to polling: deletes its subscription (best effort: an orphan expires, and its
   * notifications are dropped without an index row), due for a poll at once. Undefined when unwatched meanwhile.
   */
  async toPoll(previous: WatchedMailbox, reason: string): Promise<WatchedMailbox | undefined> {
    return this.leased(watchKey(previous.mailbox, previous.folder), async () => {
      const current = await this.store.get(previous.mailbox, previous.folder);
      if (!current) return undefined;
      if (current.subscriptionId) {
        await this.subscriptions.delete(current.subscriptionId).catch(() => undefined);
        await this.store.forgetSubscription(current.subscriptionId).catch(() => undefined);
      }
      return this.store.update(
        current.mailbox,
        (r) => ({
          ...r,
          subscriptionId: '',
          clientState: '',
          expirationDateTime: '',
          mode: 'poll',
          modeReason: reason,
          nextReadAt: new Date(this.now()).toISOString(),
        }),
        current.folder,
      );
    });
  }

  /** `record` with the content option and delivery stored (unchanged when it already has them). */
  private async withSettings(
    record: WatchedMailbox,
    content: EventContent | undefined,
    delivery: Delivery,
  ): Promise<WatchedMailbox> {
    if (
      JSON.stringify(record.content) === JSON.stringify(content) &&
      (record.delivery ?? 'push') === delivery &&
      !record.bounceOnly
    ) {
      return record;
    }
    // A watch asked for announces every mail, also where BOUNCE_TRACKING had watched the Inbox for reports only.
    const update = (r: WatchedMailbox): WatchedMailbox => ({ ...r, content, delivery, bounceOnly: undefined });
    return (await this.store.update(record.mailbox, update, record.folder)) ?? record;
  }

  /** Renews the mailbox's subscription (recreates it when Graph lost it); undefined when it was unwatched meanwhile. */
  private async keep(existing: WatchedMailbox): Promise<{ outcome: WatchOutcome; record: WatchedMailbox } | undefined> {
    const askedAt = this.now();
    const renewed = await this.subscriptions.renew(existing.subscriptionId);
    if (!renewed) {
      const result = await this.recreate(existing);
      return result && { outcome: 'recreated', record: result.record };
    }
    const record = await this.store.update(
      existing.mailbox,
      (r) =>
        // Replaced meanwhile by another instance: its expiry is not this one's.
        r.subscriptionId !== existing.subscriptionId
          ? r
          : {
              ...r,
              expirationDateTime: renewed.expirationDateTime,
              grantedMinutes: grantedMinutes(askedAt, renewed.expirationDateTime),
              lastRenewal: { at: new Date(this.now()).toISOString(), outcome: 'renewed' },
              removals: 0,
            },
      existing.folder,
    );
    return record && { outcome: 'renewed', record };
  }

  /**
   * Creates the mailbox's subscription and stores it, while holding its lease. Undefined when another instance
   * created one first (the record exists) or took the lease over meanwhile (this one's subscription is deleted).
   */
  private async createUnderLease(
    address: string,
    folder: string,
    lease: MailboxLease,
    content: EventContent | undefined,
    delivery: Delivery = 'push',
    bounceOnly = false,
  ): Promise<WatchedMailbox | undefined> {
    if (await this.store.get(address, folder)) return undefined;
    const now = new Date();
    const deltaLink = await this.catchUp.initialLink(address, folder, new Date(now.getTime() - INITIAL_LOOKBACK_MS));
    const clientState = newClientState();
    const askedAt = this.now();
    const created = await this.subscriptions.create(this.request(address, folder, clientState));
    if (!(await this.stillHolding(lease, created.id))) return undefined;
    const record: WatchedMailbox = {
      mailbox: address,
      folder,
      subscriptionId: created.id,
      clientState,
      expirationDateTime: created.expirationDateTime,
      grantedMinutes: grantedMinutes(askedAt, created.expirationDateTime),
      deltaLink,
      deltaSyncedAt: now.toISOString(),
      createdAt: now.toISOString(),
      lastRenewal: { at: new Date().toISOString(), outcome: 'created' },
      eventsPublished: 0,
      // Stored with the subscription, so the catch-up right after creating already reads what was asked for.
      content,
      delivery,
      mode: 'push',
      modeReason: delivery === 'auto' ? 'auto: Graph validated the webhook' : 'delivery push',
      ...(bounceOnly ? { bounceOnly: true } : {}),
    };
    await this.store.save(record);
    // Left behind by a creator that died between Graph's answer and its table write, or from before leases.
    await this.deleteDuplicates(address, folder, created.id);
    return record;
  }

  /** Creates the record of a polled folder (no subscription; due for a poll at once), while holding its lease. */
  private async createPolledUnderLease(
    address: string,
    folder: string,
    lease: MailboxLease,
    content: EventContent | undefined,
    delivery: Delivery,
    reason: string,
    bounceOnly = false,
  ): Promise<WatchedMailbox | undefined> {
    if (await this.store.get(address, folder)) return undefined;
    const now = new Date();
    const deltaLink = await this.catchUp.initialLink(address, folder, new Date(now.getTime() - INITIAL_LOOKBACK_MS));
    try {
      await this.store.confirmLease(lease, LEASE_MS);
    } catch (err) {
      if (err instanceof LeaseLostError) return undefined;
      throw err;
    }
    const record: WatchedMailbox = {
      mailbox: address,
      folder,
      subscriptionId: '',
      clientState: '',
      expirationDateTime: '',
      deltaLink,
      deltaSyncedAt: now.toISOString(),
      createdAt: now.toISOString(),
      eventsPublished: 0,
      content,
      delivery,
      mode: 'poll',
      modeReason: reason,
      nextReadAt: now.toISOString(),
      ...(bounceOnly ? { bounceOnly: true } : {}),
    };
    await this.store.save(record);
    return record;
  }

  /**
   * True while `lease` is still this caller's (extended for the writes that follow). When another instance took it
   * over, or the check fails, the subscription just created is deleted again so it cannot outlive its record.
   */
  private async stillHolding(lease: MailboxLease, createdId: string): Promise<boolean> {
    try {
      await this.store.confirmLease(lease, LEASE_MS);
      return true;
    } catch (err) {
      await this.subscriptions.delete(createdId).catch(() => undefined);
      if (err instanceof LeaseLostError) return false;
      throw err;
    }
  }

  /**
   * Deletes, in Graph and in the index, every subscription this deployment holds on the mailbox folder except `keep`.
   * Best effort: a failure leaves them to expire, and their notifications are dropped without an index row.
   */
  private async deleteDuplicates(address: string, folder: string | undefined, keep?: string): Promise<void> {
    if (!this.webhookBaseUrl) return;
    const found = await this.subscriptions
      .listFor(address, folder ?? DEFAULT_FOLDER, `${this.webhookBaseUrl}${NOTIFICATIONS_PATH}`)
      .catch(() => [] as GraphSubscription[]);
    for (const sub of found.filter((s) => s.id !== keep)) {
      await this.subscriptions.delete(sub.id).catch(() => undefined);
      await this.store.forgetSubscription(sub.id).catch(() => undefined);
    }
  }

  /**
   * Runs `work` while holding the mailbox's lease, waiting (with jitter) while another caller holds it; a lease
   * whose holder died is taken over once it runs out. Throws {@link WatchBusyError} after waiting too long.
   */
  private async leased<T>(mailbox: string, work: (lease: MailboxLease) => Promise<T>): Promise<T> {
    const holder = randomUUID();
    const deadline = Date.now() + LEASE_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      const lease = await this.store.tryLease(mailbox, holder, LEASE_MS);
      if (lease) {
        try {
          return await work(lease);
        } finally {
          // A lease not given back runs out after LEASE_MS.
          await this.store.releaseLease(lease).catch(() => undefined);
        }
      }
      if (Date.now() > deadline) throw new WatchBusyError(mailbox);
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * Math.min(500, 50 * 2 ** attempt)));
    }
  }

  private request(mailbox: string, folder: string | undefined, clientState: string) {
    return {
      mailbox,
      folder,
      clientState,
      notificationUrl: `${this.webhookBaseUrl}${NOTIFICATIONS_PATH}`,
      lifecycleNotificationUrl: `${this.webhookBaseUrl}${LIFECYCLE_PATH}`,
    };
  }
}

/** Who a renewal report is about: the mailbox, and the folder unless it is the Inbox (as reports were before folders). */
function reportedAs(record: WatchedMailbox): { mailbox: string; folder?: string } {
  const folder = record.folder ?? DEFAULT_FOLDER;
  return folder === DEFAULT_FOLDER ? { mailbox: record.mailbox } : { mailbox: record.mailbox, folder };
}

function describe(err: unknown): string {
  const e = err as { statusCode?: number; code?: string | null; message?: string };
  if (e && typeof e === 'object' && (e.code || e.statusCode)) {
    return `${e.statusCode ?? ''} ${e.code ?? ''}: ${e.message ?? ''}`.trim();
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * How long before its expiry a subscription is renewed: within `windowMs` (RENEWAL_WINDOW_HOURS), but never before
 * half of the lifetime Graph granted it has passed. A window as long as the lifetime (48 hours against Graph's
 * 1,440 minutes) would otherwise renew every subscription on every run, right after its renewal.
 */
export function renewalThresholdMs(windowMs: number, grantedMinutes: number | undefined): number {
  return grantedMinutes && grantedMinutes > 0 ? Math.min(windowMs, (grantedMinutes * 60_000) / 2) : windowMs;
}

/** Whole minutes from `askedAt` (just before the request) to the expiry Graph granted. */
function grantedMinutes(askedAt: number, expirationDateTime: string): number {
  return Math.max(0, Math.round((Date.parse(expirationDateTime) - askedAt) / 60_000));
}
