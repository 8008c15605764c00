import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { readDueFolder } from '../shared/watch/delta/mailboxPoll';
import { MAILBOX_POLL_QUEUE } from '../shared/watch/delta/pollMessages';

// Registered only with valid settings (configGate.ts), like processNotifications.
if (isConfigured()) {
  app.storageQueue('pollMailbox', {
    queueName: MAILBOX_POLL_QUEUE,
    connection: 'AzureWebJobsStorage',
    handler: async (message, context) => {
      await readDueFolder(message, context, services().pollReader);
    },
  });
}
