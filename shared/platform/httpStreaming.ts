/**
 * Turns on HTTP streaming for the whole app (`@azure/functions` ≥ 4.3 on Functions host ≥ 4.28): the host forwards
 * each HTTP request to the worker as it arrives, so that `request.body` is the live stream rather than a body the host
 * buffered and copied into the worker. A large send is then read, checked and stored as it arrives instead of being
 * held whole two or three times over.
 */
import { app } from '@azure/functions';

let enabled = false;

/**
 * Enables streaming once per process: `app.setup` throws once the worker has started the app, and a host that loads
 * the function files again in the same process (the local host in tests) must not call it twice.
 */
export function enableHttpStreaming(): void {
  if (enabled) return;
  app.setup({ enableHttpStream: true });
  enabled = true;
}
