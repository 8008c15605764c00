/**
 * The outbox record's transitions and the classification of a failed send, as pure functions: real records, and
 * real problems made by the send's own mappers from the errors the Graph SDK and the credential throw.
 */
import { GraphError } from '@microsoft/microsoft-graph-client';
import { KeyVaultAccessError } from '../../shared/identity/keyVaultCredentialSource';
import { credentialDependencyProblem } from '../../shared/mail/dependencyProblems';
import { graphProblem, validationProblem } from '../../shared/mail/sendProblems';
import { problem } from '../../shared/platform/problems/problem';
import type { OutboxRecord } from '../../shared/outbox/store/outboxStore';
import {
  clearAttempt,
  dueAt,
  isFinal,
  toDeferred,
  toFailed,
  toQueued,
  toSending,
  toSent,
  toUnconfirmed,
  undoAttempt,
  UNCONFIRMED_REASON,
  withRequestId,
} from '../../shared/outbox/process/outboxTransitions';
import { classifySendFailure, DEFAULT_RETRY_MS } from '../../shared/outbox/process/sendFailure';

const T0 = Date.parse('2026-01-05T09:00:00Z');
const NOW = T0 + 60_000;

/** A mail as the accept stores it, with `changes`. */
function record(changes: Partial<OutboxRecord> = {}): OutboxRecord {
  return {
    id: 'mail-1',
    mailbox: 'alerts@contoso.com',
    recipients: 2,
    status: 'queued',
    createdAt: T0,
    updatedAt: T0,
    attempts: 0,
    requestIds: [],
    internetMessageId: '<mail1.outbox@contoso.com>',
    saveToSentItems: true,
    inlineRequest: '{"from":"alerts@contoso.com"}',
    ...changes,
  };
}

/** The error the Graph SDK gives for an answer with `status`, `code` and `headers`. */
function graphError(status: number, code: string | null, headers: Record<string, string> = {}): GraphError {
  const err = new GraphError(status, `Graph said ${status}`);
  err.code = code;
  err.headers = new Headers(headers);
  return err;
}

/** What the mail sender throws for `err` from a call of ours with client-request-id `c-1`. */
const sendProblem = (err: unknown) => graphProblem(err, { clientRequestId: 'c-1' }, 'alerts@contoso.com');

describe('outbox record transitions', () => {
  it('starts an attempt: the marker set, one more attempt, no wait left; the record read is not changed', () => {
    const waiting = record({ notBefore: NOW - 1, reason: 'rate', attempts: 1 });
    const copy = structuredClone(waiting);
    const sending = toSending(waiting, NOW);
    expect(sending).toMatchObject({ status: 'sending', attempts: 2, attemptStartedAt: NOW, updatedAt: NOW });
    expect(sending).not.toHaveProperty('notBefore');
    expect(sending).not.toHaveProperty('reason');
    expect(sending.inlineRequest).toBe(waiting.inlineRequest);
    expect(waiting).toEqual(copy);
  });

  it('queues with a wait, dropping the attempt marker; defers for the daily recipients', () => {
    const sending = toSending(record(), NOW);
    const queued = toQueued(sending, { notBefore: NOW + 5_000, reason: 'graph 429' }, NOW);
    expect(queued).toMatchObject({ status: 'queued', notBefore: NOW + 5_000, reason: 'graph 429', attempts: 1 });
    expect(queued).not.toHaveProperty('attemptStartedAt');

    const deferred = toDeferred(record(), { notBefore: NOW + 3_600_000 }, NOW);
    expect(deferred).toMatchObject({
      status: 'deferred',
      notBefore: NOW + 3_600_000,
      reason: 'dailyRecipients',
      updatedAt: NOW,
    });
  });

  it('undoes an attempt that never reached Graph: not counted, marker gone', () => {
    const undone = undoAttempt(toSending(record(), NOW), NOW + 1);
    expect(undone).toMatchObject({ status: 'queued', attempts: 0, updatedAt: NOW + 1 });
    expect(undone).not.toHaveProperty('attemptStartedAt');
    expect(undoAttempt(record({ attempts: 0, status: 'sending' }), NOW).attempts).toBe(0);
  });

  it('keeps the marker while Graph may have accepted the mail, and clears it once Exchange proved it did not', () => {
    const sending = toSending(record(), NOW);
    const unconfirmed = toUnconfirmed(sending, { notBefore: NOW + DEFAULT_RETRY_MS }, NOW);
    expect(unconfirmed).toMatchObject({
      status: 'sending',
      attemptStartedAt: NOW,
      notBefore: NOW + DEFAULT_RETRY_MS,
      reason: UNCONFIRMED_REASON,
    });

    const cleared = clearAttempt(unconfirmed, NOW + DEFAULT_RETRY_MS);
    expect(cleared).toMatchObject({ status: 'queued', attempts: 1, reason: UNCONFIRMED_REASON });
    expect(cleared).not.toHaveProperty('attemptStartedAt');
  });

  it('records a send with its request id; the wait, the marker and the stored request go', () => {
    const sent = toSent(withRequestId(toSending(record(), NOW), 'r-1'), { requestId: 'r-2' }, NOW + 2);
    expect(sent).toMatchObject({ status: 'sent', sentAt: NOW + 2, updatedAt: NOW + 2, requestIds: ['r-1', 'r-2'] });
    for (const gone of ['attemptStartedAt', 'notBefore', 'reason', 'inlineRequest']) {
      expect(sent).not.toHaveProperty(gone);
    }
    expect(isFinal(sent)).toBe(true);
    expect(withRequestId(sent, undefined)).toBe(sent);
  });

  it("records a reply's conversation when Graph said it, and keeps what it answers", () => {
    const thread = { kind: 'reply' as const, messageId: 'AAMkAGoriginal=' };
    const sending = toSending({ ...record(), thread }, NOW);
    expect(toSent(sending, { requestId: 'r-1', conversationId: 'AAQkAGconv=' }, NOW + 1)).toMatchObject({
      status: 'sent',
      thread,
      conversationId: 'AAQkAGconv=',
    });
    expect(toSent(sending, { requestId: undefined }, NOW + 1)).not.toHaveProperty('conversationId');
  });

  it('records a failure with its problem; the marker goes only when the failure settles the attempt', () => {
    const doc = problem(403, 'send-as-denied', 'Send-As denied', 'no');
    const interrupted = toUnconfirmed(toSending(record(), NOW), { notBefore: NOW + 1 }, NOW);

    const settled = toFailed(interrupted, { problem: doc, attemptSettled: true }, NOW + 3);
    expect(settled).toMatchObject({ status: 'failed', problem: doc, updatedAt: NOW + 3, reason: UNCONFIRMED_REASON });
    for (const gone of ['attemptStartedAt', 'notBefore', 'inlineRequest']) expect(settled).not.toHaveProperty(gone);

    const unknown = toFailed(interrupted, { problem: doc, attemptSettled: false }, NOW + 3);
    expect(unknown.attemptStartedAt).toBe(NOW);
    expect(unknown).not.toHaveProperty('notBefore');
    expect(isFinal(unknown)).toBe(true);
    expect(isFinal(interrupted)).toBe(false);
  });

  it('counts a mail due from its sendAt (or a sendAt kept as notBefore), else from its acceptance', () => {
    expect(dueAt(record())).toBe(T0);
    expect(dueAt(record({ sendAt: T0 + 86_400_000 }))).toBe(T0 + 86_400_000);
    expect(dueAt(record({ notBefore: T0 + 7_200_000, reason: 'sendAt' }))).toBe(T0 + 7_200_000);
    expect(dueAt(record({ notBefore: T0 + 7_200_000, reason: 'rate' }))).toBe(T0);
  });
});

