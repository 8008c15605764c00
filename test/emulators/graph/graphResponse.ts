/**
 * The emulator's request and response values. Routes build responses with these helpers instead of writing to a
 * socket, so the same pipeline can later serve `$batch` items, which never touch HTTP on their own.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** A request as the pipeline sees it: already read from the socket (or taken from a `$batch` body). */
export interface EmulatedRequest {
  method: string;
  /** Path and query, e.g. `/v1.0/users/x/messages?$top=5`. */
  url: string;
  /** Header names in lower case, as Node delivers them. */
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Code and message of a Graph error; the pipeline adds `innerError` (date and request ids) when it answers. */
export interface GraphErrorInfo {
  code: string;
  message: string;
}

/** A response before the pipeline stamps the common headers on it. */
export interface GraphResponse {
  status: number;
  headers: Record<string, string>;
  body?: Buffer;
  /**
   * A body sent in chunks as they come (attachment and MIME `$value`), instead of {@link body}; the socket writer
   * sets no Content-Length unless the route put one in {@link headers}.
   */
  stream?: AsyncIterable<Buffer>;
  /** When set, the body is rendered as Graph's error shape with this code and message. */
  error?: GraphErrorInfo;
}

/** A response as it leaves the pipeline: common headers stamped, error bodies rendered. */
export interface FinishedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** A streamed body (then {@link body} is empty); `$batch` collects it, the HTTP server writes it chunk by chunk. */
  stream?: AsyncIterable<Buffer>;
}

/** The whole body of a finished response, collecting a streamed one. */
export async function collectBody(response: FinishedResponse): Promise<Buffer> {
  if (!response.stream) return response.body;
  const chunks: Buffer[] = [];
  for await (const chunk of response.stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The error body Graph sends (concepts/errors.md). */
export interface GraphErrorBody {
  error: {
    code: string;
    message: string;
    innerError: { date: string; 'request-id': string; 'client-request-id': string };
  };
}

/** Thrown anywhere below a route handler to answer with a Graph error instead of a 500. */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GraphError';
  }
}

/** Graph's content type for OData JSON payloads; clients must not depend on the parameters, but real ones see them. */
export const ODATA_JSON =
  'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

/** A JSON response. */
export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): GraphResponse {
  return {
    status,
    headers: { 'content-type': ODATA_JSON, 'odata-version': '4.0', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  };
}

/** A response without a body (202 for sendMail, 204 for deletes). */
export function emptyResponse(status: number, headers: Record<string, string> = {}): GraphResponse {
  return { status, headers: { ...headers } };
}

/** A Graph error response. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): GraphResponse {
  return { status, headers: { ...headers }, error: { code, message } };
}

/** The error response for a thrown {@link GraphError}. */
export function fromGraphError(err: GraphError): GraphResponse {
  return errorResponse(err.status, err.code, err.message, err.headers);
}

/** Graph's `innerError.date` format: UTC, seconds precision, no zone designator. */
export function graphDate(now: Date = new Date()): string {
  return now.toISOString().slice(0, 19);
}

/** Renders the error body with the ids the client will also see in the headers. */
export function renderErrorBody(
  error: GraphErrorInfo,
  ids: { requestId: string; clientRequestId: string },
  now: Date,
): GraphErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      innerError: { date: graphDate(now), 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId },
    },
  };
}
