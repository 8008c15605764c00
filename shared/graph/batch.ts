/**
 * JSON batching (`POST /$batch`): up to 20 requests per batch, results per item. Graph does not retry items that
 * were throttled inside a successful batch (nor does the SDK), so this resends the 429 items after the longest
 * `Retry-After` they carry, within a time budget.
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import { forEachLimited } from '../platform/concurrency';

/** Graph's limit of requests per batch. */
export const MAX_BATCH_ITEMS = 20;

/** One request of a batch. */
export interface BatchRequest {
  /** Unique within the call. */
  id: string;
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Relative to the version root, e.g. `/subscriptions/{id}`. */
  url: string;
  body?: unknown;
}

/** One item's answer. */
export interface BatchResponse {
  id: string;
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Options of {@link sendBatches}. */
export interface BatchOptions {
  /** Longest total time spent waiting for throttled items (default 60 s); past it they keep their 429. */
  maxWaitMs?: number;
  /** Batches in flight at once (default 4). */
  concurrency?: number;
}

interface RawBatchResponse {
  responses?: Array<{ id: string; status: number; headers?: Record<string, string>; body?: unknown }>;
}

/**
 * Sends `requests` in batches of {@link MAX_BATCH_ITEMS} and returns every item's final answer by id. Counts the
 * HTTP requests it made in `stats.graphRequests` when given.
 */
export async function sendBatches(
  client: Client,
  requests: readonly BatchRequest[],
  options: BatchOptions = {},
  stats: { graphRequests: number } = { graphRequests: 0 },
): Promise<Map<string, BatchResponse>> {
  const results = new Map<string, BatchResponse>();
  const deadline = Date.now() + (options.maxWaitMs ?? 60_000);
  let pending = [...requests];
  while (pending.length > 0) {
    const chunks: BatchRequest[][] = [];
    for (let i = 0; i < pending.length; i += MAX_BATCH_ITEMS) chunks.push(pending.slice(i, i + MAX_BATCH_ITEMS));
    await forEachLimited(chunks, options.concurrency ?? 4, async (chunk) => {
      stats.graphRequests++;
      let answer: RawBatchResponse;
      try {
        answer = (await client.api('/$batch').post({
          requests: chunk.map((r) => ({
            id: r.id,
            method: r.method,
            url: r.url,
            ...(r.body === undefined ? {} : { body: r.body, headers: { 'content-type': 'application/json' } }),
          })),
        })) as RawBatchResponse;
      } catch (err) {
        // The batch as a whole failed (after the client's own retries): every item in it failed the same way.
        const failure = err as { statusCode?: number; code?: string | null; message?: string };
        for (const r of chunk) {
          results.set(r.id, {
            id: r.id,
            status: failure.statusCode && failure.statusCode > 0 ? failure.statusCode : 502,
            headers: {},
            body: { error: { code: failure.code ?? 'BatchFailed', message: failure.message ?? String(err) } },
          });
        }
        return;
      }
      for (const item of answer.responses ?? []) {
        results.set(item.id, { id: item.id, status: item.status, headers: lowerKeys(item.headers), body: item.body });
      }
    });
    const throttled = pending.filter((r) => results.get(r.id)?.status === 429);
    if (throttled.length === 0) break;
    const waitMs = Math.max(...throttled.map((r) => retryAfterMs(results.get(r.id)!.headers)));
    if (Date.now() + waitMs > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    pending = throttled;
  }
  return results;
}

function retryAfterMs(headers: Record<string, string>): number {
  const seconds = Number(headers['retry-after']);
  // Without Retry-After, Graph's guidance is to back off; a few seconds is the usual first step.
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 5_000;
}

function lowerKeys(headers: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
}
