/**
 * `GET /api/problems/{slug}`: the documentation a problem document's `type` points to (RFC 9457 §3.1.1 asks
 * that a type URI, when dereferenced, give human-readable documentation). JSON by default; an HTML page when the
 * caller prefers `text/html` (a browser following the link). An unknown slug answers a 404 problem.
 */
import type { HttpResponseInit } from '@azure/functions';
import { PROBLEM_TYPE_BASE, problem, problemResponse } from './problem';
import { problemTypeEntry, type ProblemTypeEntry } from './problemCatalogue';

// Slugs are lower-case words joined by dashes; anything else is not looked up, nor repeated in the answer.
const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** The JSON documentation of one problem type. */
export interface ProblemTypeDocument extends ProblemTypeEntry {
  /** The type URI, as problem documents carry it. */
  readonly type: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/** Whether the Accept header ranks text/html above JSON (a browser's Accept does; API clients' do not). */
function prefersHtml(accept: string | null): boolean {
  if (!accept) return false;
  const quality = (type: string): number => {
    let best = 0;
    for (const part of accept.split(',')) {
      const [range, ...params] = part.trim().toLowerCase().split(';');
      if (range !== type && range !== `${type.split('/')[0]}/*`) continue;
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      best = Math.max(best, q === undefined ? 1 : Number(q) || 0);
    }
    return best;
  };
  return quality('text/html') > Math.max(quality('application/json'), quality('application/problem+json'));
}

function htmlPage(slug: string, doc: ProblemTypeDocument): string {
  const e = escapeHtml;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${e(doc.title)}</title></head><body>`,
    `<h1>${e(doc.title)}</h1>`,
    `<p><code>${e(doc.type)}</code> · HTTP ${doc.statuses.join(', ')}</p>`,
    `<h2>What it means</h2><p>${e(doc.meaning)}</p>`,
    `<h2>What to do</h2><p>${e(doc.fix)}</p>`,
    `<p>Mail gateway problem type <code>${e(slug)}</code>.</p>`,
    '</body></html>',
  ].join('\n');
}

/** The answer to `GET /api/problems/{slug}` with the request's Accept header. */
export function problemTypeResponse(slug: string | undefined, accept: string | null): HttpResponseInit {
  const entry = slug !== undefined && SLUG.test(slug) ? problemTypeEntry(slug) : undefined;
  if (!slug || !entry) {
    return problemResponse(
      problem(
        404,
        'problem-type-unknown',
        'No such problem type',
        slug && SLUG.test(slug) && slug.length <= 64
          ? `The gateway has no problem type '${slug}'.`
          : 'The gateway has no problem type of that name.',
      ),
    );
  }
  const doc: ProblemTypeDocument = { type: `${PROBLEM_TYPE_BASE}${slug}`, ...entry };
  // The documentation changes only with a new version of the gateway.
  const headers = { 'cache-control': 'public, max-age=3600', vary: 'Accept' };
  if (prefersHtml(accept)) {
    return {
      status: 200,
      headers: {
        ...headers,
        'content-type': 'text/html; charset=utf-8',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'none'",
      },
      body: htmlPage(slug, doc),
    };
  }
  return { status: 200, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(doc) };
}
