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
  };
}

/** Bytes of one JSON request left for attachments once the message body and envelope are counted. */
export function attachmentJsonBudget(request: SendRequest): number {
  // Escaping can double the body in JSON; 64 KiB covers recipients, headers and the envelope.
  return SINGLE_REQUEST_BUDGET_BYTES - Buffer.byteLength(request.body.content) * 2 - 64 * 1024;
}

/**
 * True when the message cannot go in one `sendMail` request: an attachment of 3 MB or more, or a JSON body that
 * would exceed what one Graph request may carry.
 */
export function needsDraftPath(request: SendRequest): boolean {
  if (request.attachments.some((a) => a.size >= UPLOAD_SESSION_THRESHOLD_BYTES)) return true;
  const json = request.attachments.reduce((sum, a) => sum + a.contentBase64.length + a.name.length + 200, 0);
  return json > attachmentJsonBudget(request);
}

/** The Graph application permissions a send needs: the draft path also writes to the mailbox. */
export function requiredGraphRoles(request: SendRequest): string[] {
  return needsDraftPath(request) ? ['Mail.Send', 'Mail.ReadWrite'] : ['Mail.Send'];
}
