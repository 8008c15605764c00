/**
 * The message API's reading routes: list a folder, show one message, download an attachment, download the MIME.
 * Ids and parameters are checked and the token's permission judged before Graph is called; bytes are streamed.
 */
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import { decodeCursor, encodeCursor, pageStartOf, type PageStart } from './listCursor';
import { parseListParams, type ListParams } from './listQuery';
import {
  attachmentValue,
  getAttachment,
  getMessage,
  listAttachments,
  listMessages,
  mimeValue,
  type BodyChoice,
} from './messageGraph';
import { jsonAnswer, messageHandler } from './messageHandler';
import { parseGraphId } from './messageIds';
import { requireMessagePermission } from './messageProblems';
import { invalidMessageRequest, type FieldError } from './messageRequest';
import { attachmentKind, listItemView, messageView } from './messageView';
import { streamedAnswer } from './streamedAnswer';

/** `GET /api/mailboxes/{mailbox}/messages`: a page of a folder, newest first, with `nextCursor` when there is more. */
export const handleMessageList = messageHandler('message list', async (mailbox, request, _context, deps) => {
  const query = new URL(request.url).searchParams;
  const { params, start } = listingOf(query, mailbox);
  await requireMessagePermission(deps.config, deps.credential, 'list');
  const page = await listMessages(deps.graph, mailbox, params, start);
  const next = pageStartOf(page.nextLink);
  return jsonAnswer(200, {
    value: page.value.map((m) => listItemView(mailbox, m)),
    ...(next ? { nextCursor: encodeCursor({ mailbox, params, start: next }) } : {}),
  });
});

/** `GET /api/mailboxes/{mailbox}/messages/{id}`: one message with its body as asked and its attachment list. */
export const handleMessageGet = messageHandler('message read', async (mailbox, request, _context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  const options = readOptions(new URL(request.url).searchParams);
  await requireMessagePermission(deps.config, deps.credential, 'read');
  const [message, attachments] = await Promise.all([
    getMessage(deps.graph, mailbox, id, options),
    listAttachments(deps.graph, mailbox, id),
  ]);
  return jsonAnswer(200, messageView(mailbox, message, attachments, options));
});

/**
 * `GET .../messages/{id}/attachments/{attachmentId}`: a file's bytes or an attached item as `message/rfc822`,
 * streamed from Graph's `$value`; a reference attachment (a link) is a 422 naming it.
 */
export const handleAttachmentGet = messageHandler('attachment download', async (mailbox, request, context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  const attachmentId = parseGraphId(request.params.attachmentId, 'attachment');
  await requireMessagePermission(deps.config, deps.credential, 'read');
  const attachment = await getAttachment(deps.graph, mailbox, id, attachmentId);
  const kind = attachmentKind(attachment);
  const name = attachment.name ?? 'attachment';
  if (kind === 'reference') {
    throw new HttpProblem(
      problem(
        422,
        'attachment-is-link',
        'The attachment is a link',
        `'${name}' is a reference attachment: a link to a file stored elsewhere (OneDrive, SharePoint), not bytes in the message. Graph v1.0 does not give its address; open the mail in Outlook to follow it.`,
        { attachment: { id: attachmentId, name, kind } },
      ),
    );
  }
  const stream = await attachmentValue(deps.graph, mailbox, id, attachmentId);
  if (kind === 'item')
    return streamedAnswer(stream, 'message/rfc822', /\.eml$/i.test(name) ? name : `${name}.eml`, context.invocationId);
  const contentType = attachment.contentType ?? stream.contentType ?? 'application/octet-stream';
  return streamedAnswer(stream, safeContentType(contentType), name, context.invocationId);
});

/** `GET .../messages/{id}/mime`: the message as `message/rfc822`, streamed from Graph's `$value`. */
export const handleMimeGet = messageHandler('MIME download', async (mailbox, request, context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  await requireMessagePermission(deps.config, deps.credential, 'read');
  const stream = await mimeValue(deps.graph, mailbox, id);
  return streamedAnswer(stream, 'message/rfc822', 'message.eml', context.invocationId);
});

/** The listing a request asks for: its own parameters, or those its cursor carries (which must agree with them). */
function listingOf(query: URLSearchParams, mailbox: string): { params: ListParams; start?: PageStart } {
  const cursor = query.get('cursor');
  const params = parseListParams(query);
  if (cursor === null) return { params };
  const state = decodeCursor(cursor, mailbox);
  // A caller repeating its parameters with the cursor is fine; parameters that contradict it are a mistake.
  const given = (name: string) => query.has(name);
  const differs =
    (given('folder') && params.folder !== state.params.folder) ||
    (given('since') && params.since !== state.params.since) ||
    (given('unread') && params.unread !== state.params.unread) ||
    (given('top') && params.top !== state.params.top);
  if (differs) {
    throw invalidMessageRequest([
      { field: 'cursor', message: 'continues a listing with other parameters; send the cursor alone' },
    ]);
  }
  return { params: state.params, start: state.start };
}

function readOptions(query: URLSearchParams): { body: BodyChoice; unique: boolean; headers: boolean } {
  const errors: FieldError[] = [];
  const body = query.get('body') ?? 'text';
  if (body !== 'text' && body !== 'html' && body !== 'none')
    errors.push({ field: 'body', message: 'must be text, html or none' });
  const flag = (name: string): boolean => {
    const value = query.get(name);
    if (value === null || value === 'false') return false;
    if (value === 'true') return true;
    errors.push({ field: name, message: 'must be true or false' });
    return false;
  };
  const unique = flag('unique');
  const headers = flag('headers');
  if (unique && body === 'none') errors.push({ field: 'unique', message: 'needs a body (text or html)' });
  if (errors.length > 0) throw invalidMessageRequest(errors);
  return { body: body as BodyChoice, unique, headers };
}

/** A content type fit for a header: Graph's, unless it is not a plain `type/subtype[; params]`. */
function safeContentType(value: string): string {
  return /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;[\x20-\x7e]*)?$/.test(value) ? value : 'application/octet-stream';
}
