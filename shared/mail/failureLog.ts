/**
 * The one log line of a failed send, the same whether the HTTP handler refused the request or the outbox processor
 * got Graph's refusal: the mailbox, the problem type, Graph's code and ids, and the cause. The problem's detail is
 * built from Graph's and Azure's answers and the field names, never from the subject or body; but field names, keys
 * and header values come from the caller, so every part goes through `logValue`: a newline in them shows as `\n`
 * instead of starting a forged line, and a 255 KB key cannot make a 255 KB line.
 */
import { logValue, redactSecrets } from '../platform/logSafe';
import type { ProblemDocument } from '../platform/problems/problem';

/** How many characters of a problem's detail a failure line quotes (ten field problems, each cut, fit). */
const LOGGED_DETAIL_MAX_CHARS = 4000;

/**
 * `send failed for <mailbox>: <status> <type>; graph code …, request-id …, client-request-id …; cause: <detail>`.
 * `detail` replaces the problem's own when the caller has one made for the log (values cut one by one).
 */
export function failureLogLine(doc: ProblemDocument, mailbox: string | undefined, detail = doc.detail): string {
  const graph = (doc.graph ?? {}) as { code?: string; requestId?: string; clientRequestId?: string };
  const clientRequestId = graph.clientRequestId ?? (doc.clientRequestId as string | undefined);
  const value = (v: string | undefined) => (v === undefined ? '-' : logValue(v));
  return (
    `send failed for ${value(mailbox)}: ${doc.status} ${value(doc.type.split('/').pop())}; ` +
    `graph code ${value(graph.code)}, request-id ${value(graph.requestId)}, client-request-id ${value(clientRequestId)}; ` +
    // Redacted before it is cut, so that a cut cannot leave half a token the redaction no longer recognises.
    `cause: ${logValue(redactSecrets(detail), LOGGED_DETAIL_MAX_CHARS)}`
  );
}
