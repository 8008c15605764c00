import { app } from '@azure/functions';
import { getProcessorDependencies } from '../shared/platform/runtime';
import { processNotification } from '../shared/watch/notificationProcessor';
import { NOTIFICATIONS_QUEUE } from '../shared/watch/notificationReceiver';

app.storageQueue('processNotifications', {
  queueName: NOTIFICATIONS_QUEUE,
  connection: 'AzureWebJobsStorage',
  handler: (message, context) => processNotification(message, context, getProcessorDependencies()),
});
