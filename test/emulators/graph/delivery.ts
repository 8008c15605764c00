/**
 * What happens after Exchange accepts a message for sending: one copy lands in the Inbox of every recipient who is a
 * mailbox of the tenant, recipients elsewhere are recorded as outbound mail, and the copies look the way delivered
 * mail looks through Graph (transport headers, no Bcc line, unread). When a message leaves is the business of
 * submissionQueue.ts: Exchange holds it in the mailbox's Outbox while the sending limits say so.
 */
import { randomBytes } from 'node:crypto';
import type { InternetMessageHeader, Recipient } from '@microsoft/microsoft-graph-types';
import type { EmulatedTenant, TenantUser } from '../tenant';
import { graphDateTime, type MailboxStore, type NewMessage, type StoredMessage } from './mailboxStore';
import { allRecipients } from './messageInput';

/** A message that left the tenant (its recipients outside the emulated organisation). */
export interface OutboundMail {
  /** The From address. */
  from: string;
  /** Every external To, Cc and Bcc address, in that order. */
  to: string[];
  subject: string;
  internetMessageId: string;
  sentAt: Date;
}

/** The message as submitted: what Sent Items keeps, with the server-set sending properties filled in. */
export type SubmittedMessage = NewMessage & {
  from: Recipient;
  sender: Recipient;
  internetMessageId: string;
  sentDateTime: string;
};

/** Delivers submitted mail inside the tenant and logs what leaves it. */
export class MailDelivery {
  /** Mail sent to recipients outside the tenant, oldest first. */
  readonly outbound: OutboundMail[] = [];

  constructor(
    private readonly tenant: EmulatedTenant,
    private readonly mailboxOf: (user: TenantUser) => MailboxStore,
  ) {}

  /**
   * The message as Exchange accepts it from `mailbox`'s owner: from/sender, the Message-ID (the client's, when it set
   * one) and the sending time filled in. Nothing is delivered yet; {@link deliver} does that when it leaves the Outbox.
   */
  prepare(mailbox: TenantUser, message: NewMessage | StoredMessage, now: Date): SubmittedMessage {
    const ownAddress: Recipient = { emailAddress: { name: mailbox.displayName, address: mailbox.mail } };
    return {
      ...stripStoreFields(message),
      from: message.from ?? ownAddress,
      sender: ownAddress,
      internetMessageId: message.internetMessageId ?? newInternetMessageId(mailbox),
      // One conversation id for every copy (Sent Items and each recipient's), as Exchange derives it from the
      // thread; a reply drafted with createReply carries its original's, so the thread holds across mailboxes.
      conversationId: message.conversationId ?? newConversationId(),
      sentDateTime: graphDateTime(now),
      isDraft: false,
    };
  }

  /**
   * Delivers a prepared message: a copy in each internal recipient's Inbox (received `now`), the external recipients
   * logged as outbound mail. Returns the recipients in the tenant's own domain that no mailbox has: Exchange is
   * authoritative for its accepted domain, so it bounces them itself (550 5.1.1) instead of sending them out. Sent
   * Items and the NDR are the caller's business.
   */
  deliver(mailbox: TenantUser, submitted: SubmittedMessage, now: Date): { unknown: string[] } {
    const receivedDateTime = graphDateTime(now);
    const delivered = new Set<string>();
    const external: string[] = [];
    const unknown: string[] = [];
    const ownDomain = this.tenant.domain.toLowerCase();
    for (const recipient of allRecipients(submitted)) {
      const address = recipient.emailAddress?.address ?? '';
      const user = this.tenant.findUser(address);
      if (!user) {
        if (address.slice(address.lastIndexOf('@') + 1).toLowerCase() === ownDomain) {
          if (!unknown.some((a) => a.toLowerCase() === address.toLowerCase())) unknown.push(address);
        } else external.push(address);
        continue;
      }
      // Exchange expands the recipient list to one copy per mailbox, however often the mailbox is named.
      if (delivered.has(user.id)) continue;
      delivered.add(user.id);
      this.mailboxOf(user).addMessage('inbox', deliveredCopy(submitted, receivedDateTime));
    }
    if (external.length > 0) {
      this.outbound.push({
        from: submitted.from.emailAddress?.address ?? mailbox.mail,
        to: external,
        subject: submitted.subject ?? '',
        internetMessageId: submitted.internetMessageId,
        sentAt: now,
      });
    }
    return { unknown };
  }
}

