/**
 * Read-only Exchange routes: a mail folder, message listings (paged) and single messages. Mail writing, delta and
 * subscriptions add their own route modules next to this one.
 */
import { GraphError } from './graphResponse';
import { convertBody, preferenceApplied, preferredBodyType, type BodyType } from './mailBody';
import { isWellFormedItemId, type MailboxStore, type StoredFolder, type StoredMessage } from './mailboxStore';
import { applyMessageQuery, readMessageQuery } from './messageQuery';
import { page, project, readPaging, selectedProperties, type SelectableType } from './odataQuery';
import type { GraphRequestContext, GraphRoute } from './router';

/** Application permissions that can read messages (ReadBasic ones without bodies). */
export const MAIL_READ_ROLES: readonly string[] = [
  'Mail.ReadBasic',
  'Mail.ReadBasic.All',
  'Mail.Read',
  'Mail.ReadWrite',
];

/**
 * Permissions that include message bodies. permissions-reference (Mail.ReadBasic.All): "all properties except body,
 * previewBody, attachments and any extended properties"; the Graph blog that introduced it ("New basic read access to
 * a users mailbox", 2019) says it gets messages "without the body or attachments": the properties are left out of
 * the answer (no error), while the attachment routes and `$value` refuse the token (403 ErrorAccessDenied).
 */
export const FULL_READ_ROLES: readonly string[] = ['Mail.Read', 'Mail.ReadWrite'];
const BODY_PROPERTIES = new Set(['body', 'bodyPreview', 'uniqueBody']);

const MESSAGE_PROPERTIES = [
  'id',
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'categories',
  'receivedDateTime',
  'sentDateTime',
  'hasAttachments',
  'internetMessageId',
  'subject',
  'bodyPreview',
  'importance',
  'parentFolderId',
  'conversationId',
  'conversationIndex',
  'isDeliveryReceiptRequested',
  'isReadReceiptRequested',
  'isRead',
  'isDraft',
  'webLink',
  'inferenceClassification',
  'body',
  'sender',
  'from',
  'toRecipients',
  'ccRecipients',
  'bccRecipients',
  'replyTo',
  'flag',
  'uniqueBody',
  'internetMessageHeaders',
];

/** How `$select` works on messages (uniqueBody and internetMessageHeaders only when selected, as in Graph). */
export const MESSAGE_TYPE: SelectableType = {
  typeName: 'microsoft.graph.message',
  properties: MESSAGE_PROPERTIES,
  defaults: MESSAGE_PROPERTIES.filter(
    (p) => p !== 'uniqueBody' && p !== 'internetMessageHeaders' && p !== 'conversationIndex',
  ),
  always: ['id'],
  errorCode: 'RequestBroker--ParseUri',
};

const MAIL_FOLDER_PROPERTIES = [
  'id',
  'displayName',
  'parentFolderId',
  'childFolderCount',
  'unreadItemCount',
  'totalItemCount',
  'isHidden',
];

/** How `$select` works on mail folders (every property is a default one). */
export const MAIL_FOLDER_TYPE: SelectableType = {
  typeName: 'microsoft.graph.mailFolder',
  properties: MAIL_FOLDER_PROPERTIES,
  defaults: MAIL_FOLDER_PROPERTIES,
  always: ['id'],
  errorCode: 'RequestBroker--ParseUri',
};

/** Default and maximum `$top` for message listings. */
export const MESSAGE_PAGE = { defaultTop: 10, maxTop: 1000 } as const;

/** The folder named by a well-known name or id; 400 for something that is neither, 404 for an unknown id. */
export function resolveFolder(mailbox: MailboxStore, nameOrId: string): StoredFolder {
  const folder = mailbox.findFolder(nameOrId);
  if (folder) return folder;
  if (isWellFormedItemId(nameOrId)) {
    throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  }
  throw new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
}

/** The message with `id` (in `folder` when given); 400 for a malformed id, 404 when absent. */
export function resolveMessage(mailbox: MailboxStore, id: string, folder?: StoredFolder): StoredMessage {
  const message = mailbox.getMessage(id);
  if (message && (!folder || message.parentFolderId === folder.id)) return message;
  if (!isWellFormedItemId(id)) throw new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.');
  throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
}

