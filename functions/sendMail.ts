import { app } from '@azure/functions';
import { handleSendMail } from '../shared/mail/sendMailHandler';
import { getSendMailDependencies } from '../shared/platform/runtime';

app.http('sendMail', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'mail/send',
  handler: (request, context) => handleSendMail(request, context, getSendMailDependencies()),
});
