/**
 * Storage-queue triggers and outputs, behaving like the Functions Storage extension (5.x): poll with back-off,
 * fetch `batchSize` messages at a time and the next batch once those in flight are down to `newBatchThreshold` (so at
 * most the two together run at once, and a busy queue costs one receive per batch), decode base64 message text, delete on success, release for retry on
 * failure, and move a message to `{queue}-poison` once it has failed `maxDequeueCount` times.
 */
import type { DequeuedMessageItem, QueueClient } from '@azure/storage-queue';
import { QueueServiceClient } from '@azure/storage-queue';
import type { InvocationContext } from '@azure/functions';
import { describeError, type HostLogger, type InvocationOutcome } from './invoker';
import type { QueueSettings } from './projectConfig';
import { RETURN_BINDING, type FunctionEntry } from './registry';

/**
 * How long a received message stays invisible while its invocation runs (the extension uses 10 minutes). The
 * outbox benchmark shortens it (`SANDBOX_QUEUE_PROCESSING_VISIBILITY_SECONDS`) so that the messages a killed host
 * held come back within the run.
 */
const PROCESSING_VISIBILITY_SECONDS = Number(process.env.SANDBOX_QUEUE_PROCESSING_VISIBILITY_SECONDS) || 600;

/** Connection strings and clients per app setting, plus one-time queue creation. */
export class QueueStorage {
  readonly #env: NodeJS.ProcessEnv;
  readonly #services = new Map<string, QueueServiceClient>();
  readonly #created = new Map<string, Promise<void>>();

  constructor(env: NodeJS.ProcessEnv) {
    this.#env = env;
  }

