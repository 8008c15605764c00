import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleMimeGet } from '../shared/messages/messageReadApi';

app.http('messageMime', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}/mime',
  handler: whenConfigured((request, context) => handleMimeGet(request, context, services().messageApi)),
});
