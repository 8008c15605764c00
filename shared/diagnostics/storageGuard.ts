/**
 * Storage on request paths: every storage call of an HTTP invocation has a time limit (storageDeadline.ts), and a
 * storage failure that escapes its handler becomes `503 storage-unavailable` with `Retry-After` instead of a 500 or
 * a hang. Handlers that map storage failures themselves (send, mail status, mailboxes, webhooks) answer first.
 */
import type { FunctionHandler, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { GatewayConfig } from '../platform/config';
import { withStorageCallLimit } from '../platform/storage/storageDeadline';
import { storageUnavailableProblem } from '../platform/storage/storageErrors';

/**
 * `handler` with its storage calls limited to `callMs` each and storage failures answered 503; `configure` gives
 * the settings the answer names (what to fix), read only when a failure needs them.
 */
export function guardStorage(
  handler: FunctionHandler,
  callMs: number,
  configure: () => GatewayConfig,
): FunctionHandler {
  return (request: unknown, context: InvocationContext) =>
    withStorageCallLimit(callMs, async (): Promise<unknown> => {
      try {
        return await handler(request, context);
      } catch (err) {
        const failure = storageUnavailableProblem(err, configure(), 'Repeat the request once storage answers.');
        if (!failure) throw err;
        context.error(`${context.functionName}: ${failure.doc.detail}`);
        return failure.toResponse() satisfies HttpResponseInit;
      }
    });
}
