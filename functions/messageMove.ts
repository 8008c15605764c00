import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleMessageMove } from '../shared/messages/messageActionApi';

app.http('messageMove', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}/move',
  handler: whenConfigured((request, context) => handleMessageMove(request, context, services().messageApi)),
});
