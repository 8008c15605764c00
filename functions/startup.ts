import { app } from '@azure/functions';
import { getConfig } from '../shared/platform/config';
import { enableHttpStreaming } from '../shared/platform/httpStreaming';

// Request bodies reach the handlers as streams (see httpStreaming.ts); set before the worker asks for capabilities.
enableHttpStreaming();

// Not a function: validates every setting when the worker starts, so a missing or malformed one stops start-up
// with a message naming it instead of failing the first request.
app.hook.appStart(() => {
  getConfig();
});
