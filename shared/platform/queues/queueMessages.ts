/**
 * Queue message contracts. Each queue the gateway writes has one contract, declared next to its concern: the zod
 * schema of the message (a queue trigger validates what the Functions host hands it with the same schema), and the
 * encoding the message is written in: base64 of its UTF-8 JSON, which is what the host's queue trigger decodes by
 * default. Messages already queued must stay readable by the next version, so a schema only ever gains optional
 * fields.
 */
import type { z } from 'zod';

/** One queue's message: its schema, and how a message is written. */
export interface QueueMessageContract<S extends z.ZodType> {
  /** What a message holds; what a trigger checks the decoded message against. */
  readonly schema: S;
  /** The text to write to the queue for `message`. */
  encode(message: z.output<S>): string;
}

/**
 * The contract of messages shaped by `schema`. `encode` writes the message as given (the JSON of exactly its
 * fields, in its order): a writer's bug must not become a failed send to the queue, and a reader validates anyway.
 */
export function queueMessageContract<S extends z.ZodType>(schema: S): QueueMessageContract<S> {
  return { schema, encode: encodeQueueMessage };
}

/** `value` as a queue message: base64 of its UTF-8 JSON. */
function encodeQueueMessage(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}
