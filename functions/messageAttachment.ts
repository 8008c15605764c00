import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleAttachmentGet } from '../shared/messages/messageReadApi';

app.http('messageAttachment', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}/messages/{id}/attachments/{attachmentId}',
  handler: whenConfigured((request, context) => handleAttachmentGet(request, context, services().messageApi)),
});
