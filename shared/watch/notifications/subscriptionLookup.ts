/**
 * The webhook's view of the subscription index, built so that an anonymous POST full of made-up subscription ids costs
 * a few storage reads and no more. Graph may put notifications of several subscriptions in one POST, but every one of
 * them is ours; so a POST's unknown ids are looked up only until {@link MAX_UNKNOWN_PER_POST} of them turned out
 * unknown, and the rest are dropped unread (forged). Lookups run {@link LOOKUP_CONCURRENCY} at a time, and ids found
 * are remembered for {@link KNOWN_SUBSCRIPTION_TTL_MS}, so a genuine notification is usually judged without a read.
 *
 * Why 30 seconds: a subscription's index row goes when its mailbox is unwatched or the subscription replaced (a fresh
 * id and clientState each time), and Graph stops delivering for a deleted subscription; so a remembered entry can
 * only let through a caller who knows that subscription's clientState, for at most 30 s on each instance, and the
 * processor still drops notifications of a mailbox no longer watched. Long enough that a busy mailbox's notifications
 * cost one read per 30 s instead of one per POST.
 *
 * Ids found unknown are not remembered: a forger sends fresh ids every time, so that would save nothing, and a genuine
 * subscription's first notifications can arrive before its index row is written (Graph delivers as soon as it created
 * the subscription); remembering "unknown" would drop them for the whole TTL instead of only until the row exists.
 */
import type { SubscriptionIndexEntry } from '../watchStore';

/** How long an id found in the index is taken as known without reading it again. */
export const KNOWN_SUBSCRIPTION_TTL_MS = 30_000;
/** Index reads one POST runs at a time. */
export const LOOKUP_CONCURRENCY = 4;
/** Unknown ids one POST may cost a read each; its other ids not yet known are dropped unread. */
export const MAX_UNKNOWN_PER_POST = 8;
/** Known ids remembered at most (the oldest go first): far above the mailboxes one deployment watches. */
const MAX_REMEMBERED = 10_000;

/** Where the subscriptions live (the `WatchStore`). */
export interface SubscriptionIndex {
  lookupSubscription(subscriptionId: string): Promise<SubscriptionIndexEntry | undefined>;
}

/** What {@link SubscriptionLookup.resolve} found for a POST's ids. */
export interface ResolvedSubscriptions {
  known: Map<string, SubscriptionIndexEntry>;
  /** Read, and not ours. */
  unknown: Set<string>;
  /** Not read: the POST had already shown {@link MAX_UNKNOWN_PER_POST} unknown ids. */
  notLookedUp: Set<string>;
}

/** Looks subscription ids up for the webhook (see the module comment); one per process. */
export class SubscriptionLookup {
  readonly #remembered = new Map<string, { entry: SubscriptionIndexEntry; expiresAt: number }>();
  readonly #reading = new Map<string, Promise<SubscriptionIndexEntry | undefined>>();

  constructor(
    private readonly index: SubscriptionIndex,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Resolves the distinct `ids` in order: remembered ones at once, the others read until the bound. Rejects when a
   * read fails (storage trouble: the webhook then answers 5xx and Graph retries).
   */
  async resolve(ids: Iterable<string>): Promise<ResolvedSubscriptions> {
    const result: ResolvedSubscriptions = { known: new Map(), unknown: new Set(), notLookedUp: new Set() };
    const toRead: string[] = [];
    for (const id of new Set(ids)) {
      const entry = this.#recall(id);
      if (entry) result.known.set(id, entry);
      else toRead.push(id);
    }
    let next = 0;
    let inFlight = 0;
    // A read starts only while the unknown ids found plus the reads under way stay below the bound, so that however
    // those reads turn out, no POST costs more than MAX_UNKNOWN_PER_POST reads that find nothing.
    const worker = async (): Promise<void> => {
      while (next < toRead.length && result.unknown.size + inFlight < MAX_UNKNOWN_PER_POST) {
        const id = toRead[next++];
        inFlight++;
        let entry: SubscriptionIndexEntry | undefined;
        try {
          entry = await this.#read(id);
        } finally {
          inFlight--;
        }
        if (entry) result.known.set(id, entry);
        else result.unknown.add(id);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, toRead.length) }, worker));
    for (const id of toRead.slice(next)) result.notLookedUp.add(id);
    return result;
  }

  #recall(id: string): SubscriptionIndexEntry | undefined {
    const remembered = this.#remembered.get(id);
    if (!remembered) return undefined;
    if (remembered.expiresAt > this.now()) return remembered.entry;
    this.#remembered.delete(id);
    return undefined;
  }

  /** Reads `id`, sharing a read already under way for it (a burst of POSTs for one subscription costs one read). */
  #read(id: string): Promise<SubscriptionIndexEntry | undefined> {
    let reading = this.#reading.get(id);
    if (!reading) {
      reading = this.index.lookupSubscription(id).then(
        (entry) => {
          this.#reading.delete(id);
          if (entry) this.#remember(id, entry);
          return entry;
        },
        (err: unknown) => {
          this.#reading.delete(id);
          throw err;
        },
      );
      this.#reading.set(id, reading);
    }
    return reading;
  }

  #remember(id: string, entry: SubscriptionIndexEntry): void {
    this.#remembered.delete(id);
    if (this.#remembered.size >= MAX_REMEMBERED) {
      const oldest = this.#remembered.keys().next().value;
      if (oldest !== undefined) this.#remembered.delete(oldest);
    }
    this.#remembered.set(id, { entry, expiresAt: this.now() + KNOWN_SUBSCRIPTION_TTL_MS });
  }
}