/**
 * The message as JSON for `properties`, without what the caller's permissions exclude; body and uniqueBody in
 * `bodyType` (HTML when undefined, Graph's default: message-get.md). `uniqueBody` is the part of a reply that is new
 * (a createReply draft stores its comment there); for any other message it is the whole body.
 */
export function messageJson(
  message: StoredMessage,
  properties: readonly string[],
  roles: ReadonlySet<string>,
  bodyType?: BodyType,
): Record<string, unknown> {
  const withBody = FULL_READ_ROLES.some((r) => roles.has(r));
  const visible = withBody ? properties : properties.filter((p) => !BODY_PROPERTIES.has(p));
  const source = {
    ...message,
    body: convertBody(message.body, bodyType),
    uniqueBody: convertBody(message.uniqueBody ?? message.body, bodyType),
  };
  return project(source, visible, { '@odata.etag': `W/"${message.changeKey}"` });
}

/** The body type the request's `Prefer` header asks for and the `Preference-Applied` header confirming it. */
export function bodyPreference(ctx: GraphRequestContext): { bodyType?: BodyType; headers: Record<string, string> } {
  const bodyType = preferredBodyType(ctx.header('prefer'));
  return bodyType ? { bodyType, headers: preferenceApplied(bodyType) } : { headers: {} };
}

function listMessages(ctx: GraphRequestContext, folder?: StoredFolder) {
  const properties = selectedProperties(ctx.query, MESSAGE_TYPE);
  const paging = readPaging(ctx.query, MESSAGE_PAGE.defaultTop, MESSAGE_PAGE.maxTop);
  const query = readMessageQuery(ctx.query);
  const all = applyMessageQuery(ctx.mailbox.listMessages(folder?.id), query);
  const { value, nextLink } = page(all, paging, ctx.url);
  const { bodyType, headers } = bodyPreference(ctx);
  const collection = folder
    ? `users('${ctx.user.id}')/mailFolders('${folder.id}')/messages`
    : `users('${ctx.user.id}')/messages`;
  return ctx.json(
    200,
    {
      '@odata.context': `${ctx.baseUrl}/$metadata#${collection}`,
      value: value.map((m) => messageJson(m, properties, ctx.roles, bodyType)),
      ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
    },
    headers,
  );
}

function getMessage(ctx: GraphRequestContext, folder?: StoredFolder) {
  const properties = selectedProperties(ctx.query, MESSAGE_TYPE);
  const message = resolveMessage(ctx.mailbox, ctx.params.id, folder);
  const { bodyType, headers } = bodyPreference(ctx);
  return ctx.json(
    200,
    {
      '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages/$entity`,
      ...messageJson(message, properties, ctx.roles, bodyType),
    },
    headers,
  );
}

/** The read-only mail routes. */
export function mailReadRoutes(): GraphRoute[] {
  const common = { method: 'GET', roles: MAIL_READ_ROLES, mailbox: true } as const;
  return [
    {
      ...common,
      path: '/users/{user}/mailFolders/{folder}',
      queryOptions: ['$select'],
      handler: (ctx) => {
        const folder = resolveFolder(ctx.mailbox, ctx.params.folder);
        const properties = selectedProperties(ctx.query, MAIL_FOLDER_TYPE);
        return ctx.json(
          200,
          project(ctx.mailbox.folderResource(folder), properties, {
            '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/mailFolders/$entity`,
          }),
        );
      },
    },
    {
      ...common,
      path: '/users/{user}/messages',
      queryOptions: ['$select', '$top', '$skip', '$filter', '$orderby'],
      handler: (ctx) => listMessages(ctx),
    },
    {
      ...common,
      path: '/users/{user}/mailFolders/{folder}/messages',
      queryOptions: ['$select', '$top', '$skip', '$filter', '$orderby'],
      handler: (ctx) => listMessages(ctx, resolveFolder(ctx.mailbox, ctx.params.folder)),
    },
    {
      ...common,
      path: '/users/{user}/messages/{id}',
      queryOptions: ['$select'],
      handler: (ctx) => getMessage(ctx),
    },
    {
      ...common,
      path: '/users/{user}/mailFolders/{folder}/messages/{id}',
      queryOptions: ['$select'],
      handler: (ctx) => getMessage(ctx, resolveFolder(ctx.mailbox, ctx.params.folder)),
    },
  ];
}
