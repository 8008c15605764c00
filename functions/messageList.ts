import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleMessageList } from '../shared/messages/messageReadApi';

app.http('messageList', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages',
  handler: whenConfigured((request, context) => handleMessageList(request, context, services().messageApi)),
});
