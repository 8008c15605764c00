import { app } from '@azure/functions';
import { services } from '../shared/app/services';
import { guardStorage } from '../shared/diagnostics/storageGuard';
import { configurationProblems } from '../shared/platform/config';
import { enableHttpStreaming } from '../shared/platform/http/httpStreaming';
import { REQUEST_STORAGE_CALL_MS } from '../shared/platform/storage/storageDeadline';

// Request bodies reach the handlers as streams (see httpStreaming.ts); set before the worker asks for capabilities.
enableHttpStreaming();

// Not a function: validates every setting when the worker starts and logs each bad one by name. It does not stop
// start-up: a host that never starts shows an operator nothing, while a running one answers /api/health and every
// function with 503 configuration-invalid naming the settings, and leaves the queues alone (configGate.ts).
app.hook.appStart(() => {
  const problems = configurationProblems();
  if (problems.length > 0) {
    console.error(
      `Invalid configuration: every function answers 503 configuration-invalid, and the queue and timer functions ` +
        `are not registered (queued messages wait) until these app settings are fixed:\n  - ${problems.join('\n  - ')}`,
    );
  }
});

// Every storage call of an HTTP function has a short time limit: 503 storage-unavailable instead of hanging while
// storage does not answer. Queue and timer triggers keep the longer per-call limit (storageDeadline.ts says why).
app.hook.preInvocation((context) => {
  if (context.invocationContext.options.trigger.type !== 'httpTrigger') return;
  context.functionHandler = guardStorage(context.functionHandler, REQUEST_STORAGE_CALL_MS, () => services().config);
});
