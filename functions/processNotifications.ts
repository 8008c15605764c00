import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { processNotification } from '../shared/watch/notifications/notificationProcessor';
import { NOTIFICATIONS_QUEUE } from '../shared/watch/notifications/notificationReceiver';

// Registered only with valid settings (configGate.ts): until then its messages wait in the queue untouched,
// instead of failing their retries into the poison queue.
if (isConfigured()) {
  app.storageQueue('processNotifications', {
    queueName: NOTIFICATIONS_QUEUE,
    connection: 'AzureWebJobsStorage',
    handler: (message, context) => processNotification(message, context, services().notificationProcessor),
  });
}
