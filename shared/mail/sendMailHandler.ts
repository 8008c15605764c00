/**
 * `POST /api/mail/send`: reads and validates the JSON, applies the sender policy, honours `Idempotency-Key`,
 * checks the app's Graph permissions from its token, sends, and answers `202 { id, status, requestId }` or a
 * problem document. Logs say who sent how, never the token, the body or the subject.
 */
import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { AppCredential } from '../identity/appCredential';
import type { GatewayConfig } from '../platform/config';
import { problem, problemResponse } from '../platform/problem';
import { describeForLog, redactSecrets } from '../diagnostics/logSafe';
import { AdminConsentMissingError } from '../identity/tokenClaims';
import { requiredGraphRoles } from './composeMessage';
import { credentialDependencyProblem, storageDependencyProblem } from './dependencyProblems';
import { IDEMPOTENCY_TABLE, requestHash, type IdempotencyStore } from './idempotencyStore';
import type { MailSender } from './mailSender';
import { isAllowedSender } from './senderPolicy';
import { hasControlCharacter } from './textRules';
import {
  badIdempotencyKeyProblem,
  consentProblem,
  idempotencyConflictProblem,
  idempotencyInProgressProblem,
  notJsonProblem,
  SendProblem,
  senderNotAllowedProblem,
  tooLargeProblem,
  unsupportedMediaProblem,
  validationProblem,
} from './sendProblems';
import { readRequestBytes } from './requestBytes';
import { parseSendRequest, type SendRequest } from './sendRequest';

/** What the handler needs; the function file passes the process-wide instances. */
export interface SendMailDependencies {
  config: GatewayConfig;
  credential: AppCredential;
  sender: MailSender;
  idempotency: IdempotencyStore;
}

/** How long a duplicate waits for the first request with its key before answering 409 "in progress". */
const DUPLICATE_WAIT_MS = 15_000;

/** What the handler learnt about a request before it failed, for the log line. */
interface SendFacts {
  mailbox?: string;
}

/** The client went away before its body arrived; there is nobody to answer. */
class ClientDisconnected extends Error {
  constructor(cause: unknown) {
    super('the client disconnected before the request body arrived', { cause });
    this.name = 'ClientDisconnected';
  }
}

/** Handles one send request. */
export async function handleSendMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  const facts: SendFacts = {};
  try {
    return await send(req, context, deps, facts);
  } catch (caught) {
    if (caught instanceof ClientDisconnected) {
      context.info(`send abandoned: ${caught.message}; nothing was sent`);
      return problemResponse(notJsonProblem('The request body was cut off.').doc);
    }
    const err = credentialDependencyProblem(caught) ?? caught;
    if (err instanceof SendProblem) {
      const line = failureLogLine(err, facts);
      if (err.doc.status >= 500) context.error(line);
      else context.warn(line);
      return problemResponse(err.doc, err.headers);
    }
    const incident = randomUUID();
    context.error(
      `send failed unexpectedly (incident ${incident}) for ${facts.mailbox ?? '-'}: ${describeForLog(err)}`,
    );
    return problemResponse(
      problem(
        500,
        'internal',
        'The gateway failed',
        `An unexpected error occurred; incident ${incident} is in the gateway's logs. Nothing was sent.`,
        { incident },
      ),
    );
  }
}

/**
 * One line an operator can act on: the mailbox, the problem type, Graph's code and ids, and the cause. The
 * problem's detail is built from Graph's and Azure's answers and the field names, never from the subject or body.
 */
function failureLogLine(err: SendProblem, facts: SendFacts): string {
  const graph = (err.doc.graph ?? {}) as { code?: string; requestId?: string; clientRequestId?: string };
  const clientRequestId = graph.clientRequestId ?? (err.doc.clientRequestId as string | undefined);
  return redactSecrets(
    `send failed for ${facts.mailbox ?? '-'}: ${err.doc.status} ${err.doc.type.split('/').pop() ?? ''}; ` +
      `graph code ${graph.code ?? '-'}, request-id ${graph.requestId ?? '-'}, client-request-id ${clientRequestId ?? '-'}; ` +
      `cause: ${err.doc.detail}`,
  );
}

