import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { handleThreadMail } from '../shared/messages/threadHandlers';
import { services } from '../shared/app/services';

app.http('messageReply', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}/reply',
  handler: whenConfigured((request, context) => handleThreadMail(request, context, services().messageThread, 'reply')),
});
