/**
 * Graph subscriptions on a mailbox's Inbox messages: create, renew (one or many through `$batch`), reauthorize and
 * delete. Expiry: ask for the documented maximum for messages (10,080 minutes); when Graph answers with its own
 * ("can only be N minutes in the future"), use N from then on, a minute short to absorb clock skew.
 */
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import { sendBatches, type BatchOptions, type BatchResponse } from '../graph/batch';

/** The longest lifetime Graph documents for Outlook message subscriptions, in minutes. */
export const DOCUMENTED_MAX_MINUTES = 10_080;
/** Graph raises shorter expirations to this many minutes. */
export const MIN_MINUTES = 45;
const SKEW_MS = 60_000;
const MAX_EXPIRY = /can only be (\d+) minutes in the future/i;

/** A subscription as Graph returns it (the fields the gateway reads). */
export interface GraphSubscription {
  id: string;
  expirationDateTime: string;
  resource?: string;
  notificationUrl?: string;
  lifecycleNotificationUrl?: string;
}

/** What a subscription for a mailbox needs. */
export interface SubscriptionRequest {
  mailbox: string;
  clientState: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string;
}

/** Result of renewing one subscription. */
export type RenewResult =
  | { kind: 'renewed'; expirationDateTime: string }
  | { kind: 'gone' }
  | { kind: 'failed'; status: number; error: string };

/** The Inbox messages resource of `mailbox`, as a subscription names it. */
export function inboxResource(mailbox: string): string {
  return `users/${mailbox}/mailFolders('inbox')/messages`;
}

/** The maximum Graph named in a "can only be N minutes in the future" error, or undefined. */
export function parseMaxMinutes(message: string | undefined): number | undefined {
  const match = MAX_EXPIRY.exec(message ?? '');
  return match ? Number(match[1]) : undefined;
}

/** Graph's subscriptions API for mailbox watching. */
export class GraphSubscriptions {
  private maxMinutes = DOCUMENTED_MAX_MINUTES;
  private learned = false;

  constructor(
    private readonly client: Client,
    private readonly batchOptions: BatchOptions = {},
  ) {}

  /** Creates a `created` subscription on the mailbox's Inbox messages with the longest expiry Graph accepts. */
  async create(request: SubscriptionRequest): Promise<GraphSubscription> {
    return this.withLongestExpiry(
      (expirationDateTime) =>
        this.client.api('/subscriptions').post({
          changeType: 'created',
          resource: inboxResource(request.mailbox),
          notificationUrl: request.notificationUrl,
          lifecycleNotificationUrl: request.lifecycleNotificationUrl,
          clientState: request.clientState,
          expirationDateTime,
          latestSupportedTlsVersion: 'v1_2',
        }) as Promise<GraphSubscription>,
    );
  }

