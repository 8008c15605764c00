import { app } from '@azure/functions';
import { OUTBOX_PACED_QUEUE } from '../shared/outbox/outboxStore';
import { handleOutboxMessage } from '../shared/outbox/outboxTrigger';
import { getOutboxDependencies } from '../shared/platform/runtime';

// The same work as sendOutbox, for mails back at their pacer slot (see OUTBOX_PACED_QUEUE).
app.storageQueue('sendOutboxPaced', {
  queueName: OUTBOX_PACED_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: (message, context) => handleOutboxMessage(message, context, getOutboxDependencies()),
});
