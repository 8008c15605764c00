/**
 * Reads a webhook POST's body (and the mailbox API's small PUT body) as it streams in (the app runs with HTTP
 * streaming: `request.body` is the live stream), counting bytes against a cap and stopping at the first chunk past
 * it, so that a body without Content-Length that
 * never ends costs the cap and no more. The stream is released, not cancelled: cancelling would tear down the exchange
 * the 413 is written on, and the host stops forwarding what the handler no longer reads.
 */

/** What reading the body found. */
export type WebhookBodyRead =
  | { kind: 'read'; bytes: Buffer }
  | { kind: 'tooLarge' }
  /** The stream failed: the client went away before its body arrived. */
  | { kind: 'clientGone'; cause: unknown };

/** Reads `body` up to `limit` bytes (see the module comment). */
export async function readWebhookBody(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<WebhookBodyRead> {
  if (body === null) return { kind: 'read', bytes: Buffer.alloc(0) };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      let value: Uint8Array | undefined;
      try {
        ({ value } = await reader.read());
      } catch (cause) {
        return { kind: 'clientGone', cause };
      }
      if (value === undefined) break;
      size += value.byteLength;
      if (size > limit) return { kind: 'tooLarge' };
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return { kind: 'read', bytes: Buffer.concat(chunks, size) };
}
