import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { getReceiverDependencies } from '../shared/platform/runtime';
import { receiveGraphNotifications } from '../shared/watch/notificationReceiver';

// Anonymous because Graph calls it without a key; every item is checked against its subscription's clientState.
app.http('graphNotifications', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'graph/notifications',
  handler: whenConfigured((request, context) => receiveGraphNotifications(request, context, getReceiverDependencies())),
});
