/**
 * The message API's entries of the route table: listing, one message, attachment and MIME downloads, PATCH, move
 * and delete under `/api/mailboxes/{mailbox}/messages`. The answer schemas are checked against the views the
 * handlers build (`satisfies`), and the request bodies are the zod schemas the handlers validate with.
 */
import { z } from 'zod';
import { messageMoveSchema, messagePatchSchema } from '../messages/messageActionApi';
import { DEFAULT_TOP, MAX_TOP } from '../messages/listQuery';
import type { AttachmentView, MessageListItem, MessageView } from '../messages/messageView';
import { jsonResponse, problemResponse, type OperationSpec, type ParameterSpec } from './operationSpec';

const address = z.strictObject({ address: z.string(), name: z.string().optional() });
const bodySchema = z.strictObject({ contentType: z.enum(['text', 'html']), content: z.string() });

const messageListItemSchema = z
  .strictObject({
    mailbox: z.string(),
    messageId: z.string().meta({ description: "Graph's message id (it changes when the message is moved)." }),
    internetMessageId: z.string().nullable(),
    subject: z.string().nullable(),
    from: address.nullable(),
    to: z.array(address).meta({ description: 'The first 100 To recipients.' }),
    toCount: z.int().min(0),
    receivedDateTime: z.string().nullable(),
    hasAttachments: z.boolean(),
    isRead: z.boolean(),
    categories: z.array(z.string()),
    flag: z.enum(['notFlagged', 'flagged', 'complete']),
    folder: z.string().nullable().meta({ description: 'The id of the folder holding the message.' }),
  })
  .meta({
    description: 'A message as listed: the metadata of `mail.received` plus its state.',
  }) satisfies z.ZodType<MessageListItem>;

const attachmentSchema = z.strictObject({
  id: z.string(),
  name: z.string().nullable(),
  contentType: z.string().nullable(),
  size: z.int().min(0).nullable(),
  isInline: z.boolean(),
  contentId: z.string().nullable(),
  kind: z.enum(['file', 'item', 'reference']).meta({
    description: 'file: bytes; item: an attached mail, event or contact (downloaded as MIME); reference: a link.',
  }),
}) satisfies z.ZodType<AttachmentView>;

const messageViewSchema = messageListItemSchema
  .extend({
    cc: z.array(address),
    conversationId: z.string().nullable(),
    inReplyTo: z.string().nullable(),
    references: z.array(z.string()),
    body: bodySchema.optional(),
    uniqueBody: bodySchema.optional().meta({ description: 'The part of a reply that is new (`unique=true`).' }),
    headers: z.array(z.strictObject({ name: z.string(), value: z.string() })).optional(),
    attachments: z.array(attachmentSchema),
  })
  .meta({ description: 'One message.' }) satisfies z.ZodType<MessageView>;

const messageListSchema = z.strictObject({
  value: z.array(messageListItemSchema),
  nextCursor: z.string().optional().meta({ description: 'Pass as `cursor` for the next page; absent on the last.' }),
});

const movedSchema = messageListItemSchema.extend({
  previousId: z.string().meta({ description: 'The id the message had before the move (it no longer exists).' }),
});

const mailbox: ParameterSpec = {
  name: 'mailbox',
  in: 'path',
  description: 'A mailbox in ALLOWED_READ_MAILBOXES, e.g. `support@contoso.com`.',
  schema: z.string().max(254),
};
const id: ParameterSpec = {
  name: 'id',
  in: 'path',
  description: "Graph's message id, as a listing, an event or a move answered it.",
  schema: z.string().max(512),
};
const query = (name: string, description: string, schema: z.ZodType): ParameterSpec => ({
  name,
  in: 'query',
  description,
  schema,
});

const path = '/api/mailboxes/{mailbox}/messages';
const badMailbox = 'Not a mailbox address (`invalid-mailbox`) or not a Graph id (`invalid-message-id`)';
const forbidden = problemResponse(
  'Not in ALLOWED_READ_MAILBOXES (`mailbox-not-readable`), the token lacks the permission (`permission-missing`), ' +
    "or the mailbox is outside the app's Exchange scope (`mailbox-out-of-scope`).",
);
const notFound = problemResponse('No such message or attachment (`message-not-found`): moved, deleted or wrong id.');
const graphBusy = problemResponse('Graph is throttling beyond the wait budget (`graph-throttled`).', {
  'Retry-After': { description: 'Seconds to wait before retrying.', required: true, schema: z.int().min(1) },
});
const common = {
  403: forbidden,
  422: problemResponse('Exchange cannot use the mailbox (`mailbox-not-enabled`, `mailbox-not-found`).'),
  500: problemResponse('The gateway failed; `incident` names its log entry.'),
  502: problemResponse('Graph refused (`graph-error`).'),
  503: graphBusy,
};

