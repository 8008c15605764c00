import { app } from '@azure/functions';
import { isConfigured } from '../shared/platform/configGate';
import { renewalScheduleSetting } from '../shared/platform/config';
import { services } from '../shared/app/services';
import { runScheduledMaintenance } from '../shared/app/housekeeping';

// Registered only with valid settings (configGate.ts): unregistered, the timer never fires into a failure, and a
// malformed RENEWAL_SCHEDULE is reported by /api/health instead of stopping the host.
if (isConfigured()) {
  app.timer('renewSubscriptions', {
    schedule: renewalScheduleSetting(),
    handler: async (_timer, context) => {
      await runScheduledMaintenance(context, services().maintenance);
    },
  });
}