describe('a failed send, classified', () => {
  it('throttled: Graph answered 429 or 503; waits what the answer asks, keeps the request id', () => {
    const answer = graphError(429, 'TooManyRequests', { 'retry-after': '7', 'request-id': 'r-9' });
    expect(classifySendFailure(sendProblem(answer))).toEqual({
      kind: 'throttled',
      retryAfterMs: 7_000,
      reason: 'graph 429',
      requestId: 'r-9',
    });
    expect(classifySendFailure(sendProblem(graphError(503, null)))).toMatchObject({
      kind: 'throttled',
      retryAfterMs: 30_000,
      reason: 'graph 503',
    });
  });

  it('rejected: Graph refused the mail with a 4xx; the answer is the problem to fail with', () => {
    const refused = sendProblem(graphError(403, 'ErrorSendAsDenied', { 'request-id': 'r-3' }));
    expect(classifySendFailure(refused)).toEqual({ kind: 'rejected', problem: refused.doc, requestId: 'r-3' });
  });

  it('ambiguous: no answer, or a 5xx other than 503 (a 504 too, though the caller is told "throttled")', () => {
    const network = new GraphError(-1, 'fetch failed');
    network.code = 'TypeError';
    expect(classifySendFailure(sendProblem(network))).toEqual({ kind: 'ambiguous' });
    expect(classifySendFailure(sendProblem(new TypeError('socket hang up')))).toEqual({ kind: 'ambiguous' });
    expect(classifySendFailure(sendProblem(graphError(500, 'InternalServerError')))).toMatchObject({
      kind: 'ambiguous',
    });
    const gateway = sendProblem(graphError(504, null, { 'request-id': 'r-5' }));
    expect(gateway.doc.status).toBe(503);
    expect(classifySendFailure(gateway)).toEqual({ kind: 'ambiguous', requestId: 'r-5' });
  });

  it("dependency: the gateway's own dependency failed before the call; waits its Retry-After, says which", () => {
    const vault = credentialDependencyProblem(new KeyVaultAccessError("assign it 'Key Vault Secrets User'", 403));
    expect(vault).toBeDefined();
    const failure = classifySendFailure(vault!);
    expect(failure).toMatchObject({ kind: 'dependency', retryAfterMs: 30_000 });
    expect(failure.kind === 'dependency' && failure.reason).toBe(`key-vault-unavailable: ${vault!.doc.detail}`);

    // A problem that names no wait waits the default.
    const other = classifySendFailure(validationProblem([{ field: 'to', message: 'required' }]));
    expect(other).toMatchObject({ kind: 'dependency', retryAfterMs: DEFAULT_RETRY_MS });
  });
});
