/**
 * Reads what a mailbox watched with content puts into its events (Mail.Read): the body, converted by Graph to text or
 * HTML as asked (`Prefer: outlook.body-content-type`, message-get.md) and cut to the mailbox's maxBodyBytes, and the
 * attachment list with `$select` of the base attachment properties, so that a file attachment's bytes are never
 * fetched. Nothing read here is ever logged.
 */
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import { logValue } from '../../platform/logSafe';
import type { Message } from '@microsoft/microsoft-graph-types';
import type { MailAttachment, MailBody } from '../../events/cloudEvent';
import type { EventContent } from './eventContent';
import { MESSAGE_SELECT, type MailContent } from './mailReceived';
import { cutUtf8 } from './utf8Cut';

/** The attachment properties listed (`contentBytes` left out). */
const ATTACHMENT_SELECT = 'id,name,contentType,size,isInline';

const KINDS: Record<string, MailAttachment['kind']> = {
  '#microsoft.graph.fileAttachment': 'file',
  '#microsoft.graph.itemAttachment': 'item',
  '#microsoft.graph.referenceAttachment': 'reference',
};

/** A message as the event needs it, and its content as `content` asks. */
export interface MessageForEvent {
  message: Message & { id: string };
  content: MailContent;
  /** What could not be read, for the log (never content): the event goes out without it. */
  unreadable?: string;
}

function messagePath(mailbox: string, messageId: string): string {
  return `/users/${encodeURIComponent(mailbox)}/messages/${encodeURIComponent(messageId)}`;
}

/**
 * Reads the message's metadata, and with content on its body in the same request and its attachment list in a second
 * one. Throws Graph's errors (a 404 when the message is gone).
 */
export async function readMessageForEvent(
  graph: Client,
  mailbox: string,
  messageId: string,
  content: EventContent | undefined,
): Promise<MessageForEvent> {
  const wantsBody = content !== undefined && content.body !== 'none';
  let request = graph
    .api(messagePath(mailbox, messageId))
    .select(wantsBody ? `${MESSAGE_SELECT},body` : MESSAGE_SELECT);
  if (wantsBody) request = request.header('Prefer', `outlook.body-content-type="${content.body}"`);
  const message = (await request.get()) as Message & { id: string };
  const read: MailContent = {};
  if (wantsBody) read.body = eventBody(message, content.maxBodyBytes);
  let unreadable: string | undefined;
  if (content?.attachments === 'list') {
    try {
      read.attachments = await listAttachments(graph, mailbox, messageId);
    } catch (err) {
      // A token without Mail.Read (GRAPH_PERMISSION_CHECK=off and no Exchange role for it): the mail is still
      // announced, with its links, rather than lost to the poison queue over a list the consumer can fetch later.
      if (!(err instanceof GraphError) || err.statusCode !== 403) throw err;
      unreadable = `attachment list refused by Graph (403 ${logValue(err.code ?? '')}): grant Mail.Read`;
    }
  }
  // The body stays in the event only: the message object goes no further than this function's callers.
  delete message.body;
  return { message, content: read, ...(unreadable ? { unreadable } : {}) };
}

/** The body cut to `maxBytes` UTF-8 bytes; null when Graph gave none (Mail.ReadBasic leaves it out). */
function eventBody(message: Message, maxBytes: number): MailBody | null {
  const body = message.body;
  if (!body || typeof body.content !== 'string') return null;
  const content = cutUtf8(body.content, maxBytes);
  return {
    contentType: (body.contentType ?? 'text').toLowerCase(),
    content,
    truncated: content.length < body.content.length,
  };
}

interface AttachmentPage {
  value?: Array<Record<string, unknown>>;
  '@odata.nextLink'?: string;
}

/** Every attachment of the message (following Graph's pages), without their bytes. */
async function listAttachments(graph: Client, mailbox: string, messageId: string): Promise<MailAttachment[]> {
  const listed: MailAttachment[] = [];
  let page = (await graph
    .api(`${messagePath(mailbox, messageId)}/attachments`)
    .select(ATTACHMENT_SELECT)
    .get()) as AttachmentPage;
  for (;;) {
    for (const a of page.value ?? []) {
      if (typeof a.id !== 'string') continue;
      listed.push({
        id: a.id,
        name: typeof a.name === 'string' ? a.name : null,
        contentType: typeof a.contentType === 'string' ? a.contentType : null,
        size: typeof a.size === 'number' ? a.size : null,
        isInline: a.isInline === true,
        kind: KINDS[String(a['@odata.type'])] ?? 'file',
      });
    }
    const next = page['@odata.nextLink'];
    if (!next) return listed;
    page = (await graph.api(next).get()) as AttachmentPage;
  }
}
