import { app } from '@azure/functions';
import { getMailboxApiDependencies } from '../shared/platform/runtime';
import { handleMailboxes } from '../shared/watch/mailboxApi';

app.http('mailboxList', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mailboxes',
  handler: (request, context) => handleMailboxes(request, context, getMailboxApiDependencies()),
});
