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
import { AdminConsentMissingError } from '../identity/tokenClaims';
import { requiredGraphRoles } from './composeMessage';
import { requestHash, type IdempotencyStore } from './idempotencyStore';
import type { MailSender } from './mailSender';
import { isAllowedSender } from './senderPolicy';
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

/** Handles one send request. */
export async function handleSendMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  try {
    return await send(req, context, deps);
  } catch (err) {
    if (err instanceof SendProblem) {
      context.warn(`send refused: ${err.doc.status} ${err.doc.type.split('/').pop() ?? ''}`);
      return problemResponse(err.doc, err.headers);
    }
    const incident = randomUUID();
    context.error(`send failed unexpectedly (incident ${incident}): ${err instanceof Error ? err.name : 'error'}`);
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

async function send(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  const { config } = deps;
  const contentType = req.headers.get('content-type');
  if (!contentType || !/^application\/(.+\+)?json\b/i.test(contentType)) throw unsupportedMediaProblem(contentType);
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (declared > config.maxSendRequestBytes) throw tooLargeProblem(config.maxSendRequestBytes);
  const raw = Buffer.from(await req.arrayBuffer());
  if (raw.length > config.maxSendRequestBytes) throw tooLargeProblem(config.maxSendRequestBytes);

  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw notJsonProblem('The body is not valid JSON.');
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw notJsonProblem('The body is JSON but not an object.');
  const parsed = parseSendRequest(json);
  if (!parsed.ok) throw validationProblem(parsed.problems);
  const request = parsed.request;
  if (!isAllowedSender(config.allowedSenders, request.from)) throw senderNotAllowedProblem(request.from);

  const key = req.headers.get('idempotency-key');
  if (key === null) return deliver(request, context, deps);
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw badIdempotencyKeyProblem();
  const hash = requestHash(raw);
  const deadline = Date.now() + DUPLICATE_WAIT_MS;
  for (;;) {
    const claim = await deps.idempotency.claim(key, hash);
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
    await deps.idempotency.complete(key, hash, {
      status: response.status ?? 202,
      body: typeof response.body === 'string' ? response.body : '',
    });
    return response;
  } catch (err) {
    // Nothing was sent: free the key so the caller's retry with it can send.
    await deps.idempotency.release(key).catch(() => undefined);
    throw err;
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
