import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { handleSendMail } from '../shared/outbox/accept/sendMailHandler';
import { services } from '../shared/app/services';

app.http('sendMail', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'mail/send',
  handler: whenConfigured((request, context) => handleSendMail(request, context, services().sendMail)),
});
