/**
 * Exchange Online's submission limits, which sit behind Graph: Graph answers 202 whatever they say, and they decide
 * when (and whether) mail leaves. Each sending mailbox has an Outbox: an accepted message sits in the mailbox's
 * `outbox` well-known folder (listable through Graph, with its internetMessageId) until it leaves, and only then does
 * its Sent Items copy appear. At most `messagesPerMinute` messages leave it in
 * any 60 seconds (the rest are "carried over to following minutes", first in first out), and a message whose To + Cc +
 * Bcc would take the mailbox past `recipientsPerDay` in the last 24 hours is not delivered: an NDR (550 5.1.90) lands
 * in the sender's Inbox instead. A delivered message naming addresses of the tenant's domain that no mailbox has brings
 * an NDR (550 5.1.1) for those recipients. Both windows slide on the emulator's clock, so tests move time instead of waiting.
 * (learn: exchange-online-limits "Sending limits", outbound-spam-sending-limits-troubleshoot; GRAPH-FACTS.md.)
 */
import type { TenantUser } from '../tenant';
import type { EmulatedClock } from './clock';
import type { MailDelivery, SubmittedMessage } from './delivery';
import type { MailboxStore, NewMessage, StoredMessage } from './mailboxStore';
import { allRecipients } from './messageInput';
import {
  refusalNdr,
  refusalStatus,
  type NdrRecord,
  type NondeliveryReason,
  type SubmissionRefusal,
} from './nondeliveryReport';

/** Exchange Online's per-mailbox sending limits. */
export const EXCHANGE_SUBMISSION_LIMITS = { messagesPerMinute: 30, recipientsPerDay: 10_000 } as const;

/** The limits a {@link SubmissionQueue} applies. */
export interface SubmissionLimits {
  /** Messages that may leave one mailbox's Outbox in any 60 seconds. */
  messagesPerMinute: number;
  /** Recipients (To + Cc + Bcc) one mailbox may send to in any 24 hours. */
  recipientsPerDay: number;
  /**
   * External recipients (outside `tenantDomains`) all mailboxes of the tenant together may send to in any 24 hours
   * (TERRL: 500 × licences^0.7 + 9,500); absent: not enforced.
   */
  tenantExternalRecipientsPerDay?: number;
  /** The tenant's accepted domains, lower case (default: none, so every recipient is external). */
  tenantDomains?: readonly string[];
}

/** How often (real time) the Outbox is checked for mail that became due. */
export const RELEASE_TICK_MS = 50;

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/** What became of one accepted submission. */
export type SubmissionOutcome = 'queued' | 'delivered' | 'ndr';

/** One accepted submission, as tests and benchmarks see it. */
export interface SubmissionRecord {
  internetMessageId: string;
  subject: string;
  /** To + Cc + Bcc, as counted against the daily recipient limit. */
  recipients: number;
  outcome: SubmissionOutcome;
  /** Emulated time Graph accepted it (202). */
  submittedAt: Date;
  /** Emulated time it left the Outbox (delivered or turned into an NDR); absent while queued. */
  deliveredAt?: Date;
}

/** A mailbox's submissions: counts and each message, oldest first. */
export interface SubmissionSummary {
  queued: number;
  delivered: number;
  ndr: number;
  messages: SubmissionRecord[];
}

/** Deliveries in one emulated minute (`minute` is the minute's start). */
export interface MinuteCount {
  minute: string;
  count: number;
}

interface Pending {
  record: SubmissionRecord;
  message: SubmittedMessage;
  /** Id of the message's item in the mailbox's Outbox folder, removed when it leaves. */
  outboxItemId: string;
  /** Keep a Sent Items copy when it leaves (saveToSentItems and no PidTagDeleteAfterSubmit). */
  keepSentCopy: boolean;
}

interface Outbox {
  user: TenantUser;
  queue: Pending[];
  records: SubmissionRecord[];
  /** Emulated times (ms) messages left, for the message rate. */
  departures: number[];
  /** Emulated times (ms) and recipient counts of delivered messages, for the daily recipient limit. */
  sentRecipients: Array<{ at: number; count: number }>;
  accepted: number;
}

