/**
 * Messages and attachments as the message API shows them. A listed message carries what `mail.received` carries (so
 * a consumer handles both alike) plus its state: read or not, categories, flag and folder. One message adds its
 * thread (`conversationId`, `inReplyTo`, `references`), its body as asked, its internet headers on request and its
 * attachment list.
 */
import type { Attachment, InternetMessageHeader, Message } from '@microsoft/microsoft-graph-types';
import type { MailReceivedData } from '../events/cloudEvent';
import { mailReceivedEvent, MESSAGE_SELECT } from '../watch/content/mailReceived';

/** The properties a listed message needs (`$select`). */
export const LIST_SELECT = `${MESSAGE_SELECT},isRead,categories,flag,parentFolderId`;
/** The properties one message needs besides its body (`$select`); the headers carry In-Reply-To and References. */
export const MESSAGE_SELECT_ONE = `${LIST_SELECT},conversationId,ccRecipients,internetMessageHeaders`;
/** The attachment properties listed (the base type's; a file's bytes stay out of the answer). */
export const ATTACHMENT_SELECT = 'id,name,contentType,size,isInline';

/** A flag's state, as Graph names it. */
export type FlagStatus = 'notFlagged' | 'flagged' | 'complete';

/** A listed message: the event's metadata, without what only events carry (links, and a watch's content). */
export type MessageListItem = Omit<
  MailReceivedData,
  'links' | 'body' | 'attachments' | 'attachmentsTruncated' | 'folder'
> & {
  toCount: number;
  isRead: boolean;
  categories: string[];
  flag: FlagStatus;
  /** The id of the folder holding it. */
  folder: string | null;
};

/** What kind of attachment: a file, an attached item (mail, event, contact) or a link to a file stored elsewhere. */
export type AttachmentKind = 'file' | 'item' | 'reference';

/** An attachment as listed. */
export interface AttachmentView {
  id: string;
  name: string | null;
  contentType: string | null;
  size: number | null;
  isInline: boolean;
  contentId: string | null;
  kind: AttachmentKind;
}

/** A body as asked for. */
export interface BodyView {
  contentType: 'text' | 'html';
  content: string;
}

/** One message. */
export type MessageView = MessageListItem & {
  cc: Array<{ address: string; name?: string }>;
  conversationId: string | null;
  inReplyTo: string | null;
  references: string[];
  body?: BodyView;
  uniqueBody?: BodyView;
  headers?: Array<{ name: string; value: string }>;
  attachments: AttachmentView[];
};

/** A Graph message with an id. */
export type GraphMessage = Message & { id: string };

/** A listed message from Graph's (with {@link LIST_SELECT}). */
export function listItemView(mailbox: string, message: GraphMessage): MessageListItem {
  // The event's metadata, without what only events carry (links, the watched folder, and content a watch may add).
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { links, body, attachments, attachmentsTruncated, folder, ...metadata } = mailReceivedEvent(
    mailbox,
    message,
  ).data;
  return {
    ...metadata,
    isRead: message.isRead ?? false,
    categories: message.categories ?? [],
    flag: (message.flag?.flagStatus as FlagStatus | undefined) ?? 'notFlagged',
    folder: message.parentFolderId ?? null,
  };
}

/** One message from Graph's (with {@link MESSAGE_SELECT_ONE} and the body parts asked for) and its attachments. */
export function messageView(
  mailbox: string,
  message: GraphMessage,
  attachments: readonly Attachment[],
  options: { headers: boolean },
): MessageView {
  const headers = (message.internetMessageHeaders ?? []).filter(
    (h): h is InternetMessageHeader & { name: string; value: string } =>
      typeof h.name === 'string' && typeof h.value === 'string',
  );
  const header = (name: string) => headers.find((h) => h.name.toLowerCase() === name)?.value;
  const cc = (message.ccRecipients ?? []).flatMap((r) => {
    const address = r.emailAddress?.address;
    if (!address) return [];
    return [r.emailAddress?.name ? { address, name: r.emailAddress.name } : { address }];
  });
  return {
    ...listItemView(mailbox, message),
    cc,
    conversationId: message.conversationId ?? null,
    inReplyTo: header('in-reply-to')?.trim() ?? null,
    references: (header('references') ?? '').split(/\s+/).filter((r) => r !== ''),
    ...bodyPart('body', message.body),
    ...bodyPart('uniqueBody', message.uniqueBody),
    ...(options.headers ? { headers: headers.map(({ name, value }) => ({ name, value })) } : {}),
    attachments: attachments.map(attachmentView),
  };
}

/** An attachment from Graph's listing. */
export function attachmentView(attachment: Attachment): AttachmentView {
  return {
    id: attachment.id ?? '',
    name: attachment.name ?? null,
    contentType: attachment.contentType ?? null,
    size: attachment.size ?? null,
    isInline: attachment.isInline ?? false,
    contentId: (attachment as { contentId?: string | null }).contentId ?? null,
    kind: attachmentKind(attachment),
  };
}

/** The kind of `attachment` by its OData type. */
export function attachmentKind(attachment: Attachment): AttachmentKind {
  const type = (attachment as { '@odata.type'?: string })['@odata.type'] ?? '';
  if (type.endsWith('.itemAttachment')) return 'item';
  if (type.endsWith('.referenceAttachment')) return 'reference';
  return 'file';
}

function bodyPart(name: 'body' | 'uniqueBody', body: Message['body']): { body?: BodyView } | { uniqueBody?: BodyView } {
  if (!body || typeof body.content !== 'string') return {};
  const contentType = body.contentType === 'text' ? 'text' : 'html';
  return { [name]: { contentType, content: body.content } };
}
