/**
 * RFC 9457 problem documents: every failure the gateway answers is `application/problem+json` with `type`,
 * `title`, `status`, `detail` and extension members; never a stack trace, a token or a mail body.
 */
import type { HttpResponseInit } from '@azure/functions';
import type { ProblemSlug } from './problemCatalogue';

/**
 * Base of the gateway's problem type URIs: a relative reference with the full path, which resolves against the
 * answer's own URL to `GET /api/problems/{slug}` on the gateway that answered (it documents the type there). RFC 9457
 * §3.1.1 allows relative type URIs and asks that they carry the full path; an absolute one would need the public
 * host name, which problems built away from a request (the outbox) do not know.
 */
export const PROBLEM_TYPE_BASE = '/api/problems/';

/** A problem document. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

/** Builds a problem document whose `type` is `{PROBLEM_TYPE_BASE}{slug}`; `slug` must be in the catalogue. */
export function problem(
  status: number,
  slug: ProblemSlug,
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
