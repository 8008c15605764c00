/**
 * The messages of the `graph-notifications` queue (written by the webhook receiver once a notification passed its
 * checks, read by `processNotifications`) and of its poison queue (written by the processor for a message that can
 * never succeed; an operator reads it). Neither carries the clientState: only the subscription id and the mailbox.
 */
import { z } from 'zod';
import { queueMessageContract } from '../../platform/queues/queueMessages';
import { DEFAULT_FOLDER } from '../watchFolders';

/** A notification as queued for `processNotifications`: a change to a message, or a lifecycle event. */
export const queuedNotification = queueMessageContract(
  z.discriminatedUnion('kind', [
    z.object({
      kind: z.literal('change'),
      subscriptionId: z.string().min(1),
      mailbox: z.string().min(3),
      /** The watched folder; absent in messages queued before folders (the Inbox). */
      folder: z.string().min(1).default(DEFAULT_FOLDER),
      messageId: z.string().min(1),
      changeType: z.string(),
    }),
    z.object({
      kind: z.literal('lifecycle'),
      subscriptionId: z.string().min(1),
      mailbox: z.string().min(3),
      folder: z.string().min(1).default(DEFAULT_FOLDER),
      lifecycleEvent: z.string(),
    }),
  ]),
);

/** A notification as queued for `processNotifications`. */
export type QueuedNotification = z.infer<typeof queuedNotification.schema>;

/** A poisoned notification: why, when, and the message as the host delivered it (which may be no notification). */
export const poisonedNotification = queueMessageContract(
  z.object({
    reason: z.string(),
    /** ISO 8601. */
    failedAt: z.string(),
    message: z.unknown(),
  }),
);
