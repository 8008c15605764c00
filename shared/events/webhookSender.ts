/**
 * POSTs events to the downstream webhook (`EVENTS_WEBHOOK_URL`), signed per the Standard Webhooks spec with the
 * `standardwebhooks` package, retrying transient failures with exponential backoff (and `Retry-After`). A failure
 * after the last try is thrown, so the queue message that carried the work is retried later.
 */
import { Webhook } from 'standardwebhooks';
import type { CloudEvent } from './cloudEvent';

/** How hard to try within one call. */
export interface WebhookRetryPolicy {
  /** Tries in all (default 4). */
  attempts: number;
  /** First backoff in milliseconds, doubled each retry, with ±25 % jitter (default 1,000). */
  baseDelayMs: number;
  /** Longest wait a `Retry-After` may ask for before giving up this call (default 30,000). */
  maxDelayMs: number;
  /** Time allowed for one POST (default 10,000). */
  timeoutMs: number;
}

/** The default retry policy: 4 tries over about 7 s. */
const DEFAULT_WEBHOOK_RETRY: WebhookRetryPolicy = {
  attempts: 4,
  baseDelayMs: 1_000,
  maxDelayMs: 30_000,
  timeoutMs: 10_000,
};

/** Thrown when the webhook did not take the event; `permanent` when retrying cannot help (4xx other than 408/429). */
export class WebhookDeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'WebhookDeliveryError';
  }
}

/** Sends signed events to one URL. */
export class WebhookSender {
  private readonly signer: Webhook;

  constructor(
    readonly url: string,
    signingSecret: string,
    private readonly retry: WebhookRetryPolicy = DEFAULT_WEBHOOK_RETRY,
  ) {
    this.signer = new Webhook(signingSecret);
  }

  /** The Standard Webhooks headers for `payload` sent as message `id` at `timestamp`. */
  headers(id: string, timestamp: Date, payload: string): Record<string, string> {
    return {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'webhook-signature': this.signer.sign(id, timestamp, payload),
    };
  }

  /** Delivers `event`, retrying transient failures; throws {@link WebhookDeliveryError} when it could not. */
  async deliver(event: CloudEvent): Promise<void> {
    const payload = JSON.stringify(event);
    let lastProblem = '';
    for (let attempt = 1; attempt <= this.retry.attempts; attempt++) {
      // Each try is signed afresh: receivers reject stale timestamps.
      const headers = this.headers(event.id, new Date(), payload);
      let wait = this.backoff(attempt);
      try {
        const response = await fetch(this.url, {
          method: 'POST',
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.retry.timeoutMs),
        });
        await response.body?.cancel();
        if (response.ok) return;
        lastProblem = `answered ${response.status}`;
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          throw new WebhookDeliveryError(`The events webhook ${lastProblem}`, true);
        }
        const asked = Number(response.headers.get('retry-after'));
        if (Number.isFinite(asked) && asked > 0) wait = asked * 1000;
      } catch (err) {
        if (err instanceof WebhookDeliveryError) throw err;
        lastProblem = `could not be reached: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (attempt === this.retry.attempts || wait > this.retry.maxDelayMs) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    throw new WebhookDeliveryError(`The events webhook ${lastProblem} (after retries)`, false);
  }

  private backoff(attempt: number): number {
    const base = this.retry.baseDelayMs * 2 ** (attempt - 1);
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }
}
