/**
 * Turns a validated send request into Graph's `message` resource and measures the JSON of a `sendMail` request.
 * Attachments' content is added by the sender (it may sit in a blob); large ones travel through upload sessions on
 * the draft path.
 */
import type { FileAttachment, Message, Recipient as GraphRecipient } from '@microsoft/microsoft-graph-types';
import { MAILBOX_WRITE_PERMISSION, SEND_PERMISSION } from '../identity/graphPermissions';
import { UPLOAD_SESSION_THRESHOLD_BYTES, type Attachment, type Recipient, type SendRequest } from './sendRequest';

/** MAPI PidTagDeleteAfterSubmit: Exchange deletes the message once sent, i.e. no Sent Items copy on the draft path. */
export const DELETE_AFTER_SUBMIT_PROPERTY = 'Boolean 0x0E01';

/** JSON bodies above this many bytes go the draft path, staying under Graph's 4 MB (4 MiB) request limit. */
export const SINGLE_REQUEST_BUDGET_BYTES = 4 * 1024 * 1024 - 48 * 1024;

const toGraph = (list: Recipient[]): GraphRecipient[] =>
  list.map((r) => ({ emailAddress: r.name ? { address: r.address, name: r.name } : { address: r.address } }));

/** `attachment` as a Graph file attachment carrying `contentBytes` (its base64). */
export function fileAttachment(attachment: Attachment, contentBytes: string): FileAttachment {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    name: attachment.name,
    contentType: attachment.contentType,
    contentBytes,
    isInline: attachment.inline,
    ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
  } as FileAttachment;
}

/** Characters of the padded base64 of `bytes` bytes. */
function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/** The message resource without attachments. */
export function composeMessage(request: SendRequest): Message {
  const headers = Object.entries(request.headers);
  return {
    subject: request.subject,
    body: { contentType: request.body.contentType, content: request.body.content },
    importance: request.importance,
    toRecipients: toGraph(request.to),
    ccRecipients: toGraph(request.cc),
    bccRecipients: toGraph(request.bcc),
    replyTo: toGraph(request.replyTo),
    ...(headers.length ? { internetMessageHeaders: headers.map(([name, value]) => ({ name, value })) } : {}),
    ...(request.internetMessageId ? { internetMessageId: request.internetMessageId } : {}),
  };
}

/** Bytes of `value` as the JSON Graph receives (UTF-8). */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/**
 * Bytes of `attachment` as a Graph file attachment in JSON, without its content at hand: base64 is ASCII that JSON
 * never escapes, so the content adds exactly its length, which its size gives. Measuring a 3 MB attachment this way
 * costs nothing (and needs no blob read); stringifying it, a copy.
 */
export function attachmentJsonBytes(attachment: Attachment): number {
  return jsonBytes(fileAttachment(attachment, '')) + base64Length(attachment.size);
}

/** The body of `POST /users/{from}/sendMail` for `request`, with its `attachments` (all of them, as file attachments). */
export function sendMailBody(
  request: SendRequest,
  attachments: FileAttachment[],
): { message: Message; saveToSentItems: boolean } {
  return {
    message: { ...composeMessage(request), attachments },
    saveToSentItems: request.saveToSentItems,
  };
}

/**
 * The exact size of the `sendMail` request, measured rather than estimated: the envelope with an empty attachment
 * list, plus each attachment's JSON and the commas between them (no attachment's content is needed).
 */
export function sendMailRequestBytes(request: SendRequest): number {
  const envelope = jsonBytes(sendMailBody(request, []));
  const items = request.attachments.reduce((sum, a) => sum + attachmentJsonBytes(a), 0);
  return envelope + items + Math.max(0, request.attachments.length - 1);
}

/**
 * True when the message cannot go in one `sendMail` request: a reply or forward, an attachment of 3 MB or more, or
 * a request that would exceed what one Graph request may carry.
 */
export function needsDraftPath(request: SendRequest): boolean {
  // A reply or forward is always a draft: only Graph's createReply/createReplyAll/createForward keep the thread.
  if (request.thread) return true;
  if (request.attachments.some((a) => a.size >= UPLOAD_SESSION_THRESHOLD_BYTES)) return true;
  return sendMailRequestBytes(request) > SINGLE_REQUEST_BUDGET_BYTES;
}

/** The Graph application permissions a send needs: the draft path also writes to the mailbox. */
export function requiredGraphRoles(request: SendRequest): string[] {
  return needsDraftPath(request) ? [SEND_PERMISSION, MAILBOX_WRITE_PERMISSION] : [SEND_PERMISSION];
}
