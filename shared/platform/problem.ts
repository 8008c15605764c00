/**
 * RFC 9457 problem documents: every failure the gateway answers is `application/problem+json` with `type`,
 * `title`, `status`, `detail` and extension members; never a stack trace, a token or a mail body.
 */
import type { HttpResponseInit } from '@azure/functions';

/** Base URI of the gateway's problem types. */
export const PROBLEM_TYPE_BASE = 'https://mail-gateway.dev/problems/';

/** A problem document. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

/** Builds a problem document whose `type` is `{PROBLEM_TYPE_BASE}{slug}`. */
export function problem(
  status: number,
  slug: string,
  title: string,
  detail: string,
  extensions: Record<string, unknown> = {},
): ProblemDocument {
  return { type: `${PROBLEM_TYPE_BASE}${slug}`, title, status, detail, ...extensions };
}

/** The HTTP response for a problem document, with optional extra headers (e.g. `Retry-After`). */
export function problemResponse(doc: ProblemDocument, headers: Record<string, string> = {}): HttpResponseInit {
  return {
    status: doc.status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(doc),
  };
}
