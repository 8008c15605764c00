import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { handleMailStatus } from '../shared/outbox/mailStatusHandler';
import { services } from '../shared/app/services';

app.http('mailStatus', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'mail/{id}',
  handler: whenConfigured((request, context) => handleMailStatus(request, context, services().mailStatus)),
});