/** Every mailbox's Outbox and the limits on leaving it. */
export class SubmissionQueue {
  /** NDRs written so far, oldest first. */
  readonly ndrs: NdrRecord[] = [];
  private readonly outboxes = new Map<string, Outbox>();
  /** The tenant's external recipients sent, for TERRL. */
  private readonly tenantExternal: Array<{ at: number; count: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly limits: SubmissionLimits,
    private readonly clock: EmulatedClock,
    private readonly delivery: MailDelivery,
    private readonly mailboxOf: (user: TenantUser) => MailboxStore,
  ) {}

  /**
   * Accepts a message for sending from `user`'s mailbox (what a 202 means): it joins the Outbox and leaves at once
   * when the limits allow, else later. Returns the prepared message (its Message-ID and sending time set).
   */
  submit(user: TenantUser, message: NewMessage | StoredMessage, keepSentCopy: boolean): SubmittedMessage {
    const now = this.clock.now();
    const prepared = this.delivery.prepare(user, message, now);
    const outbox = this.outbox(user);
    const record: SubmissionRecord = {
      internetMessageId: prepared.internetMessageId,
      subject: prepared.subject ?? '',
      recipients: allRecipients(prepared).length,
      outcome: 'queued',
      submittedAt: now,
    };
    outbox.accepted++;
    outbox.records.push(record);
    // Exchange files every submission in the Outbox first; one the limits let go at once leaves it again at once.
    const { id: outboxItemId } = this.mailboxOf(user).addMessage('outbox', { ...prepared, isRead: true });
    outbox.queue.push({ record, message: prepared, keepSentCopy, outboxItemId });
    this.release();
    return prepared;
  }

  /** Lets every Outbox send what its limits now allow (called on each tick and whenever the clock moves). */
  release(): void {
    const now = this.clock.now();
    for (const outbox of this.outboxes.values()) this.releaseFrom(outbox, now);
    this.schedule();
  }

  /** The mailbox's submissions (user id). */
  summary(userId: string): SubmissionSummary {
    const records = this.outboxes.get(userId)?.records ?? [];
    const count = (outcome: SubmissionOutcome) => records.filter((r) => r.outcome === outcome).length;
    return {
      queued: count('queued'),
      delivered: count('delivered'),
      ndr: count('ndr'),
      messages: records.map((r) => ({ ...r })),
    };
  }

  /** Delivered messages per emulated minute for the mailbox (user id), oldest minute first. */
  perMinute(userId: string): MinuteCount[] {
    const counts = new Map<number, number>();
    for (const record of this.outboxes.get(userId)?.records ?? []) {
      if (record.outcome !== 'delivered' || !record.deliveredAt) continue;
      const minute = Math.floor(record.deliveredAt.getTime() / MINUTE_MS) * MINUTE_MS;
      counts.set(minute, (counts.get(minute) ?? 0) + 1);
    }
    return [...counts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([minute, count]) => ({ minute: new Date(minute).toISOString(), count }));
  }

  /** Submissions Graph accepted (202) for the mailbox (user id). */
  accepted(userId: string): number {
    return this.outboxes.get(userId)?.accepted ?? 0;
  }

