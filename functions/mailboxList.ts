import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { handleMailboxes } from '../shared/watch/mailboxApi';

app.http('mailboxList', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mailboxes',
  handler: whenConfigured((request, context) => handleMailboxes(request, context, services().mailboxApi)),
});
