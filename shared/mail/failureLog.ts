/**
 * The one log line of a failed send, the same whether the HTTP handler refused the request or the outbox processor
 * got Graph's refusal: the mailbox, the problem type, Graph's code and ids, and the cause. The problem's detail is
 * built from Graph's and Azure's answers and the field names, never from the subject or body.
 */
import { redactSecrets } from '../diagnostics/logSafe';
import type { ProblemDocument } from '../platform/problem';

/** `send failed for <mailbox>: <status> <type>; graph code …, request-id …, client-request-id …; cause: <detail>`. */
export function failureLogLine(doc: ProblemDocument, mailbox: string | undefined): string {
  const graph = (doc.graph ?? {}) as { code?: string; requestId?: string; clientRequestId?: string };
  const clientRequestId = graph.clientRequestId ?? (doc.clientRequestId as string | undefined);
  return redactSecrets(
    `send failed for ${mailbox ?? '-'}: ${doc.status} ${doc.type.split('/').pop() ?? ''}; ` +
      `graph code ${graph.code ?? '-'}, request-id ${graph.requestId ?? '-'}, client-request-id ${clientRequestId ?? '-'}; ` +
      `cause: ${doc.detail}`,
  );
}
