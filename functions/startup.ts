import { app } from '@azure/functions';
import { guardStorage } from '../shared/diagnostics/storageGuard';
import { getConfig } from '../shared/platform/config';
import { enableHttpStreaming } from '../shared/platform/httpStreaming';
import { REQUEST_STORAGE_CALL_MS } from '../shared/platform/storageDeadline';

// Request bodies reach the handlers as streams (see httpStreaming.ts); set before the worker asks for capabilities.
enableHttpStreaming();

// Not a function: validates every setting when the worker starts, so a missing or malformed one stops start-up
// with a message naming it instead of failing the first request.
app.hook.appStart(() => {
  getConfig();
});

// Every storage call of an HTTP function has a short time limit: 503 storage-unavailable instead of hanging while
// storage does not answer. Queue and timer triggers keep the longer per-call limit (storageDeadline.ts says why).
app.hook.preInvocation((context) => {
  if (context.invocationContext.options.trigger.type !== 'httpTrigger') return;
  context.functionHandler = guardStorage(context.functionHandler, REQUEST_STORAGE_CALL_MS);
});