/** The message API's operations. */
export const MESSAGE_OPERATIONS: OperationSpec[] = [
  {
    operationId: 'messageList',
    method: 'get',
    path,
    auth: 'function',
    tags: ['messages'],
    summary: 'List messages of a folder, newest first',
    description:
      'Pages of at most `top` messages; `nextCursor` continues the listing. The cursor is opaque: it carries the ' +
      "listing's parameters and Graph's paging position, never a URL, and works only for the same mailbox.",
    parameters: [
      mailbox,
      query(
        'folder',
        'A well-known folder name (`inbox`, `archive`, ...) or a folder id (default `inbox`).',
        z.string(),
      ),
      query('since', 'Only mail received at or after this ISO 8601 date-time.', z.iso.datetime({ offset: true })),
      query('unread', '`true`: only unread mail.', z.enum(['true', 'false'])),
      query('top', `Messages per page, 1 to ${MAX_TOP} (default ${DEFAULT_TOP}).`, z.int().min(1).max(MAX_TOP)),
      query('cursor', "A listing's `nextCursor`.", z.string().max(4096)),
    ],
    responses: {
      200: jsonResponse('A page of messages.', 'MessageList', messageListSchema),
      400: problemResponse(
        `${badMailbox}, a bad parameter (\`invalid-message-request\`) or cursor (\`invalid-cursor\`).`,
      ),
      ...common,
    },
  },
  {
    operationId: 'getMessage',
    method: 'get',
    path: `${path}/{id}`,
    auth: 'function',
    tags: ['messages'],
    summary: 'One message with its body, thread and attachment list',
    parameters: [
      mailbox,
      id,
      query('body', 'The body as `text` (default), `html`, or `none`.', z.enum(['text', 'html', 'none'])),
      query('unique', '`true`: `uniqueBody` (the new part of a reply) instead of `body`.', z.enum(['true', 'false'])),
      query('headers', '`true`: include the internet message headers.', z.enum(['true', 'false'])),
    ],
    responses: {
      200: jsonResponse('The message.', 'MessageView', messageViewSchema),
      400: problemResponse(`${badMailbox}, or a bad parameter (\`invalid-message-request\`).`),
      404: notFound,
      ...common,
    },
  },
  {
    operationId: 'updateMessage',
    method: 'patch',
    path: `${path}/{id}`,
    auth: 'function',
    tags: ['messages'],
    summary: 'Mark read or unread, set categories, flag',
    parameters: [mailbox, id],
    requestBody: {
      name: 'MessagePatch',
      schema: messagePatchSchema,
      description: 'At least one of `isRead`, `categories`, `flag`; nothing else.',
    },
    responses: {
      200: jsonResponse('The message after the change.', 'MessageListItem', messageListItemSchema),
      400: problemResponse(`${badMailbox}, or a bad body (\`invalid-message-request\`, \`not-json\`).`),
      404: notFound,
      413: problemResponse('The body is over 64 KB (`too-large`).'),
      ...common,
    },
  },
  {
    operationId: 'deleteMessage',
    method: 'delete',
    path: `${path}/{id}`,
    auth: 'function',
    tags: ['messages'],
    summary: 'Delete a message (Exchange keeps it in Recoverable Items)',
    parameters: [mailbox, id],
    responses: {
      204: { description: 'Deleted.' },
      400: problemResponse(`${badMailbox}.`),
      404: notFound,
      ...common,
    },
  },
  {
    operationId: 'moveMessage',
    method: 'post',
    path: `${path}/{id}/move`,
    auth: 'function',
    tags: ['messages'],
    summary: 'Move a message to another folder; it gets a new id',
    parameters: [mailbox, id],
    requestBody: {
      name: 'MessageMove',
      schema: messageMoveSchema,
      description: '`folder`: a well-known name (`archive`, `deleteditems`, `inbox`, ...) or a folder id.',
    },
    responses: {
      200: jsonResponse('The moved message with its new `messageId`.', 'MessageMoved', movedSchema),
      400: problemResponse(`${badMailbox}, or a bad body or folder (\`invalid-message-request\`, \`not-json\`).`),
      404: notFound,
      413: problemResponse('The body is over 64 KB (`too-large`).'),
      ...common,
    },
  },
  {
    operationId: 'getMessageAttachment',
    method: 'get',
    path: `${path}/{id}/attachments/{attachmentId}`,
    auth: 'function',
    tags: ['messages'],
    summary: "An attachment's bytes, streamed (an attached mail as message/rfc822)",
    description:
      "The body is Graph's `$value` as it arrives, with `Content-Type`, `Content-Length` and " +
      '`Content-Disposition: attachment` (the UTF-8 name in `filename*`).',
    parameters: [
      mailbox,
      id,
      { ...id, name: 'attachmentId', description: "Graph's attachment id, as the message's `attachments` list it." },
    ],
    responses: {
      200: { description: "The attachment's bytes, or an attached item as `message/rfc822`." },
      400: problemResponse(`${badMailbox}.`),
      404: notFound,
      ...common,
      422: problemResponse(
        'A reference attachment: a link, not bytes (`attachment-is-link`, naming it); or Exchange cannot use the ' +
          'mailbox (`mailbox-not-enabled`, `mailbox-not-found`).',
      ),
    },
  },
  {
    operationId: 'getMessageMime',
    method: 'get',
    path: `${path}/{id}/mime`,
    auth: 'function',
    tags: ['messages'],
    summary: 'The whole message as MIME (message/rfc822), streamed',
    parameters: [mailbox, id],
    responses: {
      200: { description: 'The message as `message/rfc822`.' },
      400: problemResponse(`${badMailbox}.`),
      404: notFound,
      ...common,
    },
  },
];
