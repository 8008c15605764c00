/**
 * Mail events as CloudEvents 1.0 (structured JSON mode). Event ids are derived from what the event is about, so a
 * redelivered notification or a catch-up that sees the same mail produces the same id, and consumers can dedupe on
 * it (delivery is at least once).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** A CloudEvents 1.0 event in JSON form, as it goes on the `mail-events` queue and to the events webhook. */
export const cloudEventSchema = z.object({
  specversion: z.literal('1.0'),
  /** Unique per source; stable for the same fact. */
  id: z.string().min(1),
  /** e.g. `/mailboxes/support@contoso.com`. */
  source: z.string().min(1),
  /** e.g. `mail.received`. */
  type: z.string().min(1),
  /** What the event is about within the source, e.g. the Graph message id. */
  subject: z.string().optional(),
  /** RFC 3339 time of the occurrence. */
  time: z.string(),
  datacontenttype: z.literal('application/json'),
  data: z.unknown(),
});

/** A CloudEvents 1.0 event in JSON form, its `data` typed. */
export type CloudEvent<T = unknown> = Omit<z.infer<typeof cloudEventSchema>, 'data'> & { data: T };

/** The data of a `mail.received` event. */
export interface MailReceivedData {
  mailbox: string;
  /** The watched folder it arrived in: the well-known name (`inbox`, `sentitems`, ...) or the folder id as watched. */
  folder: string;
  messageId: string;
  internetMessageId: string | null;
  subject: string | null;
  from: { address: string; name?: string } | null;
  to: Array<{ address: string; name?: string }>;
  receivedDateTime: string | null;
  hasAttachments: boolean;
  /** The gateway API paths (relative to its origin) that fetch the rest: the message, its MIME, each attachment. */
  links: MailLinks;
  /** With content on (`body` text or html): the body, cut to the mailbox's maxBodyBytes, or to fit a queue message. */
  body?: MailBody | null;
  /** With content on (`attachments: list`): the attachments (no bytes). */
  attachments?: MailAttachment[];
  /** True when attachments were left out of the list to fit a queue message (the webhook's event has them all). */
  attachmentsTruncated?: boolean;
}

/** Where the rest of a received mail is fetched. */
export interface MailLinks {
  message: string;
  mime: string;
  /** One per listed attachment, in the order of `attachments`. */
  attachments?: Array<{ id: string; href: string }>;
}

/** A received mail's body as an event carries it. */
export interface MailBody {
  /** `text` or `html`, as Graph converted it. */
  contentType: string;
  content: string;
  /** True when `content` is the start of the body only. */
  truncated: boolean;
}

/** One attachment of a received mail. */
export interface MailAttachment {
  id: string;
  name: string | null;
  contentType: string | null;
  size: number | null;
  isInline: boolean;
  /** `file`, `item` (an attached mail, event or contact) or `reference` (a link to a cloud file). */
  kind: 'file' | 'item' | 'reference';
}

/** A name-based UUID (SHA-256 of `parts`, formatted as a version-8 UUID): the same parts give the same id. */
export function stableEventId(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The CloudEvents `source` of a mailbox's events. */
function mailboxSource(mailbox: string): string {
  return `/mailboxes/${mailbox.toLowerCase()}`;
}

/** Builds an event of `type` about `subject` in `mailbox`, with an id stable for (type, mailbox, subject). */
export function mailboxEvent<T>(type: string, mailbox: string, subject: string, data: T, time: Date): CloudEvent<T> {
  return {
    specversion: '1.0',
    id: stableEventId(type, mailbox.toLowerCase(), subject),
    source: mailboxSource(mailbox),
    type,
    subject,
    time: time.toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}