/** A fresh Exchange-style conversation id. */
export function newConversationId(): string {
  return `AAQkAG${randomBytes(30).toString('base64url')}=`;
}

/** A fresh RFC 5322 Message-ID in the sender's domain. */
export function newInternetMessageId(mailbox: TenantUser): string {
  const domain = mailbox.mail.split('@')[1] ?? 'localhost';
  return `<${randomBytes(16).toString('hex').toUpperCase()}@${domain}>`;
}

/**
 * The recipient's copy: no Bcc line (nobody learns who was Bcc'd, a Bcc recipient included), unread, received now, and
 * internet headers as a transport would write them, custom `x-` headers included.
 */
function deliveredCopy(submitted: SubmittedMessage, receivedDateTime: string): NewMessage {
  return {
    ...submitted,
    bccRecipients: [],
    isRead: false,
    isDraft: false,
    receivedDateTime,
    internetMessageHeaders: transportHeaders(submitted),
    singleValueExtendedProperties: undefined,
  };
}

function transportHeaders(message: SubmittedMessage): InternetMessageHeader[] {
  const list = (recipients: Recipient[] | null | undefined) => (recipients ?? []).map((r) => mailbox(r)).join(', ');
  const attachments = message.attachments ?? [];
  const headers: InternetMessageHeader[] = [
    { name: 'Received', value: `from emulator.prod.outlook.com by emulator.prod.outlook.com; ${rfc2822(message)}` },
    { name: 'From', value: mailbox(message.from) },
    { name: 'To', value: list(message.toRecipients) },
  ];
  if ((message.ccRecipients ?? []).length > 0) headers.push({ name: 'CC', value: list(message.ccRecipients) });
  if ((message.replyTo ?? []).length > 0) headers.push({ name: 'Reply-To', value: list(message.replyTo) });
  headers.push(
    { name: 'Subject', value: message.subject ?? '' },
    { name: 'Date', value: rfc2822(message) },
    { name: 'Message-ID', value: message.internetMessageId },
    {
      name: 'Content-Type',
      value:
        attachments.length > 0
          ? 'multipart/mixed'
          : message.body?.contentType === 'html'
            ? 'text/html; charset="utf-8"'
            : 'text/plain; charset="utf-8"',
    },
    { name: 'MIME-Version', value: '1.0' },
    { name: 'X-MS-Has-Attach', value: attachments.some((a) => !a.isInline) ? 'yes' : '' },
    ...(message.internetMessageHeaders ?? []),
  );
  return headers;
}

function mailbox(recipient: Recipient | null | undefined): string {
  const name = recipient?.emailAddress?.name;
  const address = recipient?.emailAddress?.address ?? '';
  return name && name !== address ? `"${name}" <${address}>` : `<${address}>`;
}

function rfc2822(message: SubmittedMessage): string {
  return new Date(message.sentDateTime).toUTCString().replace('GMT', '+0000');
}

// Fields a mailbox store owns: a copy must get its own.
const STORE_FIELDS = [
  'id',
  'parentFolderId',
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'receivedDateTime',
  'webLink',
  'hasAttachments',
];

/** The message without the fields a mailbox store owns, so a copy gets its own id, folder and dates. */
function stripStoreFields(message: NewMessage | StoredMessage): NewMessage {
  const entries: Array<[string, unknown]> = Object.entries(message);
  return Object.fromEntries(entries.filter(([key]) => !STORE_FIELDS.includes(key)));
}