async function send(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
  facts: SendFacts,
): Promise<HttpResponseInit> {
  const { config } = deps;
  const contentType = req.headers.get('content-type');
  if (!contentType || !/^application\/(.+\+)?json\b/i.test(contentType)) throw unsupportedMediaProblem(contentType);
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (declared > config.maxSendRequestBytes) throw tooLargeProblem(config.maxSendRequestBytes);
  const key = req.headers.get('idempotency-key');
  const { json, hash } = await readJson(req, config.maxSendRequestBytes, key !== null);
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw notJsonProblem('The body is JSON but not an object.');
  // Name the mailbox in the log even when validation fails, when `from` is at least a plain, printable address.
  const from = (json as { from?: unknown }).from;
  if (typeof from === 'string' && from.length <= 254 && /^[^\s@]+@[^\s@]+$/.test(from) && !hasControlCharacter(from))
    facts.mailbox = from.toLowerCase();
  const parsed = parseSendRequest(json);
  if (!parsed.ok) throw validationProblem(parsed.problems);
  const request = parsed.request;
  facts.mailbox = request.from;
  if (!isAllowedSender(config.allowedSenders, request.from)) throw senderNotAllowedProblem(request.from);

  if (key === null || hash === undefined) return deliver(request, context, deps);
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw badIdempotencyKeyProblem();
  const deadline = Date.now() + DUPLICATE_WAIT_MS;
  for (;;) {
    const claim = await deps.idempotency.claim(key, hash).catch((err: unknown) => {
      throw storageDependencyProblem(err, IDEMPOTENCY_TABLE, config);
    });
    if (claim.kind === 'conflict') throw idempotencyConflictProblem();
    if (claim.kind === 'completed') {
      context.info('send replayed from its Idempotency-Key');
      return {
        status: claim.result.status,
        headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' },
        body: claim.result.body,
      };
    }
    if (claim.kind === 'claimed') break;
    if (Date.now() > deadline) throw idempotencyInProgressProblem();
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    const response = await deliver(request, context, deps);
    await deps.idempotency
      .complete(key, hash, {
        status: response.status ?? 202,
        body: typeof response.body === 'string' ? response.body : '',
      })
      .catch((err: unknown) => {
        // The mail went out: the caller gets its 202; only a repeat with this key cannot be answered from storage.
        context.warn(
          `sent as ${request.from}, but its Idempotency-Key could not be recorded: ${storageDependencyProblem(err, IDEMPOTENCY_TABLE, config).doc.detail}`,
        );
      });
    return response;
  } catch (err) {
    // Nothing was sent: free the key so the caller's retry with it can send.
    await deps.idempotency.release(key).catch(() => undefined);
    throw err;
  }
}

/**
 * Reads and parses the JSON body, and hashes its bytes when an `Idempotency-Key` needs it. Memory: a large send's
 * body exists here as bytes, then as text, then as parsed values; each is dropped as soon as the next exists, so that
 * no more than two of them are alive at once here, and neither bytes nor text outlives this function.
 */
async function readJson(req: HttpRequest, limit: number, wantHash: boolean): Promise<{ json: unknown; hash?: string }> {
  let bytes: Buffer | undefined | 'tooLarge' = await readRequestBytes(req.body, limit).catch((err: unknown) => {
    throw new ClientDisconnected(err);
  });
  if (bytes === 'tooLarge') throw tooLargeProblem(limit);
  const hash = wantHash ? requestHash(bytes) : undefined;
  const text = bytes.toString('utf8');
  bytes = undefined;
  try {
    return { json: JSON.parse(text) as unknown, hash };
  } catch {
    throw notJsonProblem('The body is not valid JSON.');
  }
}

/**
 * Graph's `ErrorAccessDenied` means either a missing permission or a mailbox outside the app's Exchange scope.
 * When the token lacks the permission, say so (with the permission check off, Graph is the first to notice).
 */
async function explainAccessDenied(err: unknown, request: SendRequest, deps: SendMailDependencies): Promise<never> {
  const graph = err instanceof SendProblem ? (err.doc.graph as { code?: string } | undefined) : undefined;
  if (!(err instanceof SendProblem) || graph?.code !== 'ErrorAccessDenied') throw err;
  const roles = requiredGraphRoles(request);
  const missing = await deps.credential
    .requireGraphPermissions(roles)
    .then(() => [])
    .catch((e: unknown) => (e instanceof AdminConsentMissingError ? [...e.missing] : []));
  if (missing.length === 0) throw err;
  throw new SendProblem(
    problem(
      403,
      'graph-access-denied',
      'Microsoft Graph denied access',
      `admin consent not granted for ${missing.join(', ')} (the token lacks ${missing.length > 1 ? 'them' : 'it'}), unless Exchange RBAC for Applications grants ${missing.length > 1 ? 'them' : 'it'} and '${request.from}' is outside that scope. Grant admin consent in Entra ID, or add the mailbox to the scope (infra/Set-MailboxScope.ps1).`,
      { graph: err.doc.graph, missingPermissions: missing },
    ),
    err.headers,
  );
}

async function deliver(
  request: SendRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  if (deps.config.graphPermissionCheck === 'token') {
    const roles = requiredGraphRoles(request);
    try {
      await deps.credential.requireGraphPermissions(roles);
    } catch (err) {
      if (err instanceof AdminConsentMissingError) throw consentProblem(err);
      throw err;
    }
  }
  const started = Date.now();
  const outcome = await deps.sender.send(request).catch((err: unknown) => explainAccessDenied(err, request, deps));
  const id = randomUUID();
  const recipients = request.to.length + request.cc.length + request.bcc.length;
  context.info(
    `sent as ${request.from} to ${recipients} recipient(s) via ${outcome.path} in ${Date.now() - started} ms (${outcome.graphCalls} Graph calls); id ${id}, request-id ${outcome.requestId ?? '-'}, client-request-id ${outcome.clientRequestId}`,
  );
  return {
    status: 202,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, status: 'accepted', requestId: outcome.requestId ?? null }),
  };
}
