/**
 * A message's attachments: add a file under 3 MB (`POST .../attachments`, Mail.ReadWrite), list them, get one, and
 * get its raw contents (`.../$value`, streamed): a file's bytes with its content type, an attached message as MIME, and
 * for a reference attachment (a link to a cloud file) HTTP 405. Larger files arrive through upload sessions
 * (uploadSessions.ts).
 *
 * Doc: api-reference/v1.0/api/attachment-get.md ("Get the raw contents of a file or item attachment": a file's
 * content type is its original one, a message item is returned in MIME format, "Attempting to get the `$value` of a
 * reference attachment returns HTTP 405"; permissions: Mail.Read, which Mail.ReadBasic.All does not include).
 */
import { GraphError } from './graphResponse';
import { isWellFormedItemId, type StoredAttachment, type StoredMessage } from './mailboxStore';
import { resolveMessage } from './mailReadRoutes';
import { MAIL_WRITE_ROLES } from './draftRoutes';
import { MAX_INLINE_ATTACHMENT_BYTES, readFileAttachment } from './messageInput';
import { messageMime } from './mime';
import { project, selectedProperties, type SelectableType } from './odataQuery';
import type { GraphRequestContext, GraphRoute } from './router';
import type { ValueStreams } from './valueStreams';

/** Application permissions that can read attachments (Mail.ReadBasic cannot). */
export const ATTACHMENT_READ_ROLES: readonly string[] = ['Mail.Read', 'Mail.ReadWrite'];

const FILE_ATTACHMENT_PROPERTIES = [
  'id',
  'lastModifiedDateTime',
  'name',
  'contentType',
  'size',
  'isInline',
  'contentId',
  'contentLocation',
  'contentBytes',
];

/** How `$select` works on attachments: the base type's properties; unselected, a file attachment is returned whole. */
export const ATTACHMENT_TYPE: SelectableType = {
  typeName: 'microsoft.graph.attachment',
  properties: ['id', 'lastModifiedDateTime', 'name', 'contentType', 'size', 'isInline'],
  defaults: FILE_ATTACHMENT_PROPERTIES,
  always: ['id'],
  errorCode: 'RequestBroker--ParseUri',
};

const FILE_TYPE = '#microsoft.graph.fileAttachment';
const ITEM_TYPE = '#microsoft.graph.itemAttachment';
const REFERENCE_TYPE = '#microsoft.graph.referenceAttachment';

/**
 * The attachment as Graph's JSON with `properties`: a file with its bytes unless `$select` leaves them out; an item or
 * reference attachment with the base properties only (the attached item comes only with `$expand`, which the emulator
 * lacks; a reference's `sourceUrl` is beta only).
 */
export function attachmentJson(attachment: StoredAttachment, properties: readonly string[]): Record<string, unknown> {
  const isFile = attachment['@odata.type'] === FILE_TYPE;
  const visible = isFile ? properties : properties.filter((p) => ATTACHMENT_TYPE.properties.includes(p));
  return project(attachment, visible, {
    '@odata.type': attachment['@odata.type'],
    ...(isFile ? { '@odata.mediaContentType': attachment.contentType ?? 'application/octet-stream' } : {}),
  });
}

/** The attachment `id` of `message`; 400 for a malformed id, 404 when absent. */
export function resolveAttachment(message: StoredMessage, id: string): StoredAttachment {
  const attachment = message.attachments.find((a) => a.id === id);
  if (attachment) return attachment;
  if (!isWellFormedItemId(id)) throw new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
  throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
}

/** The attachment routes; `$value` bodies go out through `streams`. */
export function attachmentRoutes(streams: ValueStreams): GraphRoute[] {
  const read = { method: 'GET', roles: ATTACHMENT_READ_ROLES, mailbox: true } as const;
  return [
    {
      method: 'POST',
      path: '/users/{user}/messages/{id}/attachments',
      roles: MAIL_WRITE_ROLES,
      mailbox: true,
      handler: addAttachment,
    },
    {
      ...read,
      path: '/users/{user}/messages/{id}/attachments',
      queryOptions: ['$select'],
      handler: (ctx) => {
        const message = resolveMessage(ctx.mailbox, ctx.params.id);
        const properties = selectedProperties(ctx.query, ATTACHMENT_TYPE);
        return ctx.json(200, {
          '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages('${message.id}')/attachments`,
          value: message.attachments.map((a) => attachmentJson(a, properties)),
        });
      },
    },
    {
      ...read,
      path: '/users/{user}/messages/{id}/attachments/{attachment}',
      queryOptions: ['$select'],
      handler: (ctx) => {
        const message = resolveMessage(ctx.mailbox, ctx.params.id);
        const attachment = resolveAttachment(message, ctx.params.attachment);
        return ctx.json(200, {
          '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages('${message.id}')/attachments/$entity`,
          ...attachmentJson(attachment, selectedProperties(ctx.query, ATTACHMENT_TYPE)),
        });
      },
    },
    {
      ...read,
      path: '/users/{user}/messages/{id}/attachments/{attachment}/$value',
      handler: (ctx) => attachmentValue(ctx, streams),
    },
  ];
}

function attachmentValue(ctx: GraphRequestContext, streams: ValueStreams) {
  const attachment = resolveAttachment(resolveMessage(ctx.mailbox, ctx.params.id), ctx.params.attachment);
  let parts: Buffer[];
  let contentType: string;
  if (attachment['@odata.type'] === ITEM_TYPE && attachment.item) {
    parts = messageMime(attachment.item);
    // Documented like a message's own $value (message-get.md example 4: text/plain).
    contentType = 'text/plain';
  } else if (attachment['@odata.type'] === FILE_TYPE) {
    parts = [Buffer.from(attachment.contentBytes ?? '', 'base64')];
    contentType = attachment.contentType ?? 'application/octet-stream';
  } else {
    // attachment-get.md: "Attempting to get the $value of a reference attachment returns HTTP 405."
    throw new GraphError(
      405,
      REFERENCE_TYPE === attachment['@odata.type'] ? 'ErrorInvalidRequest' : 'ErrorInvalidOperation',
      'The raw contents of a reference attachment cannot be retrieved; it is a link to a file stored elsewhere.',
    );
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  return {
    status: 200,
    headers: { 'content-type': contentType, 'content-length': String(length) },
    stream: streams.stream(ctx.url.pathname, parts),
  };
}

function addAttachment(ctx: GraphRequestContext) {
  if (ctx.body.toString('utf8').trim() === '') {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const input = readFileAttachment(ctx.readJson());
  if ((input.size ?? 0) > MAX_INLINE_ATTACHMENT_BYTES) {
    throw new GraphError(
      413,
      'RequestEntityTooLarge',
      `The attachment is ${input.size} bytes; attachments over ${MAX_INLINE_ATTACHMENT_BYTES} bytes need an upload session (attachments/createUploadSession).`,
    );
  }
  const message = resolveMessage(ctx.mailbox, ctx.params.id);
  const stored = ctx.mailbox.addAttachment(message.id, input);
  if (!stored) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages('${message.id}')/attachments/$entity`,
    ...attachmentJson(stored, FILE_ATTACHMENT_PROPERTIES),
  });
}
