import { app } from '@azure/functions';
import { getConfig } from '../shared/platform/config';

// Not a function: validates every setting when the worker starts, so a missing or malformed one stops start-up
// with a message naming it instead of failing the first request.
app.hook.appStart(() => {
  getConfig();
});
