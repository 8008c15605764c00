/**
 * Drafts: `POST /users/{user}/messages` creates one in Drafts (the first step of sending with large attachments) and
 * `DELETE /users/{user}/messages/{id}` removes a message the way Graph does, into Deleted Items first. Both need
 * Mail.ReadWrite.
 */
import { GraphError } from './graphResponse';
import { MESSAGE_TYPE, messageJson, resolveMessage } from './mailReadRoutes';
import { readMessage } from './messageInput';
import type { GraphRequestContext, GraphRoute } from './router';

/** Application permissions that can create, change and delete messages. */
export const MAIL_WRITE_ROLES: readonly string[] = ['Mail.ReadWrite'];

/** The draft routes. */
export function draftRoutes(): GraphRoute[] {
  return [
    {
      method: 'POST',
      path: '/users/{user}/messages',
      roles: MAIL_WRITE_ROLES,
      mailbox: true,
      handler: createDraft,
    },
    {
      method: 'DELETE',
      path: '/users/{user}/messages/{id}',
      roles: MAIL_WRITE_ROLES,
      mailbox: true,
      handler: deleteMessage,
    },
  ];
}

function createDraft(ctx: GraphRequestContext) {
  if (/^\s*text\/plain/i.test(ctx.header('content-type') ?? '')) {
    throw new GraphError(501, 'NotImplemented', 'The Graph emulator does not implement drafts in MIME format.');
  }
  if (ctx.body.toString('utf8').trim() === '') {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const message = readMessage(ctx.readJson());
  const stored = ctx.mailbox.addMessage('drafts', { ...message, isDraft: true, isRead: true });
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages/$entity`,
    ...messageJson(stored, MESSAGE_TYPE.defaults, ctx.roles),
  });
}

function deleteMessage(ctx: GraphRequestContext) {
  const message = resolveMessage(ctx.mailbox, ctx.params.id);
  const deletedItems = ctx.mailbox.findFolder('deleteditems');
  // DELETE is a soft delete in Exchange: the item moves to Deleted Items (new id); only from there is it gone for good.
  if (message.parentFolderId === deletedItems?.id) ctx.mailbox.deleteMessage(message.id);
  else ctx.mailbox.moveMessage(message.id, 'deleteditems');
  return ctx.empty(204);
}
