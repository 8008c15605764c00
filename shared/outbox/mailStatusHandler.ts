/**
 * `GET /api/mail/{id}`: the outbox record of one mail as its status document: status (`queued`, `scheduled`,
 * `deferred` with `notBefore` and the reason, `sending`, `sent`, `failed`), attempts, timestamps, Graph
 * `request-id`s, the problem on failure, the non-delivery reports that came back (`bounces`), and for a reply or forward what it answered and its conversation. Never the
 * subject, body or recipients.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { logValue } from '../platform/logSafe';
import { storageDependencyProblem } from '../mail/dependencyProblems';
import type { GatewayConfig } from '../platform/config';
import { problem, problemResponse } from '../platform/problems/problem';
import { OUTBOX_TABLE, threadFacts, type OutboxRecord, type OutboxStore } from './store/outboxStore';

/** What the handler needs. */
export interface MailStatusDependencies {
  config: GatewayConfig;
  outbox: OutboxStore;
}

const MAIL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The status document of `record`. */
function statusDocument(record: OutboxRecord): Record<string, unknown> {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return {
    id: record.id,
    status: record.status,
    from: record.mailbox,
    recipients: record.recipients,
    createdAt: iso(record.createdAt),
    updatedAt: iso(record.updatedAt),
    ...(record.notBefore !== undefined && record.status !== 'sent' ? { notBefore: iso(record.notBefore) } : {}),
    ...(record.reason !== undefined && record.status !== 'sent' ? { reason: record.reason } : {}),
    ...(record.sentAt !== undefined ? { sentAt: iso(record.sentAt) } : {}),
    attempts: record.attempts,
    requestIds: record.requestIds,
    internetMessageId: record.internetMessageId,
    ...(record.problem ? { problem: record.problem } : {}),
    ...(record.bounces && record.bounces.length > 0 ? { bounces: record.bounces } : {}),
    ...threadFacts(record),
  };
}

/** Handles one status request. */
export async function handleMailStatus(
  req: HttpRequest,
  context: InvocationContext,
  deps: MailStatusDependencies,
): Promise<HttpResponseInit> {
  const id = req.params.id ?? '';
  if (!MAIL_ID.test(id)) {
    return problemResponse(
      problem(
        404,
        'mail-not-found',
        'No such mail',
        `'${id.slice(0, 100)}' is not a mail id (a UUID that POST /api/mail/send answered).`,
      ),
    );
  }
  try {
    const stored = await deps.outbox.get(id.toLowerCase());
    if (!stored) {
      return problemResponse(problem(404, 'mail-not-found', 'No such mail', `The outbox holds no mail ${id}.`));
    }
    return {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: JSON.stringify(statusDocument(stored.record)),
    };
  } catch (err) {
    const failure = storageDependencyProblem(err, OUTBOX_TABLE, deps.config);
    context.error(`mail status for ${logValue(id)} failed: ${failure.doc.detail}`);
    return problemResponse(failure.doc, failure.headers);
  }
}
