import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { scheduleDueReads } from '../shared/watch/delta/mailboxPoll';

// Every 5 s it only finds the folders whose read is due (POLL_INTERVAL_SECONDS is at least 15), so a poll starts at
// most 5 s late; the reads themselves run in pollMailbox on any instance.
if (isConfigured()) {
  app.timer('pollMailboxes', {
    schedule: '*/5 * * * * *',
    handler: async (_timer, context) => {
      await scheduleDueReads(context, services().pollScheduler);
    },
  });
}
