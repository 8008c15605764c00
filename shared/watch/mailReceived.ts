/**
 * The `mail.received` event for a message in a watched Inbox, built from the message's metadata. The metadata is
 * read with the least-privileged permission Graph documents for reading messages and their delta,
 * `Mail.ReadBasic.All` (application): it excludes body, bodyPreview, uniqueBody and attachments, which the event
 * does not carry anyway.
 */
import type { Message, Recipient } from '@microsoft/microsoft-graph-types';
import { mailboxEvent, type CloudEvent, type MailReceivedData } from '../events/cloudEvent';

/** The CloudEvents type of a new mail. */
const MAIL_RECEIVED = 'mail.received';
/** The message properties the event needs (`$select`). */
export const MESSAGE_SELECT = 'id,internetMessageId,subject,from,toRecipients,receivedDateTime,hasAttachments';
/** Recipients listed in an event at most; `toCount` gives the real number (a queue message holds 64 KiB). */
const MAX_LISTED_RECIPIENTS = 100;

/** The event id the gateway uses for `messageId` in `mailbox` (to check for duplicates before reading Graph). */
export function mailReceivedIdentity(mailbox: string, messageId: string): Pick<CloudEvent, 'source' | 'id'> {
  const { source, id } = mailboxEvent(MAIL_RECEIVED, mailbox, messageId, null, new Date(0));
  return { source, id };
}

/** The `mail.received` event for `message` (which must carry the {@link MESSAGE_SELECT} properties). */
export function mailReceivedEvent(
  mailbox: string,
  message: Message & { id: string },
): CloudEvent<MailReceivedData & { toCount: number }> {
  const to = (message.toRecipients ?? []).map(address).filter((r) => r !== null);
  const data = {
    mailbox: mailbox.toLowerCase(),
    messageId: message.id,
    internetMessageId: message.internetMessageId ?? null,
    subject: message.subject ?? null,
    from: message.from ? address(message.from) : null,
    to: to.slice(0, MAX_LISTED_RECIPIENTS),
    toCount: to.length,
    receivedDateTime: message.receivedDateTime ?? null,
    hasAttachments: message.hasAttachments ?? false,
  };
  const time = message.receivedDateTime ? new Date(message.receivedDateTime) : new Date();
  return mailboxEvent(MAIL_RECEIVED, mailbox, message.id, data, time);
}

function address(recipient: Recipient): { address: string; name?: string } | null {
  const email = recipient.emailAddress;
  if (!email?.address) return null;
  return email.name ? { address: email.address, name: email.name } : { address: email.address };
}
