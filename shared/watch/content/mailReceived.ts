/**
 * The `mail.received` event for a message in a watched folder, built from the message's metadata. The metadata is
 * read with the least-privileged permission Graph documents for reading messages and their delta,
 * `Mail.ReadBasic.All` (application): it excludes body, bodyPreview, uniqueBody and attachments, which the event
 * carries only for a mailbox watched with content (then read with Mail.Read, see messageContent.ts).
 *
 * Every event carries `links`: the gateway API paths of the message, its MIME and each listed attachment. They are
 * paths relative to the gateway's origin, not absolute URLs: the origin a consumer calls the API on (an internal
 * host name, an API gateway, a private endpoint) is often not WEBHOOK_BASE_URL (the origin Graph calls back), and an
 * event stored in a queue or a consumer's database must not name a host name that may change.
 */
import type { Message, Recipient } from '@microsoft/microsoft-graph-types';
import {
  mailboxEvent,
  type CloudEvent,
  type MailAttachment,
  type MailBody,
  type MailLinks,
  type MailReceivedData,
} from '../../events/cloudEvent';
import { cutUtf8 } from './utf8Cut';
import { DEFAULT_FOLDER } from '../watchFolders';

/** The CloudEvents type of a new mail. */
const MAIL_RECEIVED = 'mail.received';
/** The message properties the event needs (`$select`). */
export const MESSAGE_SELECT = 'id,internetMessageId,subject,from,toRecipients,receivedDateTime,hasAttachments';
/** Recipients listed in an event at most; `toCount` gives the real number (a queue message holds 64 KiB). */
const MAX_LISTED_RECIPIENTS = 100;

/** The data of a `mail.received` event as the gateway builds it. */
export type MailReceived = MailReceivedData & { toCount: number };

/** What a mailbox watched with content adds to its events. */
export interface MailContent {
  /** Undefined: not asked for; null: asked for, but Graph gave none (a token without Mail.Read). */
  body?: MailBody | null;
  attachments?: MailAttachment[];
}

/** The event id the gateway uses for `messageId` in `mailbox` (to check for duplicates before reading Graph). */
export function mailReceivedIdentity(mailbox: string, messageId: string): Pick<CloudEvent, 'source' | 'id'> {
  const { source, id } = mailboxEvent(MAIL_RECEIVED, mailbox, messageId, null, new Date(0));
  return { source, id };
}

/** The `mail.received` event for `message` (which must carry the {@link MESSAGE_SELECT} properties). */
export function mailReceivedEvent(
  mailbox: string,
  message: Message & { id: string },
  content: MailContent = {},
  folder: string = DEFAULT_FOLDER,
): CloudEvent<MailReceived> {
  const to = (message.toRecipients ?? []).map(address).filter((r) => r !== null);
  const data: MailReceived = {
    mailbox: mailbox.toLowerCase(),
    folder,
    messageId: message.id,
    internetMessageId: message.internetMessageId ?? null,
    subject: message.subject ?? null,
    from: message.from ? address(message.from) : null,
    to: to.slice(0, MAX_LISTED_RECIPIENTS),
    toCount: to.length,
    receivedDateTime: message.receivedDateTime ?? null,
    hasAttachments: message.hasAttachments ?? false,
    links: mailLinks(mailbox, message.id, content.attachments),
    ...(content.body !== undefined ? { body: content.body } : {}),
    ...(content.attachments ? { attachments: content.attachments } : {}),
  };
  const time = message.receivedDateTime ? new Date(message.receivedDateTime) : new Date();
  return mailboxEvent(MAIL_RECEIVED, mailbox, message.id, data, time);
}

/**
 * The gateway API paths of a message: each id is one percent-encoded path segment (Graph's ids may hold `/`, `+`
 * and `=`); the mailbox keeps its `@`, which a path segment allows.
 */
export function mailLinks(mailbox: string, messageId: string, attachments?: readonly MailAttachment[]): MailLinks {
  const message = `/api/mailboxes/${encodeURIComponent(mailbox.toLowerCase()).replace(/%40/g, '@')}/messages/${encodeURIComponent(messageId)}`;
  return {
    message,
    mime: `${message}/mime`,
    ...(attachments
      ? {
          attachments: attachments.map((a) => ({
            id: a.id,
            href: `${message}/attachments/${encodeURIComponent(a.id)}`,
          })),
        }
      : {}),
  };
}

/** UTF-8 bytes of `event` as JSON. */
function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/**
 * `event` cut to at most `maxJsonBytes` of JSON, for a queue message: the body is cut first (marked `truncated`), then,
 * if the event is still too large, attachments are left out of the list from the end (`attachmentsTruncated`).
 * Metadata and the message's links always stay. An event that fits is returned as it is.
 */
export function fitMailReceived(event: CloudEvent<MailReceived>, maxJsonBytes: number): CloudEvent<MailReceived> {
  if (jsonBytes(event) <= maxJsonBytes) return event;
  const body = event.data.body;
  let fitted = event;
  if (body) {
    const withBody = (content: string, truncated: boolean) => ({
      ...event,
      data: { ...event.data, body: { ...body, content, truncated } },
    });
    const empty = withBody('', true);
    const room = maxJsonBytes - jsonBytes(empty);
    // The JSON of a cut grows with its length (escapes included): search the longest cut whose JSON fits the room.
    let low = 0;
    let high = Math.min(Buffer.byteLength(body.content, 'utf8'), Math.max(room, 0));
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (jsonBytes(cutUtf8(body.content, mid)) - 2 <= room) low = mid;
      else high = mid - 1;
    }
    fitted = withBody(cutUtf8(body.content, low), true);
    if (jsonBytes(fitted) <= maxJsonBytes) return fitted;
  }
  const attachments = [...(fitted.data.attachments ?? [])];
  const links = [...(fitted.data.links.attachments ?? [])];
  while (attachments.length > 0) {
    attachments.pop();
    links.pop();
    const candidate = {
      ...fitted,
      data: {
        ...fitted.data,
        attachments: [...attachments],
        links: { ...fitted.data.links, attachments: [...links] },
        attachmentsTruncated: true,
      },
    };
    if (jsonBytes(candidate) <= maxJsonBytes) return candidate;
  }
  return fitted;
}

function address(recipient: Recipient): { address: string; name?: string } | null {
  const email = recipient.emailAddress;
  if (!email?.address) return null;
  return email.name ? { address: email.address, name: email.name } : { address: email.address };
}
