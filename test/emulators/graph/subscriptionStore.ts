/**
 * The subscriptions Graph holds, with their expiry on the emulated clock: a subscription whose
 * `expirationDateTime` has passed is deleted for good at the next sweep (Graph does not keep expired subscriptions,
 * and sends no lifecycle event for them).
 */
import type { EmulatedClock } from './clock';

/** What a change notification item carries (concepts/change-notifications-delivery-webhooks.md). */
export interface ChangeNotificationItem {
  id: string;
  subscriptionId: string;
  subscriptionExpirationDateTime: string;
  changeType: string;
  resource: string;
  resourceData: {
    '@odata.type': string;
    '@odata.id': string;
    '@odata.etag': string;
    id: string;
  };
  clientState?: string;
  tenantId: string;
}

/** A subscription as Graph stores it, plus the emulator's delivery state. */
export interface StoredSubscription {
  id: string;
  /** As the client wrote it. */
  resource: string;
  applicationId: string;
  creatorId: string;
  /** As the client wrote it (comma-separated). */
  changeType: string;
  changeTypes: ReadonlySet<string>;
  clientState: string | null;
  notificationUrl: string;
  lifecycleNotificationUrl: string | null;
  expirationDateTime: Date;
  /** The watched mailbox's user id. */
  mailboxId: string;
  /** The watched folder's id; undefined for the whole mailbox. */
  folderId?: string;
  /** True after a reauthorizationRequired event until reauthorize or renewal: changes queue in {@link held}. */
  awaitingReauthorization: boolean;
  held: ChangeNotificationItem[];
  /** True while `dropNotifications` is on: changes are dropped, as for a throttled endpoint. */
  dropping: boolean;
}

/** Graph's date-time for subscriptions: seven fractional digits and `Z`, as Graph writes them. */
export function subscriptionDateTime(date: Date): string {
  return date.toISOString().replace(/Z$/, '0000Z');
}

/** The subscription resource as Graph returns it. */
export function subscriptionJson(sub: StoredSubscription): Record<string, unknown> {
  return {
    id: sub.id,
    resource: sub.resource,
    applicationId: sub.applicationId,
    changeType: sub.changeType,
    clientState: sub.clientState,
    notificationUrl: sub.notificationUrl,
    notificationQueryOptions: null,
    lifecycleNotificationUrl: sub.lifecycleNotificationUrl,
    expirationDateTime: subscriptionDateTime(sub.expirationDateTime),
    creatorId: sub.creatorId,
    includeResourceData: false,
    latestSupportedTlsVersion: 'v1_2',
    encryptionCertificate: null,
    encryptionCertificateId: null,
    notificationUrlAppId: null,
    notificationContentType: 'application/json',
  };
}

/** Every subscription, swept against the clock whenever it is read. */
export class SubscriptionStore {
  private readonly byId = new Map<string, StoredSubscription>();

  constructor(private readonly clock: EmulatedClock) {}

  /** Deletes every subscription whose expiry has passed on the emulated clock. */
  sweep(): void {
    const now = this.clock.now().getTime();
    for (const [id, sub] of this.byId) {
      if (sub.expirationDateTime.getTime() <= now) this.byId.delete(id);
    }
  }

  add(sub: StoredSubscription): void {
    this.byId.set(sub.id, sub);
  }

  /** The live subscription with `id`, or undefined. */
  get(id: string): StoredSubscription | undefined {
    this.sweep();
    return this.byId.get(id);
  }

  /** The live subscription with `id` when `appId` owns it (another app's subscription does not exist for it). */
  getOwned(id: string, appId: string | undefined): StoredSubscription | undefined {
    const sub = this.get(id);
    return sub && sub.applicationId === appId ? sub : undefined;
  }

  delete(id: string): boolean {
    return this.byId.delete(id);
  }

  /** Live subscriptions, oldest first. */
  all(): StoredSubscription[] {
    this.sweep();
    return [...this.byId.values()];
  }

  /** Live subscriptions on one mailbox, over all apps. */
  forMailbox(mailboxId: string): StoredSubscription[] {
    return this.all().filter((s) => s.mailboxId === mailboxId);
  }
}
