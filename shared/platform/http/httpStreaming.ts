/**
 * Turns on HTTP streaming for the whole app (`@azure/functions` ≥ 4.3 on Functions host ≥ 4.28): the host forwards
 * each HTTP request to the worker as it arrives, so that `request.body` is the live stream rather than a body the host
 * buffered and copied into the worker. A large send is then read, checked and stored as it arrives instead of being
 * held whole two or three times over. Streamed answers are paced by the host's connection (responseBackpressure.ts).
 */
import { app } from '@azure/functions';
import { installResponseBackpressure } from './responseBackpressure';

let enabled = false;

/**
 * Enables streaming once per process. `app.setup` throws once the worker has started the app; the Functions host loads
 * the function files once, before that, but a host that loads them again in the same process (the local host, in
 * tests) finds the library already started, with streaming as the first load set it, so that refusal is not an error.
 */
export function enableHttpStreaming(): void {
  if (enabled) return;
  installResponseBackpressure();
  try {
    app.setup({ enableHttpStream: true });
  } catch (err) {
    if (!(err instanceof Error && /after app startup has finished/.test(err.message))) throw err;
  }
  enabled = true;
}
