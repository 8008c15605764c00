import { app } from '@azure/functions';
import { OUTBOX_QUEUE } from '../shared/outbox/outboxStore';
import { handleOutboxMessage } from '../shared/outbox/outboxTrigger';
import { getOutboxDependencies } from '../shared/platform/runtime';

app.storageQueue('sendOutbox', {
  queueName: OUTBOX_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: (message, context) => handleOutboxMessage(message, context, getOutboxDependencies()),
});
