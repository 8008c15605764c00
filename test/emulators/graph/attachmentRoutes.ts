/**
 * A message's file attachments: add one under 3 MB (`POST .../attachments`, Mail.ReadWrite), list them, get one, and
 * get its raw bytes (`.../$value`). Larger files arrive through upload sessions (uploadSessions.ts).
 */
import { GraphError } from './graphResponse';
import { isWellFormedItemId, type StoredAttachment, type StoredMessage } from './mailboxStore';
import { resolveMessage } from './mailReadRoutes';
import { MAIL_WRITE_ROLES } from './draftRoutes';
import { MAX_INLINE_ATTACHMENT_BYTES, readFileAttachment } from './messageInput';
import { project, selectedProperties, type SelectableType } from './odataQuery';
import type { GraphRequestContext, GraphRoute } from './router';

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

/** The attachment as Graph's fileAttachment JSON with `properties`. */
export function attachmentJson(attachment: StoredAttachment, properties: readonly string[]): Record<string, unknown> {
  return project(attachment, properties, {
    '@odata.type': attachment['@odata.type'],
    '@odata.mediaContentType': attachment.contentType ?? 'application/octet-stream',
  });
}

/** The attachment `id` of `message`; 400 for a malformed id, 404 when absent. */
export function resolveAttachment(message: StoredMessage, id: string): StoredAttachment {
  const attachment = message.attachments.find((a) => a.id === id);
  if (attachment) return attachment;
  if (!isWellFormedItemId(id)) throw new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
  throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
}

/** The attachment routes. */
export function attachmentRoutes(): GraphRoute[] {
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
      handler: (ctx) => {
        const attachment = resolveAttachment(resolveMessage(ctx.mailbox, ctx.params.id), ctx.params.attachment);
        return {
          status: 200,
          headers: { 'content-type': attachment.contentType ?? 'application/octet-stream' },
          body: Buffer.from(attachment.contentBytes ?? '', 'base64'),
        };
      },
    },
  ];
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
