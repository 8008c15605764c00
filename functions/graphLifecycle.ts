import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { services } from '../shared/app/services';
import { withStorageDeadline, WEBHOOK_STORAGE_DEADLINE_MS } from '../shared/platform/storage/storageDeadline';
import { receiveGraphNotifications } from '../shared/watch/notifications/notificationReceiver';

// Anonymous because Graph calls it without a key; every item is checked against its subscription's clientState.
// Its storage calls end early enough for the 503 to reach Graph inside its 3 s (Graph then retries).
app.http('graphLifecycle', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'graph/lifecycle',
  handler: whenConfigured((request, context) =>
    withStorageDeadline(WEBHOOK_STORAGE_DEADLINE_MS, () =>
      receiveGraphNotifications(request, context, services().notificationReceiver),
    ),
  ),
});