  /**
   * A client for `queueName` on the account named by the `connection` app setting. Like the Functions host, the
   * setting is looked up as given and then with the `AzureWebJobs` prefix. Throws when neither is set.
   */
  queue(connection: string, queueName: string): QueueClient {
    let service = this.#services.get(connection);
    if (!service) {
      const value = this.#env[connection] ?? this.#env[`AzureWebJobs${connection}`];
      if (value === undefined || value.trim() === '') {
        const identityHint = Object.keys(this.#env).some((k) => k.startsWith(`${connection}__`))
          ? ' (identity-based connections are not supported locally; set a connection string)'
          : '';
        throw new Error(`App setting "${connection}" (a storage connection string) is not set${identityHint}`);
      }
      try {
        service = QueueServiceClient.fromConnectionString(value.trim(), { retryOptions: { maxTries: 2 } });
      } catch (err) {
        // The message of a parse failure can echo the connection string, which holds the account key.
        throw new Error(`App setting "${connection}" is not a valid storage connection string`, { cause: err });
      }
      this.#services.set(connection, service);
    }
    return service.getQueueClient(queueName);
  }

  /**
   * Creates the queue once per client URL; a failure (or abort) is retried on the next call. The signal lets a
   * stopping listener skip the SDK's retry delays when storage is unreachable.
   */
  async ensureExists(client: QueueClient, abortSignal?: AbortSignal): Promise<void> {
    let pending = this.#created.get(client.url);
    if (!pending) {
      pending = client.createIfNotExists({ abortSignal }).then(() => undefined);
      this.#created.set(client.url, pending);
      pending.catch(() => this.#created.delete(client.url));
    }
    await pending;
  }
}

/** Encodes message text as the extension writes it. */
export function encodeQueueMessage(text: string, encoding: QueueSettings['messageEncoding']): string {
  return encoding === 'base64' ? Buffer.from(text, 'utf8').toString('base64') : text;
}

/** Decodes message text as the extension reads it; undefined when base64 is expected but the text is not base64. */
export function decodeQueueMessage(text: string, encoding: QueueSettings['messageEncoding']): string | undefined {
  if (encoding === 'none') return text;
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64').toString('utf8');
}

/** The trigger input: JSON objects and arrays arrive parsed, anything else as the string (as the host sends them). */
export function queueTriggerInput(text: string): unknown {
  const trimmed = text.trim();
  if ((trimmed.startsWith('{') && trimmed.endsWith('}')) || (trimmed.startsWith('[') && trimmed.endsWith(']'))) {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

/** Writes a function's queue output bindings (extra outputs, or the return value when bound to `$return`). */
export async function writeQueueOutputs(
  storage: QueueStorage,
  encoding: QueueSettings['messageEncoding'],
  entry: FunctionEntry,
  context: InvocationContext,
  result: unknown,
): Promise<void> {
  for (const output of entry.queueOutputs) {
    const value = output.bindingName === RETURN_BINDING ? result : context.extraOutputs.get(output.bindingName);
    if (value === undefined || value === null) continue;
    const client = storage.queue(output.connection, output.queueName);
    await storage.ensureExists(client);
    for (const item of Array.isArray(value) ? (value as unknown[]) : [value]) {
      await client.sendMessage(serializeOutput(item, encoding));
    }
  }
}

function serializeOutput(item: unknown, encoding: QueueSettings['messageEncoding']): string {
  if (ArrayBuffer.isView(item)) {
    const bytes = Buffer.from(item.buffer, item.byteOffset, item.byteLength);
    return encoding === 'base64' ? bytes.toString('base64') : bytes.toString('utf8');
  }
  return encodeQueueMessage(typeof item === 'string' ? item : JSON.stringify(item), encoding);
}

/** Dependencies of a `QueueListener`. */
export interface QueueListenerOptions {
  entry: FunctionEntry;
  queueName: string;
  connection: string;
  storage: QueueStorage;
  settings: QueueSettings;
  invoke: (input: unknown, triggerMetadata: Record<string, unknown>) => Promise<InvocationOutcome>;
  logger: HostLogger;
  /** First back-off delay after an empty poll. */
  minPollIntervalMs: number;
  /** Back-off ceiling. */
  maxPollIntervalMs: number;
}

/** Polls one queue for one function. */
export class QueueListener {
  readonly #options: QueueListenerOptions;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  #loop: Promise<void> | undefined;

  constructor(options: QueueListenerOptions) {
    this.#options = options;
  }

  /** Starts polling in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops polling and waits for messages already being processed. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    await Promise.all([...this.#inFlight]);
  }

  async #run(): Promise<void> {
    const { storage, settings, logger, minPollIntervalMs, maxPollIntervalMs } = this.#options;
    const name = this.#options.entry.info.name;
    const signal = this.#abort.signal;
    const queue = storage.queue(this.#options.connection, this.#options.queueName);
    let delay = 0;
    let failing = false;
    while (!signal.aborted) {
      // As the extension does: a new batch only once the messages in flight are down to newBatchThreshold.
      if (this.#inFlight.size > settings.newBatchThreshold) {
        await Promise.race(this.#inFlight);
        continue;
      }
      let messages: DequeuedMessageItem[];
      try {
        await storage.ensureExists(queue, signal);
        const response = await queue.receiveMessages({
          numberOfMessages: settings.batchSize,
          visibilityTimeout: PROCESSING_VISIBILITY_SECONDS,
          abortSignal: signal,
        });
        messages = response.receivedMessageItems;
        if (failing) logger('information', `[${name}] Queue "${this.#options.queueName}" is reachable again`);
        failing = false;
      } catch (err) {
        if (signal.aborted) break;
        // One warning per outage; the retries that follow are debug noise.
        logger(
          failing ? 'debug' : 'warning',
          `[${name}] Polling queue "${this.#options.queueName}" failed: ${shortError(err)}`,
        );
        failing = true;
        delay = maxPollIntervalMs;
        await sleep(delay, signal);
        continue;
      }
      if (messages.length === 0) {
        delay = delay === 0 ? minPollIntervalMs : Math.min(maxPollIntervalMs, delay * 2);
        await sleep(delay, signal);
        continue;
      }
      delay = 0;
      for (const message of messages) {
        const processing = this.#process(queue, message).finally(() => this.#inFlight.delete(processing));
        this.#inFlight.add(processing);
      }
    }
  }

  /** Never rejects: every outcome ends in delete, release or poison. */
  async #process(queue: QueueClient, message: DequeuedMessageItem): Promise<void> {
    const { settings, logger } = this.#options;
    const name = this.#options.entry.info.name;
    try {
      // A message already past the limit (e.g. the host stopped mid-invocation) goes straight to poison.
      if (message.dequeueCount > settings.maxDequeueCount) {
        await this.#poison(queue, message, `its dequeue count ${message.dequeueCount} exceeds MaxDequeueCount`);
        return;
      }
      const text = decodeQueueMessage(message.messageText, settings.messageEncoding);
      if (text === undefined) {
        await this.#poison(queue, message, 'its text is not valid base64 (extensions.queues.messageEncoding)');
        return;
      }
      const triggerMetadata: Record<string, unknown> = {
        id: message.messageId,
        queueTrigger: text,
        dequeueCount: message.dequeueCount,
        insertionTime: message.insertedOn.toISOString(),
        expirationTime: message.expiresOn.toISOString(),
        nextVisibleTime: message.nextVisibleOn.toISOString(),
        popReceipt: message.popReceipt,
      };
      let succeeded = false;
      try {
        await this.#options.invoke(queueTriggerInput(text), triggerMetadata);
        succeeded = true;
      } catch {
        // The invoker already logged the failure.
      }
      if (succeeded) {
        await queue.deleteMessage(message.messageId, message.popReceipt);
      } else if (message.dequeueCount >= settings.maxDequeueCount) {
        await this.#poison(queue, message, `it reached MaxDequeueCount of ${settings.maxDequeueCount}`);
      } else {
        await queue.updateMessage(
          message.messageId,
          message.popReceipt,
          undefined,
          Math.ceil(settings.visibilityTimeoutMs / 1000),
        );
      }
    } catch (err) {
      logger('warning', `[${name}] Queue message ${message.messageId}: ${shortError(err)}`);
    }
  }

  async #poison(queue: QueueClient, message: DequeuedMessageItem, why: string): Promise<void> {
    const poisonName = `${this.#options.queueName}-poison`;
    this.#options.logger(
      'warning',
      `[${this.#options.entry.info.name}] Moving message ${message.messageId} to queue "${poisonName}" because ${why}`,
    );
    const poison = this.#options.storage.queue(this.#options.connection, poisonName);
    await this.#options.storage.ensureExists(poison);
    // The text is copied as stored, i.e. still encoded, as the extension does.
    await poison.sendMessage(message.messageText);
    await queue.deleteMessage(message.messageId, message.popReceipt);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The first line of an error: storage SDK errors carry multi-line bodies that would flood the console. */
function shortError(err: unknown): string {
  return describeError(err).split('\n')[0];
}
