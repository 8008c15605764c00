import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleMessageDelete, handleMessagePatch } from '../shared/messages/messageActionApi';
import { handleMessageGet } from '../shared/messages/messageReadApi';

const byMethod = { GET: handleMessageGet, PATCH: handleMessagePatch, DELETE: handleMessageDelete } as const;

app.http('message', {
  methods: ['GET', 'PATCH', 'DELETE'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}',
  handler: whenConfigured((request, context) =>
    byMethod[request.method as keyof typeof byMethod](request, context, services().messageApi),
  ),
});
