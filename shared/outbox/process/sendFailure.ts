/**
 * What a failed send means for the outbox, decided from the typed failure (the {@link HttpProblem} the sender threw
 * and the {@link GraphFailure} it carries), never from the problem document's text:
 *
 * - `throttled`: Graph refused the call with 429 or 503; nothing was accepted, the mail waits out Retry-After.
 * - `dependency`: the gateway's own dependency (Key Vault, Entra ID) failed before the call went out; nothing reached
 *   Graph, the mail waits and is tried again.
 * - `rejected`: Graph refused the mail (4xx); it fails with the problem.
 * - `ambiguous`: no answer came, or a 5xx: Graph may have accepted the mail, so the next try looks for it first.
 */
import { graphFailureOf } from '../../graph/graphFailure';
import type { HttpProblem } from '../../platform/problems/httpProblem';
import type { ProblemDocument } from '../../platform/problems/problem';

/** Wait before trying again when the failure named none (Graph gave no Retry-After, or its answer was lost). */
export const DEFAULT_RETRY_MS = 30_000;

/** A failed send, classified. `requestId` is Graph's id of the call that failed, when Graph answered. */
export type SendFailure =
  | { kind: 'throttled'; retryAfterMs: number; reason: string; requestId?: string }
  | { kind: 'dependency'; retryAfterMs: number; reason: string }
  | { kind: 'rejected'; problem: ProblemDocument; requestId?: string }
  | { kind: 'ambiguous'; requestId?: string };

/** Classifies the problem a send failed with. */
export function classifySendFailure(problem: HttpProblem): SendFailure {
  const retryAfterMs = problem.retryAfterSeconds ? problem.retryAfterSeconds * 1000 : DEFAULT_RETRY_MS;
  const graph = graphFailureOf(problem);
  if (!graph) return { kind: 'dependency', retryAfterMs, reason: `${problem.slug}: ${problem.doc.detail}` };
  const { status, requestId } = graph;
  if (status === 429 || status === 503)
    return { kind: 'throttled', retryAfterMs, reason: `graph ${status}`, requestId };
  if (status >= 400 && status < 500) return { kind: 'rejected', problem: problem.doc, requestId };
  return { kind: 'ambiguous', requestId };
}
