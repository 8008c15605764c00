import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { handleThreadMail } from '../shared/messages/threadHandlers';
import { services } from '../shared/app/services';

app.http('messageForward', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}/forward',
  handler: whenConfigured((request, context) =>
    handleThreadMail(request, context, services().messageThread, 'forward'),
  ),
});
