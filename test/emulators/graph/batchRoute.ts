/**
 * `POST /$batch` (concepts/json-batching.md): up to 20 requests, each run through the whole pipeline (token, faults,
 * throttling) with the batch's Authorization header, at most 4 at a time as Outlook does. Items fail one by one
 * inside a 200 answer; an item whose `dependsOn` failed answers 424 without running.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { collectBody, GraphError, type FinishedResponse } from './graphResponse';
import type { GraphRequestContext, GraphRoute } from './router';

/** Graph's limit of requests per batch. */
export const MAX_BATCH_REQUESTS = 20;
/** Items of one batch Outlook runs at once. */
export const BATCH_CONCURRENCY = 4;

interface BatchItem {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: unknown;
  dependsOn: string[];
}

interface BatchAnswer {
  id: string;
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

/** The `$batch` route. */
export function batchRoutes(): GraphRoute[] {
  return [{ method: 'POST', path: '/$batch', roles: [], mailbox: false, handler: (ctx) => batch(ctx) }];
}

async function batch(ctx: GraphRequestContext) {
  const items = parseBatch(ctx.readJson());
  const answers = new Map<string, Promise<BatchAnswer>>();
  const finished: BatchAnswer[] = [];
  let running = 0;
  const slotWaiters: Array<() => void> = [];
  const acquire = async () => {
    while (running >= BATCH_CONCURRENCY) await new Promise<void>((r) => slotWaiters.push(r));
    running++;
  };
  const releaseSlot = () => {
    running--;
    slotWaiters.shift()?.();
  };

  for (const item of items) {
    answers.set(
      item.id,
      (async (): Promise<BatchAnswer> => {
        const dependencies = await Promise.all(item.dependsOn.map((d) => answers.get(d) as Promise<BatchAnswer>));
        const failed = dependencies.find((d) => d.status < 200 || d.status >= 300);
        if (failed) {
          // Graph's code for a dependency that failed; the message text is the emulator's.
          return {
            id: item.id,
            status: 424,
            headers: { 'content-type': 'application/json' },
            body: {
              error: { code: 'FailedDependency', message: `The request it depends on ('${failed.id}') failed.` },
            },
          };
        }
        await acquire();
        try {
          const response = await ctx.dispatch(innerRequest(item, ctx));
          return answerOf(item.id, { ...response, body: await collectBody(response) });
        } finally {
          releaseSlot();
        }
      })().then((answer) => {
        finished.push(answer);
        return answer;
      }),
    );
  }
  await Promise.all(answers.values());
  // In completion order, as Graph's may be: clients must match answers by id.
  return ctx.json(200, { responses: finished });
}

function innerRequest(item: BatchItem, ctx: GraphRequestContext) {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(item.headers)) headers[name.toLowerCase()] = value;
  const authorization = ctx.header('authorization');
  if (authorization !== undefined) headers.authorization = authorization;
  let body = Buffer.alloc(0);
  if (item.body !== undefined) {
    body = Buffer.from(typeof item.body === 'string' ? item.body : JSON.stringify(item.body), 'utf8');
    headers['content-type'] ??= 'application/json';
  }
  const path = item.url.replace(/^\/+/, '');
  return { method: item.method, url: `/v1.0/${path}`, headers, body };
}

function answerOf(id: string, response: FinishedResponse): BatchAnswer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (name !== 'date' && name !== 'x-ms-ags-diagnostic') headers[name] = value;
  }
  const answer: BatchAnswer = { id, status: response.status, headers };
  if (response.body.length > 0) {
    const text = response.body.toString('utf8');
    // JSON bodies are embedded as objects; anything else as base64, as Graph does.
    answer.body = /json/i.test(headers['content-type'] ?? '')
      ? (JSON.parse(text) as unknown)
      : response.body.toString('base64');
  }
  return answer;
}

function parseBatch(value: unknown): BatchItem[] {
  const requests = (value as { requests?: unknown } | null)?.requests;
  if (!Array.isArray(requests)) {
    throw new GraphError(400, 'BadRequest', "Invalid batch payload format: the body needs a 'requests' array.");
  }
  if (requests.length === 0) throw new GraphError(400, 'BadRequest', 'The batch contains no requests.');
  if (requests.length > MAX_BATCH_REQUESTS) {
    // concepts/json-batching.md: at most 20 individual requests; Graph's exact text is not documented.
    throw new GraphError(
      400,
      'BadRequest',
      `The batch contains ${requests.length} requests; the limit is ${MAX_BATCH_REQUESTS}.`,
    );
  }
  const seen = new Set<string>();
  return requests.map((raw: unknown, index): BatchItem => {
    const r = (raw ?? {}) as Record<string, unknown>;
    const where = `request ${index + 1}`;
    if (typeof r.id !== 'string' || r.id === '') throw new GraphError(400, 'BadRequest', `The ${where} has no id.`);
    if (seen.has(r.id)) throw new GraphError(400, 'BadRequest', `The batch has two requests with id '${r.id}'.`);
    if (typeof r.method !== 'string' || !/^(GET|POST|PATCH|PUT|DELETE)$/i.test(r.method)) {
      throw new GraphError(400, 'BadRequest', `The ${where} ('${r.id}') has no valid method.`);
    }
    if (typeof r.url !== 'string' || r.url === '' || /^[a-z]+:\/\//i.test(r.url)) {
      throw new GraphError(400, 'BadRequest', `The ${where} ('${r.id}') needs a relative url.`);
    }
    const headers: Record<string, string> = {};
    if (r.headers !== undefined) {
      if (!r.headers || typeof r.headers !== 'object')
        throw new GraphError(400, 'BadRequest', `The ${where} has invalid headers.`);
      for (const [k, v] of Object.entries(r.headers)) headers[k] = String(v);
    }
    const dependsOn = r.dependsOn === undefined ? [] : r.dependsOn;
    if (!Array.isArray(dependsOn) || dependsOn.some((d) => typeof d !== 'string' || !seen.has(d))) {
      throw new GraphError(
        400,
        'BadRequest',
        `The ${where} ('${r.id}') depends on a request that does not come before it.`,
      );
    }
    seen.add(r.id);
    return {
      id: r.id,
      method: r.method.toUpperCase(),
      url: r.url,
      headers,
      body: r.body,
      dependsOn: dependsOn as string[],
    };
  });
}
