/**
 * What the emulator remembers about each request, for test assertions and the sandbox's request view. Secrets never
 * get in: the Authorization header is reduced to a flag, and credential-like query parameters are masked.
 */

/** One request the emulator answered. */
export interface SeenRequest {
  /** Upper-case method. */
  method: string;
  /** Path without the query string, as sent (e.g. `/v1.0/users/a@contoso.com/messages`). */
  path: string;
  /** Query parameters, decoded; credential-like values masked. */
  query: Record<string, string>;
  /** User id of the mailbox or user the path names, once resolved. */
  mailbox?: string;
  /** App id from the token, when the token was valid. */
  appId?: string;
  status: number;
  /** Graph error code of the answer, when it was an error. */
  errorCode?: string;
  clientRequestId: string;
  requestId: string;
  hadAuthorization: boolean;
  startedAt: Date;
  /** `startedAt` to a fraction of a millisecond (`performance.timeOrigin + performance.now()`). */
  startedAtMs: number;
  /** From the request's arrival to its answer being ready (before it is written), to a fraction of a millisecond. */
  durationMs: number;
  /** An item of a `$batch` (the batch itself is logged too, as one HTTP request). */
  batched?: boolean;
}

// Upload-session and similar pre-authenticated URLs carry their credential in the query.
const SECRET_PARAMETER = /^(token|sig|signature|code|secret|client_secret|access_token|authtoken|key)$/i;

/** Query parameters of `url` with credential-like values masked. */
export function loggableQuery(url: URL): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = SECRET_PARAMETER.test(name) ? '***' : value;
  }
  return query;
}
