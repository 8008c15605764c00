import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { OUTBOX_QUEUE } from '../shared/outbox/store/outboxStore';
import { handleOutboxMessage } from '../shared/outbox/process/outboxTrigger';
import { services } from '../shared/app/services';

// Registered only with valid settings (configGate.ts): until then its messages wait in the queue untouched,
// instead of failing their retries into the poison queue.
if (isConfigured()) {
  app.storageQueue('sendOutbox', {
    queueName: OUTBOX_QUEUE,
    connection: 'AzureWebJobsStorage',
    handler: (message, context) => handleOutboxMessage(message, context, services().outboxProcessor),
  });
}
