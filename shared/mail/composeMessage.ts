/**
 * Turns a validated send request into Graph's `message` resource. Large attachments are left out: they travel
 * through upload sessions on the draft path.
 */
import type { FileAttachment, Message, Recipient as GraphRecipient } from '@microsoft/microsoft-graph-types';
import { UPLOAD_SESSION_THRESHOLD_BYTES, type Recipient, type SendRequest } from './sendRequest';

/** MAPI PidTagDeleteAfterSubmit: Exchange deletes the message once sent, i.e. no Sent Items copy on the draft path. */
export const DELETE_AFTER_SUBMIT_PROPERTY = 'Boolean 0x0E01';

/** JSON bodies above this many bytes go the draft path, staying under Graph's 4 MB (4 MiB) request limit. */
export const SINGLE_REQUEST_BUDGET_BYTES = 4 * 1024 * 1024 - 48 * 1024;

const toGraph = (list: Recipient[]): GraphRecipient[] =>
  list.map((r) => ({ emailAddress: r.name ? { address: r.address, name: r.name } : { address: r.address } }));

/** The attachments small enough to travel inside a JSON request, as Graph file attachments. */
export function fileAttachments(request: SendRequest, onlySmall: boolean): FileAttachment[] {
  return request.attachments
    .filter((a) => !onlySmall || a.size < UPLOAD_SESSION_THRESHOLD_BYTES)
    .map(
      (a) =>
        ({
          '@odata.type': '#microsoft.graph.fileAttachment',
          name: a.name,
          contentType: a.contentType,
          contentBytes: a.contentBase64,
          isInline: a.inline,
          ...(a.contentId ? { contentId: a.contentId } : {}),
        }) as FileAttachment,
    );
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
 * Bytes of `attachment` as JSON, without serialising its content: base64 is ASCII that JSON never escapes, so the
 * content adds exactly its length. Measuring a 3 MB attachment this way costs nothing; stringifying it, a copy.
 */
export function attachmentJsonBytes(attachment: FileAttachment): number {
  const content = attachment.contentBytes ?? '';
  return jsonBytes({ ...attachment, contentBytes: '' }) + content.length;
}

/** The body of `POST /users/{from}/sendMail` for `request`, every attachment inline. */
export function sendMailBody(request: SendRequest): { message: Message; saveToSentItems: boolean } {
  return {
    message: { ...composeMessage(request), attachments: fileAttachments(request, false) },
    saveToSentItems: request.saveToSentItems,
  };
}

/**
 * The exact size of the `sendMail` request, measured rather than estimated: the envelope with an empty
 * attachment list, plus each attachment's JSON and the commas between them (attachments are serialised one at a
 * time, so the whole request is never built twice).
 */
export function sendMailRequestBytes(request: SendRequest): number {
  const attachments = fileAttachments(request, false);
  const envelope = jsonBytes({
    message: { ...composeMessage(request), attachments: [] },
    saveToSentItems: request.saveToSentItems,
  });
  const items = attachments.reduce((sum, a) => sum + attachmentJsonBytes(a), 0);
  return envelope + items + Math.max(0, attachments.length - 1);
}

/**
 * True when the message cannot go in one `sendMail` request: an attachment of 3 MB or more, or a request that
 * would exceed what one Graph request may carry.
 */
export function needsDraftPath(request: SendRequest): boolean {
  if (request.attachments.some((a) => a.size >= UPLOAD_SESSION_THRESHOLD_BYTES)) return true;
  return sendMailRequestBytes(request) > SINGLE_REQUEST_BUDGET_BYTES;
}

/** The Graph application permissions a send needs: the draft path also writes to the mailbox. */
export function requiredGraphRoles(request: SendRequest): string[] {
  return needsDraftPath(request) ? ['Mail.Send', 'Mail.ReadWrite'] : ['Mail.Send'];
}
