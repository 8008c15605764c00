/**
 * The messages of the `mailbox-poll` queue: one per mailbox folder whose delta read is due (a poll, or under push a
 * reconciliation), written by the `pollMailboxes` timer and read by `pollMailbox`. Small on purpose: the record
 * holds the rest, and is read again when the message is processed.
 */
import { z } from 'zod';
import { queueMessageContract } from '../../platform/queues/queueMessages';
import { DEFAULT_FOLDER } from '../watchFolders';

/** The queue `pollMailboxes` fills and `pollMailbox` drains. */
export const MAILBOX_POLL_QUEUE = 'mailbox-poll';

/** A mailbox folder due for a delta read. */
export const mailboxPollMessage = queueMessageContract(
  z.object({
    mailbox: z.string().min(3),
    folder: z.string().min(1).default(DEFAULT_FOLDER),
  }),
);

/** A mailbox folder due for a delta read. */
export type MailboxPollMessage = z.infer<typeof mailboxPollMessage.schema>;
