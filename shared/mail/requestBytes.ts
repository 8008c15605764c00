/**
 * Reads a request body as bytes without the copies `arrayBuffer()` makes (undici concatenates the chunks, then
 * copies the result once more into a fresh ArrayBuffer): a body that arrives as one chunk is used as it is, and only
 * a body in several chunks is concatenated, once.
 */

/** Reads `body` to its end; `'tooLarge'` as soon as more than `limit` bytes arrived (the rest is not read). */
export async function readRequestBytes(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<Buffer | 'tooLarge'> {
  if (body === null) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      return 'tooLarge';
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return Buffer.from(chunks[0].buffer, chunks[0].byteOffset, chunks[0].byteLength);
  return Buffer.concat(chunks, size);
}