  /** Resolves once no Outbox holds mail. */
  idle(): Promise<void> {
    if (this.queuedCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Forgets the rate and recipient windows, counters, records and NDR log, then lets queued mail go (the windows
   * being empty, up to the limits at once). Used between tests.
   */
  reset(): void {
    for (const outbox of this.outboxes.values()) {
      outbox.departures.length = 0;
      outbox.sentRecipients.length = 0;
      outbox.accepted = 0;
      outbox.records = outbox.records.filter((r) => r.outcome === 'queued');
    }
    this.tenantExternal.length = 0;
    this.ndrs.length = 0;
    this.release();
  }

  /** Stops the release timer for good (queued mail stays queued); for the emulator's shutdown. */
  close(): void {
    this.closed = true;
    this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private releaseFrom(outbox: Outbox, now: Date): void {
    const nowMs = now.getTime();
    // Entries after `now` exist only when the clock was reset back to real time; they do not count until then.
    const inWindow = (at: number, width: number) => at > nowMs - width && at <= nowMs;
    prune(outbox.departures, (at) => at > nowMs - MINUTE_MS);
    prune(outbox.sentRecipients, (e) => e.at > nowMs - DAY_MS);
    while (outbox.queue.length > 0) {
      const recent = outbox.departures.filter((at) => inWindow(at, MINUTE_MS)).length;
      if (recent >= this.limits.messagesPerMinute) return;
      const next = outbox.queue.shift() as Pending;
      this.mailboxOf(outbox.user).deleteMessage(next.outboxItemId);
      // A refused submission was still a submission: it uses up its slot in the message rate.
      outbox.departures.push(nowMs);
      next.record.deliveredAt = now;
      const used = outbox.sentRecipients.filter((e) => inWindow(e.at, DAY_MS)).reduce((sum, e) => sum + e.count, 0);
      if (used + next.record.recipients > this.limits.recipientsPerDay) {
        this.refuse(outbox.user, next, now, 'recipientLimit');
        continue;
      }
      // TERRL: counted across every mailbox of the tenant, external recipients only.
      const external = this.externalRecipients(next.message);
      const tenantLimit = this.limits.tenantExternalRecipientsPerDay;
      if (tenantLimit !== undefined && external > 0) {
        prune(this.tenantExternal, (e) => e.at > nowMs - DAY_MS);
        const tenantUsed = this.tenantExternal.filter((e) => inWindow(e.at, DAY_MS)).reduce((s, e) => s + e.count, 0);
        if (tenantUsed + external > tenantLimit) {
          this.refuse(outbox.user, next, now, 'tenantExternalLimit');
          continue;
        }
        this.tenantExternal.push({ at: nowMs, count: external });
      }
      outbox.sentRecipients.push({ at: nowMs, count: next.record.recipients });
      const { unknown } = this.delivery.deliver(outbox.user, next.message, now);
      // The message went (to whoever exists); the unknown recipients of the tenant's own domain come back as one NDR.
      if (unknown.length > 0) this.report(outbox.user, next.message, now, 'recipientNotFound', unknown);
      if (next.keepSentCopy) this.mailboxOf(outbox.user).addMessage('sentitems', { ...next.message, isRead: true });
      next.record.outcome = 'delivered';
    }
  }

  /** Recipients of `message` outside the tenant's accepted domains. */
  private externalRecipients(message: SubmittedMessage): number {
    const domains = new Set(this.limits.tenantDomains ?? []);
    return allRecipients(message).filter((r) => {
      const address = r.emailAddress?.address ?? '';
      return !domains.has(address.slice(address.lastIndexOf('@') + 1).toLowerCase());
    }).length;
  }

  private refuse(user: TenantUser, pending: Pending, now: Date, refusal: SubmissionRefusal): void {
    pending.record.outcome = 'ndr';
    this.report(user, pending.message, now, refusal);
  }

  /** Writes the NDR for `message` into the sender's Inbox and logs it; `failed`: the recipients it reports. */
  private report(
    user: TenantUser,
    message: SubmittedMessage,
    now: Date,
    reason: NondeliveryReason,
    failed: readonly string[] = allRecipients(message).map((r) => r.emailAddress?.address ?? ''),
  ): void {
    this.mailboxOf(user).addMessage('inbox', refusalNdr(user, message, now, reason, failed));
    this.ndrs.push({
      mailbox: user.mail,
      internetMessageId: message.internetMessageId,
      subject: message.subject ?? '',
      status: refusalStatus(reason),
      recipients: [...failed],
      at: now,
    });
  }

  /** Keeps the real-time tick running while mail waits, and wakes idle waiters once none does. */
  private schedule(): void {
    if (this.queuedCount() > 0) {
      if (!this.timer && !this.closed) {
        this.timer = setInterval(() => this.release(), RELEASE_TICK_MS);
        this.timer.unref();
      }
      return;
    }
    this.stopTimer();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private queuedCount(): number {
    let queued = 0;
    for (const outbox of this.outboxes.values()) queued += outbox.queue.length;
    return queued;
  }

  private outbox(user: TenantUser): Outbox {
    let outbox = this.outboxes.get(user.id);
    if (!outbox) {
      outbox = { user, queue: [], records: [], departures: [], sentRecipients: [], accepted: 0 };
      this.outboxes.set(user.id, outbox);
    }
    return outbox;
  }
}

/** Removes, in place, the entries that fail `keep`. */
function prune<T>(list: T[], keep: (entry: T) => boolean): void {
  let kept = 0;
  for (const entry of list) if (keep(entry)) list[kept++] = entry;
  list.length = kept;
}
