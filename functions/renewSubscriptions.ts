import { app } from '@azure/functions';
import { renewalScheduleSetting } from '../shared/platform/config';
import { getRenewalDependencies } from '../shared/platform/runtime';
import { runRenewal } from '../shared/watch/renewalTimer';

app.timer('renewSubscriptions', {
  schedule: renewalScheduleSetting(),
  handler: async (_timer, context) => {
    await runRenewal(context, getRenewalDependencies());
  },
});
