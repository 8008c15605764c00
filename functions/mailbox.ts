import { app } from '@azure/functions';
import { getMailboxApiDependencies } from '../shared/platform/runtime';
import { handleMailboxes } from '../shared/watch/mailboxApi';

app.http('mailbox', {
  methods: ['GET', 'PUT', 'DELETE'],
  authLevel: 'function',
  route: 'mailboxes/{mailbox}',
  handler: (request, context) => handleMailboxes(request, context, getMailboxApiDependencies()),
});
