/**
 * How many times the Functions host delivers a queue message before it gives up on it, and which delivery is the
 * last: every queue trigger of the app decides "retry or settle for good" from here, so that a message is never
 * retried past the point where the host would move it to `<queue>-poison` without its reason.
 */
import type { InvocationContext } from '@azure/functions';

/** host.json's `extensions.queues.maxDequeueCount` (a test holds them equal): tries before a message is poison. */
export const MAX_DEQUEUE_COUNT = 5;

/** Which delivery of its message this invocation is. */
export interface QueueTry {
  /** 1 for the first delivery; the host's `dequeueCount`. */
  tries: number;
  /** True when the host will not deliver the message again after this try fails. */
  last: boolean;
}

/** This invocation's try, from the host's trigger metadata (1 when the host gave none). */
export function queueTry(context: InvocationContext): QueueTry {
  const tries = Number(context.triggerMetadata?.dequeueCount ?? 1);
  return { tries, last: tries >= MAX_DEQUEUE_COUNT };
}
