/**
 * Problem `type` URIs are dereferenceable where the gateway runs: every `type` an answer carries, resolved against
 * the answer's URL (RFC 9457 §3.1.1), is `GET /api/problems/{slug}` on the same gateway, anonymous, documenting the
 * type in JSON or, for a browser, HTML; an unknown type is a 404 problem.
 */
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { PROBLEM_CATALOGUE, type ProblemSlug } from '../../shared/platform/problems/problemCatalogue';

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 0, max: 0 } } });
  host = await startFunctionsHost(env.settings);
  gateway = gatewayClient(host);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/** A real problem answer: its URL and body. */
function problemAnswer(res: GatewayAnswer): { url: string; type: string; status: number } {
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const body = res.body as { type: string; status: number };
  return { url: res.url, type: body.type, status: body.status };
}

describe('GET /api/problems/{slug}', () => {
  it('documents the type of real answers: their type, resolved against the answer URL, is served without a key', async () => {
    const answers = [
      problemAnswer(await gateway.send({ from: 5, to: ['a@example.com'] })),
      problemAnswer(await gateway.send('hello', { headers: { 'content-type': 'text/plain' } })),
      problemAnswer(await gateway.status('00000000-0000-4000-8000-000000000000')),
    ];
    expect(answers.map((a) => [a.status, a.type])).toEqual([
      [400, '/api/problems/validation'],
      [415, '/api/problems/unsupported-media-type'],
      [404, '/api/problems/mail-not-found'],
    ]);
    for (const answer of answers) {
      const docUrl = new URL(answer.type, answer.url);
      expect(docUrl.origin).toBe(new URL(host.url).origin);
      const res = await fetch(docUrl); // no key
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      const slug = answer.type.split('/').pop() as ProblemSlug;
      const doc = (await res.json()) as Record<string, unknown>;
      expect(doc).toEqual({ type: answer.type, ...PROBLEM_CATALOGUE[slug] });
      expect(doc.statuses).toContain(answer.status);
      expect(String(doc.meaning).length).toBeGreaterThan(20);
      expect(String(doc.fix).length).toBeGreaterThan(10);
    }
  });

  it('serves an HTML page to a browser, with the title, the meaning and the fix escaped', async () => {
    const res = await fetch(`${host.url}/api/problems/sender-not-allowed`, { headers: { accept: BROWSER_ACCEPT } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('vary')).toBe('Accept');
    const html = await res.text();
    const entry = PROBLEM_CATALOGUE['sender-not-allowed'];
    const escaped = (text: string) =>
      text
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/"/g, '&quot;')
        .replace(/'/g, '&#39;');
    expect(entry.meaning).toContain("'"); // so the escaping is seen
    expect(html).toContain(`<h1>${escaped(entry.title)}</h1>`);
    expect(html).toContain(escaped(entry.meaning));
    expect(html).toContain(escaped(entry.fix));
    expect(html).not.toContain(entry.meaning);
    // JSON stays the answer for API clients, and when JSON ranks above HTML.
    const json = await fetch(`${host.url}/api/problems/sender-not-allowed`, {
      headers: { accept: 'application/json, text/html;q=0.5' },
    });
    expect(json.headers.get('content-type')).toBe('application/json');
  });

  it.each([
    ['an unknown slug', 'no-such-type', "The gateway has no problem type 'no-such-type'."],
    [
      'a slug that is not a name',
      '%3Cscript%3Ealert(1)%3C%2Fscript%3E',
      'The gateway has no problem type of that name.',
    ],
    ['an inherited property name', 'constructor', "The gateway has no problem type 'constructor'."],
  ])('answers %s with a 404 problem that does not repeat it', async (_what, slug, detail) => {
    const res = await fetch(`${host.url}/api/problems/${slug}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toEqual({
      type: '/api/problems/problem-type-unknown',
      title: 'No such problem type',
      status: 404,
      detail,
    });
  });
});
