/**
 * Bytes from Graph answered as they arrive: Graph's `$value` stream becomes the response body untouched (the host
 * streams HTTP responses, shared/platform/http/httpStreaming.ts), with the type, length and an RFC 6266 file name.
 */
import type { HttpResponseInit } from '@azure/functions';
import { pacedBody } from '../platform/http/responseBackpressure';
import type { GraphStream } from './messageGraph';

/**
 * `Content-Disposition: attachment` naming `fileName`: an ASCII `filename` for old clients and the exact name as
 * UTF-8 in `filename*` (RFC 6266 §4.3, RFC 8187). Written here rather than with the `content-disposition` package
 * because the gateway needs only this one form and the package is not one of its dependencies.
 */
export function contentDisposition(fileName: string): string {
  // Control characters and path separators never belong in a saved file's name.
  const clean =
    [...fileName]
      .map((c) => (c.charCodeAt(0) < 0x20 || c === '\u007f' || c === '/' || c === '\\' ? '_' : c))
      .join('')
      .trim() || 'attachment';
  const fallback = clean.replace(/[^\u0020-\u007e]|["%]/g, '_');
  if (fallback === clean) return `attachment; filename="${clean}"`;
  const encoded = encodeURIComponent(clean).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/**
 * A 200 streaming `stream`'s body as `contentType`, saved as `fileName`, read from Graph only as fast as the
 * invocation's connection to the host takes it.
 */
export function streamedAnswer(
  stream: GraphStream,
  contentType: string,
  fileName: string,
  invocationId: string,
): HttpResponseInit {
  const headers: Record<string, string> = {
    'content-type': contentType,
    'content-disposition': contentDisposition(fileName),
    'x-content-type-options': 'nosniff',
    // Mail content: no shared cache on the way may keep a copy.
    'cache-control': 'private, no-store',
  };
  if (stream.contentLength !== null) headers['content-length'] = String(stream.contentLength);
  return { status: 200, headers, body: pacedBody(stream.body, invocationId) };
}
