/**
 * Graph subscriptions on a mailbox folder's messages: create, renew (one or many through `$batch`), reauthorize and
 * delete. Expiry: every create and renewal asks for the longest lifetime Graph grants for messages: documented as 10,080
 * minutes, but live tenants refuse that and name 10,070 (GRAPH-FACTS), so the gateway asks for 10,070 a minute short
 * and pays no refusal on each call. When Graph answers with a shorter one ("can only be N minutes in the future"),
 * that call is repeated with N, a minute short to absorb clock skew. N is not remembered: it may be a passing or per-subscription limit (1,440 minutes for one with
 * resource data), and asking for it forever would shorten every later subscription (and multiply renewals) although
 * Graph allows the maximum again.
 */
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import { DEFAULT_FOLDER, folderMessagesPath } from '../watchFolders';
import { MAX_BATCH_ITEMS, sendBatches, type BatchOptions, type BatchResponse } from '../../graph/batch';

/**
 * The longest lifetime, in minutes, live tenants grant a subscription on Outlook messages (documented: 10,080) ("can only be 10070 minutes in the future"): asking for the documented
 * maximum would cost every create and renewal a refused call first.
 */
const GRANTED_MAX_MINUTES = 10_070;
/** Graph raises shorter expirations to this many minutes. */
const MIN_MINUTES = 45;
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
  /** A well-known folder name or a folder id (absent: the Inbox). */
  folder?: string;
  clientState: string;
  notificationUrl: string;
  lifecycleNotificationUrl: string;
}

/** Result of renewing one subscription. */
export type RenewResult =
  | { kind: 'renewed'; expirationDateTime: string }
  | { kind: 'gone' }
  | { kind: 'failed'; status: number; error: string };

/** The messages resource of `mailbox`'s `folder`, as a subscription names it. */
function folderResource(mailbox: string, folder: string): string {
  return `users/${mailbox}/${folderMessagesPath(folder)}`;
}

/** What `folderResource` built: the mailbox and folder a subscription's resource names, or undefined. */
export function parseFolderResource(resource: string | undefined): { mailbox: string; folder: string } | undefined {
  const match = /^\/?users\/([^/]+)\/mailFolders\('([^']+)'\)\/messages$/i.exec(resource ?? '');
  return match ? { mailbox: match[1].toLowerCase(), folder: match[2] } : undefined;
}

/**
 * True when Graph refused a subscription because its validation request to the webhook failed (unreachable, slow,
 * or a wrong answer): GRAPH-FACTS, "Validation failure of either URL → 400".
 */
export function isWebhookValidationFailure(err: unknown): boolean {
  return err instanceof GraphError && err.statusCode === 400 && /validation/i.test(err.message);
}

/** The maximum Graph named in a "can only be N minutes in the future" error, or undefined. */
export function parseMaxMinutes(message: string | undefined): number | undefined {
  const match = MAX_EXPIRY.exec(message ?? '');
  return match ? Number(match[1]) : undefined;
}

/** Graph's subscriptions API for mailbox watching. */
export class GraphSubscriptions {
  constructor(
    private readonly client: Client,
    private readonly batchOptions: BatchOptions = {},
    /** The clock expiries are computed from (tests pass a simulated one). */
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates a `created` subscription on the mailbox folder's messages with the longest expiry Graph accepts. */
  async create(request: SubscriptionRequest): Promise<GraphSubscription> {
    return this.withLongestExpiry(
      (expirationDateTime) =>
        this.client.api('/subscriptions').post({
          changeType: 'created',
          resource: folderResource(request.mailbox, request.folder ?? DEFAULT_FOLDER),
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
   * This app's subscriptions on the mailbox folder's messages that notify `notificationUrl` (every page). Another
   * deployment of the same app registration notifies another URL and is left alone.
   */
  async listFor(mailbox: string, folder: string, notificationUrl: string): Promise<GraphSubscription[]> {
    const resource = folderResource(mailbox, folder).toLowerCase();
    return (await this.listNotifying(notificationUrl)).filter((sub) => sub.resource?.toLowerCase() === resource);
  }

  /** This app's subscriptions that notify `notificationUrl` (every page): this deployment's, whatever they watch. */
  async listNotifying(notificationUrl: string): Promise<GraphSubscription[]> {
    const found: GraphSubscription[] = [];
    let url: string | undefined = '/subscriptions';
    while (url) {
      const page = (await this.client.api(url).get()) as { value?: GraphSubscription[]; '@odata.nextLink'?: string };
      for (const sub of page.value ?? []) if (sub.notificationUrl === notificationUrl) found.push(sub);
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
   * `Retry-After`, and items refused for too long an expiry are retried with Graph's maximum. The first batch goes
   * alone, asking for the longest lifetime Graph grants: when Graph names a shorter one there, the rest of this run asks for
   * that (one extra request per run, not one per batch); the next run asks for the longest again.
   */
  async renewMany(
    ids: readonly string[],
    stats: { graphRequests: number } = { graphRequests: 0 },
  ): Promise<Map<string, RenewResult>> {
    const results = new Map<string, RenewResult>();
    const retry: Array<{ id: string; expirationDateTime: string }> = [];
    let ask = this.expiry(GRANTED_MAX_MINUTES, true);
    for (const chunk of [ids.slice(0, MAX_BATCH_ITEMS), ids.slice(MAX_BATCH_ITEMS)]) {
      const answers = await this.patchAll(
        chunk.map((id) => ({ id, expirationDateTime: ask })),
        stats,
      );
      let named: number | undefined;
      chunk.forEach((id, i) => {
        const answer = answers[i];
        const max = answer?.status === 400 ? parseMaxMinutes(errorOf(answer).message) : undefined;
        if (max === undefined) results.set(id, renewResult(answer));
        else {
          retry.push({ id, expirationDateTime: this.expiry(max, true) });
          named = Math.min(named ?? max, max);
        }
      });
      if (named !== undefined && Date.parse(this.expiry(named, true)) < Date.parse(ask)) ask = this.expiry(named, true);
    }
    const answers = await this.patchAll(retry, stats);
    retry.forEach((item, i) => results.set(item.id, renewResult(answers[i])));
    return results;
  }

  /** PATCHes each item's expiry through `$batch`; the answers in the items' order. */
  private async patchAll(
    items: ReadonlyArray<{ id: string; expirationDateTime: string }>,
    stats: { graphRequests: number },
  ): Promise<Array<BatchResponse | undefined>> {
    if (items.length === 0) return [];
    const answers = await sendBatches(
      this.client,
      items.map((item, i) => ({
        id: String(i),
        method: 'PATCH' as const,
        url: `/subscriptions/${encodeURIComponent(item.id)}`,
        body: { expirationDateTime: item.expirationDateTime },
      })),
      this.batchOptions,
      stats,
    );
    return items.map((_, i) => answers.get(String(i)));
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

  /** An expiry `minutes` from now; a maximum Graph named is asked a minute short, for clock skew. */
  private expiry(minutes: number, named: boolean): string {
    return new Date(this.now() + Math.max(MIN_MINUTES, minutes) * 60_000 - (named ? SKEW_MS : 0)).toISOString();
  }

  private async withLongestExpiry(call: (expirationDateTime: string) => Promise<GraphSubscription>) {
    const sent = this.expiry(GRANTED_MAX_MINUTES, true);
    try {
      return await call(sent);
    } catch (err) {
      const max = err instanceof GraphError && err.statusCode === 400 ? parseMaxMinutes(err.message) : undefined;
      if (max === undefined) throw err;
      const shorter = this.expiry(max, true);
      // Retry once, and only with less than was refused.
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
