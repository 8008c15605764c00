import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { OUTBOX_PACED_QUEUE } from '../shared/outbox/store/outboxStore';
import { handleOutboxMessage } from '../shared/outbox/process/outboxTrigger';
import { services } from '../shared/app/services';

// The same work as sendOutbox, for mails back at their pacer slot (see OUTBOX_PACED_QUEUE).
// Registered only with valid settings (configGate.ts): until then its messages wait in the queue untouched,
// instead of failing their retries into the poison queue.
if (isConfigured()) {
  app.storageQueue('sendOutboxPaced', {
    queueName: OUTBOX_PACED_QUEUE,
    connection: 'AzureWebJobsStorage',
    handler: (message, context) => handleOutboxMessage(message, context, services().outboxProcessor),
  });
}