  /** The subscription, or undefined when Graph no longer has it. */
  async get(id: string): Promise<GraphSubscription | undefined> {
    try {
      return (await this.client.api(`/subscriptions/${encodeURIComponent(id)}`).get()) as GraphSubscription;
    } catch (err) {
      if (err instanceof GraphError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * This app's subscriptions on the mailbox's Inbox messages that notify `notificationUrl` (every page). Another
   * deployment of the same app registration notifies another URL and is left alone.
   */
  async listFor(mailbox: string, notificationUrl: string): Promise<GraphSubscription[]> {
    const resource = inboxResource(mailbox).toLowerCase();
    const found: GraphSubscription[] = [];
    let url: string | undefined = '/subscriptions';
    while (url) {
      const page = (await this.client.api(url).get()) as { value?: GraphSubscription[]; '@odata.nextLink'?: string };
      for (const sub of page.value ?? []) {
        if (sub.resource?.toLowerCase() === resource && sub.notificationUrl === notificationUrl) found.push(sub);
      }
      url = page['@odata.nextLink'];
    }
    return found;
  }

  /** Renews one subscription to the longest expiry; undefined when Graph no longer has it. */
  async renew(id: string): Promise<GraphSubscription | undefined> {
    try {
      return await this.withLongestExpiry(
        (expirationDateTime) =>
          this.client
            .api(`/subscriptions/${encodeURIComponent(id)}`)
            .patch({ expirationDateTime }) as Promise<GraphSubscription>,
      );
    } catch (err) {
      if (err instanceof GraphError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * Renews many subscriptions through `$batch` (20 per request); throttled items are retried after their
   * `Retry-After`, and items refused for too long an expiry are retried with Graph's maximum.
   */
  async renewMany(
    ids: readonly string[],
    stats: { graphRequests: number } = { graphRequests: 0 },
  ): Promise<Map<string, RenewResult>> {
    const results = new Map<string, RenewResult>();
    let pending = [...ids];
    for (let round = 0; round < 2 && pending.length > 0; round++) {
      const expirationDateTime = this.expiry();
      const answers = await sendBatches(
        this.client,
        pending.map((id, i) => ({
          id: String(i),
          method: 'PATCH' as const,
          url: `/subscriptions/${encodeURIComponent(id)}`,
          body: { expirationDateTime },
        })),
        this.batchOptions,
        stats,
      );
      const retry: string[] = [];
      pending.forEach((id, i) => {
        const answer = answers.get(String(i));
        const max = answer?.status === 400 ? parseMaxMinutes(errorOf(answer).message) : undefined;
        if (max !== undefined && round === 0) {
          this.learn(max);
          retry.push(id);
        } else results.set(id, renewResult(answer));
      });
      pending = retry;
    }
    return results;
  }

  /** Answers a reauthorization challenge. */
  async reauthorize(id: string): Promise<void> {
    await this.client.api(`/subscriptions/${encodeURIComponent(id)}/reauthorize`).post({});
  }

  /** Deletes the subscription; a subscription Graph no longer has counts as deleted. */
  async delete(id: string): Promise<void> {
    try {
      await this.client.api(`/subscriptions/${encodeURIComponent(id)}`).delete();
    } catch (err) {
      if (err instanceof GraphError && err.statusCode === 404) return;
      throw err;
    }
  }

  private expiry(): string {
    const skew = this.learned ? SKEW_MS : 0;
    return new Date(Date.now() + this.maxMinutes * 60_000 - skew).toISOString();
  }

  /** Adopts Graph's maximum (the smallest it has named, when concurrent calls learn at once). */
  private learn(max: number): void {
    if (!this.learned || max < this.maxMinutes) this.maxMinutes = Math.max(MIN_MINUTES, max);
    this.learned = true;
  }

  private async withLongestExpiry(call: (expirationDateTime: string) => Promise<GraphSubscription>) {
    const sent = this.expiry();
    try {
      return await call(sent);
    } catch (err) {
      const max = err instanceof GraphError && err.statusCode === 400 ? parseMaxMinutes(err.message) : undefined;
      if (max === undefined) throw err;
      this.learn(max);
      const shorter = this.expiry();
      // Retry once, and only with less than was refused (another call may have learned the maximum meanwhile).
      if (Date.parse(shorter) >= Date.parse(sent)) throw err;
      return call(shorter);
    }
  }
}

function errorOf(answer: BatchResponse): { code?: string; message?: string } {
  const body = answer.body as { error?: { code?: string; message?: string } } | undefined;
  return body?.error ?? {};
}

function renewResult(answer: BatchResponse | undefined): RenewResult {
  if (!answer) return { kind: 'failed', status: 0, error: 'no answer in the batch response' };
  if (answer.status === 200) {
    const body = answer.body as Partial<GraphSubscription> | undefined;
    if (body?.expirationDateTime) return { kind: 'renewed', expirationDateTime: body.expirationDateTime };
    return { kind: 'failed', status: 200, error: 'the renewal answer has no expirationDateTime' };
  }
  if (answer.status === 404) return { kind: 'gone' };
  const error = errorOf(answer);
  return {
    kind: 'failed',
    status: answer.status,
    error: `${answer.status} ${error.code ?? ''}: ${error.message ?? ''}`,
  };
}
