/**
 * What the watch tests share: a reader of the `mail-events` queue (as a downstream service would read it), an HTTPS
 * receiver standing in for the downstream events webhook, and polling until something happened.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { QueueClient } from '@azure/storage-queue';
import type { CloudEvent } from '../../shared/events/cloudEvent';
import { readBody, startHttpsServer, type RunningServer } from '../emulators/httpServer';
import { testCa } from './testEnv';

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Drains a queue of base64 JSON messages (the Functions default encoding) and keeps what it read. */
export class QueueReader<T = CloudEvent> {
  readonly seen: T[] = [];
  readonly raw: string[] = [];
  private readonly queue: QueueClient;

  constructor(connectionString: string, queueName: string) {
    this.queue = new QueueClient(connectionString, queueName);
  }

  /** Receives and deletes everything currently in the queue; returns all messages read so far. */
  async drain(): Promise<T[]> {
    await this.queue.createIfNotExists();
    for (;;) {
      const { receivedMessageItems } = await this.queue.receiveMessages({ numberOfMessages: 32 });
      if (receivedMessageItems.length === 0) return this.seen;
      for (const item of receivedMessageItems) {
        this.raw.push(item.messageText);
        this.seen.push(JSON.parse(Buffer.from(item.messageText, 'base64').toString('utf8')) as T);
        await this.queue.deleteMessage(item.messageId, item.popReceipt);
      }
    }
  }
}

/** One request the downstream webhook received. */
export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTPS endpoint (test CA) that records what it receives and can fail on demand. */
export class WebhookReceiver {
  private constructor(
    private readonly server: RunningServer,
    /** What arrived, oldest first. */
    readonly received: ReceivedWebhook[],
    /** Statuses to answer the next requests with (then 204); e.g. push(503, 503). */
    readonly failNext: number[],
  ) {}

  /** Origin + path to configure as EVENTS_WEBHOOK_URL. */
  get url(): string {
    return `${this.server.url}/events`;
  }

  static async start(): Promise<WebhookReceiver> {
    const received: ReceivedWebhook[] = [];
    const failNext: number[] = [];
    const server = await startHttpsServer(testCa(), async (req, res) => {
      // A content event carries a body of up to 1 MB, which its JSON escapes can make several times larger.
      const body = (await readBody(req, 8 * 1024 * 1024)).toString('utf8');
      const status = failNext.shift();
      if (status !== undefined) {
        res.writeHead(status).end();
        return;
      }
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
    return new WebhookReceiver(server, received, failNext);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
