/**
 * Watching a mailbox end to end: create or repair its Graph subscription (fresh clientState, longest expiry, first
 * delta link taken before the subscription exists so nothing slips between them), renew, recreate what Graph lost
 * and catch up, reauthorize, and stop watching.
 */
import { randomBytes } from 'node:crypto';
import { forEachLimited } from '../platform/concurrency';
import type { CatchUp, CatchUpResult } from './catchUp';
import type { GraphSubscriptions, RenewResult } from './graphSubscriptions';
import type { WatchedMailbox, WatchStore } from './watchStore';

/** Paths of the webhook endpoints below the app's origin. */
export const NOTIFICATIONS_PATH = '/api/graph/notifications';
export const LIFECYCLE_PATH = '/api/graph/lifecycle';

/** Table writes in flight at once while storing renewal outcomes. */
const STORE_CONCURRENCY = 16;

/** How far back the first delta link looks, for mail arriving while the watch is set up. */
const INITIAL_LOOKBACK_MS = 60_000;

/** A fresh clientState: 32 random bytes, base64url (43 characters; Graph allows 128). */
export function newClientState(): string {
  return randomBytes(32).toString('base64url');
}

/** What {@link WatchService.watch} did. */
export type WatchOutcome = 'created' | 'renewed' | 'recreated';

/** One mailbox's result of a renewal run. */
export interface RenewalReport {
  mailbox: string;
  outcome: 'renewed' | 'recreated' | 'failed';
  error?: string;
  catchUp?: CatchUpResult;
}

/** Watch operations over the store, Graph's subscriptions and catch-up. */
export class WatchService {
  constructor(
    private readonly store: WatchStore,
    private readonly subscriptions: GraphSubscriptions,
    private readonly catchUp: CatchUp,
    private readonly webhookBaseUrl: string,
  ) {}

  /**
   * Watches `mailbox` (lower-cased): creates the subscription, or renews the existing one, or recreates it when
   * Graph no longer has it (then catches up). Idempotent.
   */
  async watch(mailbox: string): Promise<{ outcome: WatchOutcome; record: WatchedMailbox }> {
    const address = mailbox.toLowerCase();
    const existing = await this.store.get(address);
    if (existing) {
      const renewed = await this.subscriptions.renew(existing.subscriptionId);
      if (renewed) {
        const record = await this.store.update(address, (r) => ({
          ...r,
          expirationDateTime: renewed.expirationDateTime,
          lastRenewal: { at: new Date().toISOString(), outcome: 'renewed' },
        }));
        if (record) return { outcome: 'renewed', record };
      } else {
        return { outcome: 'recreated', record: (await this.recreate(existing)).record };
      }
    }
    const now = new Date();
    const deltaLink = await this.catchUp.initialLink(address, new Date(now.getTime() - INITIAL_LOOKBACK_MS));
    const clientState = newClientState();
    const created = await this.subscriptions.create(this.request(address, clientState));
    const record: WatchedMailbox = {
      mailbox: address,
      subscriptionId: created.id,
      clientState,
      expirationDateTime: created.expirationDateTime,
      deltaLink,
      deltaSyncedAt: now.toISOString(),
      createdAt: now.toISOString(),
      lastRenewal: { at: new Date().toISOString(), outcome: 'created' },
      eventsPublished: 0,
    };
    await this.store.save(record);
    // Mail that arrived after the delta link was taken but before notifications flowed.
    await this.catchUp.run(record);
    return { outcome: 'created', record: (await this.store.get(address)) ?? record };
  }

  /** Stops watching: deletes the subscription in Graph, then the records. False when the mailbox wasn't watched. */
  async unwatch(mailbox: string): Promise<boolean> {
    const existing = await this.store.get(mailbox.toLowerCase());
    if (!existing) return false;
    await this.subscriptions.delete(existing.subscriptionId);
    await this.store.remove(existing);
    return true;
  }

  /**
   * Replaces the mailbox's subscription with a new one (fresh clientState) and catches up from the stored delta
   * link. A catch-up failure is reported, not thrown: the new subscription stands and the next run retries.
   */
  async recreate(
    previous: WatchedMailbox,
  ): Promise<{ record: WatchedMailbox; catchUp?: CatchUpResult; error?: string }> {
    const clientState = newClientState();
    const created = await this.subscriptions.create(this.request(previous.mailbox, clientState));
    const record: WatchedMailbox = {
      ...previous,
      subscriptionId: created.id,
      clientState,
      expirationDateTime: created.expirationDateTime,
      lastRenewal: { at: new Date().toISOString(), outcome: 'recreated' },
    };
    await this.store.save(record, previous.subscriptionId);
    // The old subscription may linger in Graph (e.g. a removed-then-restored one): it must not notify twice.
    await this.subscriptions.delete(previous.subscriptionId).catch(() => undefined);
    try {
      const catchUp = await this.catchUp.run(record);
      return { record, catchUp };
    } catch (err) {
      return { record, error: `catch-up failed: ${describe(err)}` };
    }
  }

  /** Catches up the mailbox of a subscription (after a `missed` lifecycle event). */
  async catchUpMailbox(mailbox: string): Promise<CatchUpResult | undefined> {
    const record = await this.store.get(mailbox);
    return record && this.catchUp.run(record);
  }

  /** Answers `reauthorizationRequired`: reauthorize, or renew if that fails; recreate if Graph lost it. */
  async reauthorize(mailbox: string, subscriptionId: string): Promise<string> {
    const record = await this.store.get(mailbox);
    if (!record || record.subscriptionId !== subscriptionId) return 'stale';
    let outcome = 'reauthorized';
    try {
      await this.subscriptions.reauthorize(subscriptionId);
    } catch {
      const renewed = await this.subscriptions.renew(subscriptionId);
      if (!renewed) {
        await this.recreate(record);
        return 'recreated';
      }
      outcome = 'renewed';
      await this.store.update(mailbox, (r) => ({ ...r, expirationDateTime: renewed.expirationDateTime }));
    }
    await this.store.update(mailbox, (r) => ({ ...r, lastRenewal: { at: new Date().toISOString(), outcome } }));
    return outcome;
  }

  /** Answers `subscriptionRemoved`: recreate (unless already replaced) and catch up. */
  async replaceRemoved(mailbox: string, subscriptionId: string): Promise<string> {
    const record = await this.store.get(mailbox);
    if (!record || record.subscriptionId !== subscriptionId) return 'stale';
    const result = await this.recreate(record);
    if (result.error) throw new Error(result.error);
    return 'recreated';
  }

  /**
   * Renews every subscription expiring within `windowMs` through `$batch`, recreates (and catches up) those Graph
   * lost or that already expired, and stores each outcome. One mailbox's failure never stops the others.
   */
  async renewDue(windowMs: number, stats: { graphRequests: number } = { graphRequests: 0 }): Promise<RenewalReport[]> {
    const now = Date.now();
    const due = (await this.store.list()).filter((r) => new Date(r.expirationDateTime).getTime() - now < windowMs);
    const expired = due.filter((r) => new Date(r.expirationDateTime).getTime() <= now);
    const live = due.filter((r) => new Date(r.expirationDateTime).getTime() > now);
    const reports: RenewalReport[] = [];
    let renewed = new Map<string, RenewResult>();
    try {
      renewed = await this.subscriptions.renewMany(
        live.map((r) => r.subscriptionId),
        stats,
      );
    } catch (err) {
      for (const r of live) renewed.set(r.subscriptionId, { kind: 'failed', status: 0, error: describe(err) });
    }
    const toRecreate = [...expired];
    const gone = new Set(live.filter((r) => renewed.get(r.subscriptionId)?.kind === 'gone').map((r) => r.mailbox));
    toRecreate.push(...live.filter((r) => gone.has(r.mailbox)));
    // Outcomes are stored a few at a time: thousands of sequential table writes would dominate the run.
    await forEachLimited(
      live.filter((r) => !gone.has(r.mailbox)),
      STORE_CONCURRENCY,
      async (record) => {
        const result = renewed.get(record.subscriptionId) ?? { kind: 'failed', status: 0, error: 'no result' };
        const report: RenewalReport =
          result.kind === 'renewed'
            ? { mailbox: record.mailbox, outcome: 'renewed' }
            : { mailbox: record.mailbox, outcome: 'failed', error: result.kind === 'failed' ? result.error : 'gone' };
        reports.push(report);
        const at = new Date().toISOString();
        await this.store
          .update(record.mailbox, (r) => ({
            ...r,
            ...(result.kind === 'renewed' ? { expirationDateTime: result.expirationDateTime } : {}),
            lastRenewal: { at, outcome: report.outcome, error: report.error },
          }))
          .catch((err: unknown) => {
            report.outcome = 'failed';
            report.error = `storing the outcome failed: ${describe(err)}`;
          });
      },
    );
    for (const record of toRecreate) {
      try {
        const result = await this.recreate(record);
        reports.push({ mailbox: record.mailbox, outcome: 'recreated', catchUp: result.catchUp, error: result.error });
      } catch (err) {
        const error = `recreating the subscription failed: ${describe(err)}`;
        reports.push({ mailbox: record.mailbox, outcome: 'failed', error });
        await this.store
          .update(record.mailbox, (r) => ({
            ...r,
            lastRenewal: { at: new Date().toISOString(), outcome: 'failed', error },
          }))
          .catch(() => undefined);
      }
    }
    return reports;
  }

  private request(mailbox: string, clientState: string) {
    return {
      mailbox,
      clientState,
      notificationUrl: `${this.webhookBaseUrl}${NOTIFICATIONS_PATH}`,
      lifecycleNotificationUrl: `${this.webhookBaseUrl}${LIFECYCLE_PATH}`,
    };
  }
}

function describe(err: unknown): string {
  const e = err as { statusCode?: number; code?: string | null; message?: string };
  if (e && typeof e === 'object' && (e.code || e.statusCode)) {
    return `${e.statusCode ?? ''} ${e.code ?? ''}: ${e.message ?? ''}`.trim();
  }
  return err instanceof Error ? err.message : String(err);
}
