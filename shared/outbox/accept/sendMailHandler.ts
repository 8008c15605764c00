/**
 * `POST /api/mail/send`: reads and validates the JSON, applies the sender policy, honours `Idempotency-Key` (a repeat
 * answers with the first request's mail as it is now), checks the app's Graph permissions from its token, stores the
 * mail in the outbox, and answers `202 { id, status: "queued" }` with `Location: /api/mail/{id}` (or a problem
 * document). The outbox processor sends it. `Prefer: wait=N` (RFC 7240, N ≤ 60) waits up to N s for the outcome: 200
 * sent, the failure's problem, or still 202. Logs say who sent how, never the token, the body or the subject.
 *
 * The reply and forward routes (messages/threadHandlers.ts) are accepted by the same machinery through
 * {@link acceptMail}: each route says how its path is judged and its body validated ({@link AcceptSpec}).
 */
import { randomUUID } from 'node:crypto';
import { RestError } from '@azure/core-rest-pipeline';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { AppCredential } from '../../identity/appCredential';
import type { GatewayConfig } from '../../platform/config';
import { HttpProblem } from '../../platform/problems/httpProblem';
import { internalProblem } from '../../platform/problems/internalProblem';
import { problemResponse } from '../../platform/problems/problem';
import { logValue } from '../../platform/logSafe';
import { failureLogLine } from '../../mail/failureLog';
import { AdminConsentMissingError } from '../../identity/tokenClaims';
import { requiredGraphRoles } from '../../mail/composeMessage';
import { credentialDependencyProblem, storageDependencyProblem } from '../../mail/dependencyProblems';
import { IDEMPOTENCY_TABLE, type StoredResult } from './idempotencyStore';
import type { LegacyIdempotencyKeys } from './legacyIdempotency';
import { REQUEST_STORAGE_CALL_MS } from '../../platform/storage/storageDeadline';
import { OUTBOX_TABLE, type OutboxRecord, type OutboxStatus, type OutboxStore } from '../store/outboxStore';
import { canonicalRequestHash, mailIdForKey } from './requestHash';
import type { StagedAttachments } from '../store/stagedAttachments';
import { isMailboxAllowed } from '../../platform/mailboxPolicy';
import { hasControlCharacter } from '../../mail/textRules';
import { countExternal } from '../../pacing/tenantRules';
import {
  badIdempotencyKeyProblem,
  consentProblem,
  idempotencyConflictProblem,
  idempotencyInProgressProblem,
  notJsonProblem,
  senderNotAllowedProblem,
  tooDeepProblem,
  tooLargeProblem,
  unsupportedEncodingProblem,
  unsupportedMediaProblem,
  validationProblem,
} from '../../mail/sendProblems';
import { BodyStreamError, readSendBody } from './sendBodyReader';
import {
  exampleSendAt,
  isAttachmentContentPath,
  MAX_SEND_AT_AHEAD_MS,
  MAX_SEND_JSON_DEPTH,
  parseSendRequest,
  STREAMED_CONTENT_THRESHOLD,
  type SendRequest,
} from '../../mail/sendRequest';

/** What the handler needs; the function file passes the process-wide instances. */
export interface SendMailDependencies {
  config: GatewayConfig;
  credential: AppCredential;
  /** The outbox, which also holds the Idempotency-Keys (a keyed mail's record is its key's claim). */
  outbox: OutboxStore;
  /** The keys earlier versions claimed in their own table, consulted while unexpired ones remain. */
  legacyKeys?: LegacyIdempotencyKeys;
}

/** How long a duplicate waits for the first request with its key before answering 409 "in progress". */
const DUPLICATE_WAIT_MS = 15_000;

/** Longest `Prefer: wait` honoured, in seconds. */
export const MAX_PREFER_WAIT_SECONDS = 60;

/** How often `Prefer: wait` looks at the outbox record. */
const WAIT_POLL_MS = 250;

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

/**
 * How one accepting route reads its request: `POST /api/mail/send` here, the reply and forward routes in messages/.
 * Everything else (media type, size, streamed attachments, sender policy, `sendAt`, Idempotency-Key, the permission
 * check, the outbox, `Prefer: wait`) is the same for all of them.
 */
export interface AcceptSpec {
  /** What the log calls the request: `send`, `reply`, `forward`. */
  operation: string;
  /** Checks of what the path names, run before the body is read (throw an HttpProblem); the mailbox, for logs. */
  prepare?(): string | undefined;
  /** The mailbox a body names, for the log line of a refused request, when it is a plain printable address. */
  mailboxHint?(json: object): string | undefined;
  /** Validates the parsed body (large attachments as blobs). */
  parse(json: unknown): ReturnType<typeof parseSendRequest>;
  /**
   * What an Idempotency-Key compares: the body and whatever else makes the request what it is (for a reply, the
   * mailbox, the original's id and the action), so that one key cannot answer two different requests.
   */
  hashDocument(json: unknown): unknown;
  /**
   * For a reply or reply-all: the addresses Graph's draft will add (the original's sender or Reply-To, and for a
   * reply-all its other recipients), read from the original; undefined when they could not be read.
   */
  answered?(request: SendRequest): Promise<string[] | undefined>;
}

/** `POST /api/mail/send`: the body says everything, `from` included. */
const SEND_SPEC: AcceptSpec = {
  operation: 'send',
  mailboxHint: (json) => {
    const from = (json as { from?: unknown }).from;
    return typeof from === 'string' &&
      from.length <= 254 &&
      /^[^\s@]+@[^\s@]+$/.test(from) &&
      !hasControlCharacter(from)
      ? from.toLowerCase()
      : undefined;
  },
  parse: parseSendRequest,
  hashDocument: (json) => json,
};

/** Handles one send request. */
export async function handleSendMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  return acceptMail(req, context, deps, SEND_SPEC);
}

/** Handles one request of an accepting route read as `spec` says (see {@link AcceptSpec}). */
export async function acceptMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
  spec: AcceptSpec,
): Promise<HttpResponseInit> {
  const facts: SendFacts = {};
  try {
    return await send(req, context, deps, facts, spec);
  } catch (caught) {
    if (caught instanceof ClientDisconnected) {
      context.info(`send abandoned: ${caught.message}; nothing was sent`);
      return notJsonProblem('The request body was cut off.').toResponse();
    }
    const err = credentialDependencyProblem(caught) ?? caught;
    if (err instanceof HttpProblem) {
      const line = failureLogLine(err.doc, facts.mailbox, err.logDetail);
      if (err.doc.status >= 500) context.error(line);
      else context.warn(line);
      return err.toResponse();
    }
    return internalProblem(context, err, {
      operation: spec.operation,
      about: logValue(facts.mailbox ?? '-'),
      consequence: 'Nothing was sent.',
    }).toResponse();
  }
}

async function send(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
  facts: SendFacts,
  spec: AcceptSpec,
): Promise<HttpResponseInit> {
  const { config } = deps;
  const named = spec.prepare?.();
  if (named !== undefined) facts.mailbox = named;
  const contentType = req.headers.get('content-type');
  if (!contentType || !/^application\/(.+\+)?json\b/i.test(contentType)) throw unsupportedMediaProblem(contentType);
  const contentEncoding = req.headers.get('content-encoding');
  if (contentEncoding !== null && !isIdentityOnly(contentEncoding)) throw unsupportedEncodingProblem(contentEncoding);
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (declared > config.maxSendRequestBytes) throw tooLargeProblem(config.maxSendRequestBytes);
  const key = req.headers.get('idempotency-key');
  // With a key the mail's id derives from it, so that storing the mail claims the key; large attachments go to outbox
  // blobs as they arrive, uncommitted until the request passed every check below (under names of this request's own
  // when keyed: a concurrent duplicate stages under the same id).
  const keyed = key !== null && isValidIdempotencyKey(key);
  const id = keyed ? mailIdForKey(key) : randomUUID();
  const attachments = deps.outbox.stageAttachments(id, keyed ? randomUUID() : undefined);
  try {
    const json = await readJson(req, config.maxSendRequestBytes, attachments);
    if (!json || typeof json !== 'object' || Array.isArray(json))
      throw notJsonProblem('The body is JSON but not an object.');
    // Name the mailbox in the log even when validation fails, when the body names it as a plain, printable address.
    const hint = spec.mailboxHint?.(json);
    if (hint !== undefined) facts.mailbox = hint;
    const parsed = spec.parse(json);
    if (!parsed.ok) throw validationProblem(parsed.problems);
    const request = parsed.request;
    facts.mailbox = request.from;
    if (!isMailboxAllowed(config.allowedSenders, request.from)) throw senderNotAllowedProblem(request.from);

    if (request.sendAt !== undefined && request.sendAt > Date.now() + MAX_SEND_AT_AHEAD_MS) {
      const latest = new Date(Date.now() + MAX_SEND_AT_AHEAD_MS).toISOString();
      throw validationProblem([
        {
          field: 'sendAt',
          message: `must be at most 7 days ahead (now: no later than ${latest}), e.g. ${exampleSendAt()}`,
        },
      ]);
    }
    const wait = preferredWaitSeconds(req.headers.get('prefer'));
    const answered = await spec.answered?.(request);

    const accepted = await acceptOnce(
      id,
      request,
      { json, attachments, answered },
      spec.hashDocument(json),
      key,
      wait,
      context,
      deps,
    );
    if (accepted.kind === 'stored') {
      return wait === undefined
        ? queuedResponse(accepted.id, accepted.status)
        : await waitForOutcome(accepted.id, wait, deps);
    }
    // As before: a replay still on its way after its own wait waits a second time (answering without
    // Idempotent-Replayed then).
    if (wait !== undefined && accepted.answer.status === 202) return await waitForOutcome(accepted.id, wait, deps);
    return accepted.answer;
  } finally {
    // Refused, replayed or failed: the staged blocks go (a stored mail's attachments are committed and stay).
    await attachments.discard();
  }
}

/** What accepting a request led to. */
type Acceptance =
  /** This request stored mail `id` in the outbox, with its first status. */
  | { kind: 'stored'; id: string; status: OutboxStatus }
  /** A repeat of an `Idempotency-Key`'s request, answered from the first request's mail `id`. */
  | { kind: 'replayed'; id: string; answer: HttpResponseInit };

/**
 * Stores the mail in the outbox, once per `Idempotency-Key`: a repeat of the same request (compared by its canonical
 * hash: whitespace, key order and escapes do not matter) answers with the first one's mail as it is now.
 */
async function acceptOnce(
  id: string,
  request: SendRequest,
  payload: ParsedBody,
  hashDocument: unknown,
  key: string | null,
  wait: number | undefined,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<Acceptance> {
  if (key === null) return await enqueue(id, request, payload, context, deps);
  if (!isValidIdempotencyKey(key)) throw badIdempotencyKeyProblem();
  // After validation: a valid request nests only a few levels, and its attachments' blobs carry their digests.
  const requestHash = canonicalRequestHash(hashDocument);
  const legacy = await deps.legacyKeys?.lookup(key).catch((err: unknown) => {
    throw storageDependencyProblem(err, IDEMPOTENCY_TABLE, deps.config);
  });
  if (legacy) {
    // Claimed before the upgrade: answered as those versions answered, so that the mail is not sent again.
    if (legacy.requestHash !== requestHash) throw idempotencyConflictProblem();
    if (!legacy.result) throw idempotencyInProgressProblem();
    context.info('send replayed from an Idempotency-Key claimed before the upgrade');
    return await replay(legacy.result, wait, deps);
  }
  const deadline = Date.now() + DUPLICATE_WAIT_MS;
  // Storing the mail is the key's claim (one insert of the record, whose id derives from the key): a request that
  // finds the record is a repeat (same hash), a conflict (another), or early, while the first is still storing it.
  let taken = await enqueue(id, request, payload, context, deps, requestHash);
  for (;;) {
    if (taken.kind === 'stored') return taken;
    const existing: OutboxRecord = taken.existing;
    if (existing.idempotency?.requestHash !== requestHash) throw idempotencyConflictProblem();
    if (isSettled(existing, Date.now())) {
      context.info('send replayed from its Idempotency-Key');
      return await replay({ status: 202, body: queuedBody(existing.id, existing.status) }, wait, deps);
    }
    if (Date.now() > deadline) throw idempotencyInProgressProblem();
    await new Promise((r) => setTimeout(r, 200));
    const now = await deps.outbox.get(id).catch((err: unknown) => {
      throw storageDependencyProblem(err, OUTBOX_TABLE, deps.config);
    });
    // Gone: the first request failed to store it and freed the key; this one claims it.
    taken = now
      ? { kind: 'taken', existing: now.record }
      : await enqueue(id, request, payload, context, deps, requestHash);
  }
}

/** What `enqueue` answers for a keyed request whose key another request holds: the record holding it. */
type Taken = { kind: 'taken'; existing: OutboxRecord };

/**
 * How long after its record was written an accept may still be storing the mail (committing blobs, enqueueing, or
 * rolling back): each of those storage calls ends within {@link REQUEST_STORAGE_CALL_MS}.
 */
const ACCEPT_SETTLES_MS = 3 * REQUEST_STORAGE_CALL_MS;

/**
 * Whether the accept that wrote `record` is over, so that a repeat may be answered from it: the processor has been
 * at it (anything changed since the insert), or the accept's own storage calls have all ended by now.
 */
function isSettled(record: OutboxRecord, now: number): boolean {
  return record.updatedAt !== record.createdAt || record.attempts > 0 || now - record.createdAt > ACCEPT_SETTLES_MS;
}

/** An `Idempotency-Key` is 1–255 printable ASCII characters. */
function isValidIdempotencyKey(key: string): boolean {
  return /^[\x21-\x7e]{1,255}$/.test(key);
}

/** Whether a `Content-Encoding` list names no coding but `identity` (RFC 9110 lists: empty elements are ignored). */
function isIdentityOnly(contentEncoding: string): boolean {
  return contentEncoding.split(',').every((coding) => /^\s*(identity)?\s*$/i.test(coding));
}

/**
 * The `wait` preference of a `Prefer` header (RFC 7240), capped at {@link MAX_PREFER_WAIT_SECONDS}; undefined when
 * absent or malformed (a server ignores preferences it cannot honour).
 */
export function preferredWaitSeconds(prefer: string | null): number | undefined {
  if (!prefer) return undefined;
  for (const preference of prefer.split(',')) {
    const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(;.*)?$/i.exec(preference);
    if (match) return Math.min(Number(match[1]), MAX_PREFER_WAIT_SECONDS);
  }
  return undefined;
}

/**
 * Reads and parses the JSON body as it arrives (see sendBodyReader.ts): the body is held once, as its parsed values, and each large attachment's base64 is decoded into
 * a staged blob of `attachments` instead (the document holds an AttachmentBlob in its place).
 */
async function readJson(req: HttpRequest, limit: number, attachments: StagedAttachments): Promise<unknown> {
  const read = await readSendBody(req.body, {
    limit,
    maxDepth: MAX_SEND_JSON_DEPTH,
    streamedStrings: {
      select: isAttachmentContentPath,
      thresholdBytes: STREAMED_CONTENT_THRESHOLD,
      open: () => attachments.open(),
    },
    afterChunk: () => attachments.flush(),
  }).catch((err: unknown) => {
    throw err instanceof BodyStreamError ? new ClientDisconnected(err) : err;
  });
  if (read.kind === 'tooLarge') throw tooLargeProblem(limit);
  if (read.kind === 'malformed') throw notJsonProblem('The body is not valid JSON.');
  if (read.kind === 'tooDeep') throw tooDeepProblem(read.maxDepth);
  return read.json;
}

/** A request as read: its JSON document (large attachments as AttachmentBlobs) and those attachments, staged. */
interface ParsedBody {
  json: unknown;
  attachments: StagedAttachments;
  /** A reply's addresses from its original (see {@link AcceptSpec.answered}); undefined when not read. */
  answered?: string[];
}

/** Checks the token's permissions, then stores the mail in the outbox. */
async function enqueue(
  id: string,
  request: SendRequest,
  payload: ParsedBody,
  context: InvocationContext,
  deps: SendMailDependencies,
): Promise<Acceptance & { kind: 'stored' }>;
async function enqueue(
  id: string,
  request: SendRequest,
  payload: ParsedBody,
  context: InvocationContext,
  deps: SendMailDependencies,
  requestHash: string,
): Promise<(Acceptance & { kind: 'stored' }) | Taken>;
/** Stores the mail (claiming its `Idempotency-Key` when `requestHash` is given), after the permission check. */
async function enqueue(
  id: string,
  request: SendRequest,
  payload: ParsedBody,
  context: InvocationContext,
  deps: SendMailDependencies,
  requestHash?: string,
): Promise<(Acceptance & { kind: 'stored' }) | Taken> {
  if (deps.config.graphPermissionCheck === 'token') {
    const roles = requiredGraphRoles(request);
    try {
      await deps.credential.requireGraphPermissions(roles);
    } catch (err) {
      if (err instanceof AdminConsentMissingError) throw consentProblem(err);
      throw err;
    }
  }
  // A reply goes to the original's sender (or Reply-To), a reply-all to its other recipients too, besides the caller's
  // Cc and Bcc: as read from the original, else counted as one recipient, and an external one (on the safe side).
  const answering = request.thread !== undefined && request.thread.kind !== 'forward';
  const answered = answering ? payload.answered : [];
  const unknown = answered === undefined ? 1 : 0;
  const addresses = [...request.to, ...request.cc, ...request.bcc].map((r) => r.address).concat(answered ?? []);
  const recipients = addresses.length + unknown;
  const tenantDomains = deps.config.outbox.tenantExternal?.domains;
  const external = tenantDomains && countExternal(addresses, tenantDomains) + unknown;
  const mail = {
    id,
    mailbox: request.from,
    recipients,
    ...(external !== undefined ? { externalRecipients: external } : {}),
    internetMessageId: internetMessageIdFor(id, request.from),
    saveToSentItems: request.saveToSentItems,
    ...(request.sendAt !== undefined ? { notBefore: request.sendAt } : {}),
    ...(request.thread ? { thread: request.thread } : {}),
  };
  // The caller's document as parsed, large attachments as references to their blobs (AttachmentBlob.toJSON).
  const stored = { json: Buffer.from(JSON.stringify(payload.json)), attachments: payload.attachments };
  const result = await (
    requestHash === undefined
      ? deps.outbox.accept(mail, stored).then((record) => ({ kind: 'stored' as const, record }))
      : deps.outbox.acceptClaiming(mail, stored, Date.now(), {
          requestHash,
          ttlMs: deps.config.idempotencyTtlMs,
        })
  ).catch((err: unknown) => {
    // The storage SDKs report every service or network failure as a RestError; anything else is our bug.
    if (err instanceof RestError) throw storageDependencyProblem(err, OUTBOX_TABLE, deps.config);
    throw err;
  });
  if (result.kind === 'taken') return result;
  const { record } = result;
  const what = request.thread ? `${request.thread.kind} ` : '';
  context.info(
    `${what}queued as ${logValue(request.from)} to ${recipients} recipient(s); id ${id}, status ${record.status}`,
  );
  return { kind: 'stored', id, status: record.status };
}

/**
 * The message's RFC 5322 Message-ID: unique per outbox mail, on the sender's domain, so that the processor can find
 * the mail in Sent Items after an interrupted attempt.
 */
function internetMessageIdFor(id: string, from: string): string {
  return `<${id.replace(/-/g, '')}.outbox@${from.split('@')[1]}>`;
}

/** `202 { id, status }` with the status URL. */
function queuedResponse(id: string, status: string, headers: Record<string, string> = {}): HttpResponseInit {
  return {
    status: 202,
    headers: { 'content-type': 'application/json', location: `/api/mail/${id}`, ...headers },
    body: queuedBody(id, status),
  };
}

/** The body of the 202 for a mail on its way, and what a repeat of an `Idempotency-Key` falls back to. */
function queuedBody(id: string, status: string): string {
  return JSON.stringify({ id, status });
}

/**
 * A repeat of a request whose key has a result: the first request's mail as it is now, as `GET /api/mail/{id}` shows
 * it (200 sent, the failure's problem, or 202 with its status), not the answer it had when it was accepted; with
 * `Prefer: wait`, after waiting for its outcome. The stored answer only when the mail's record is gone (purged).
 */
async function replay(
  first: StoredResult,
  wait: number | undefined,
  deps: SendMailDependencies,
): Promise<Acceptance & { kind: 'replayed' }> {
  const { id } = JSON.parse(first.body) as { id: string };
  return { kind: 'replayed', id, answer: await replayAnswer(id, first, wait, deps) };
}

/** The answer to a repeat of the request that stored mail `id` (see {@link replay}). */
async function replayAnswer(
  id: string,
  first: StoredResult,
  wait: number | undefined,
  deps: SendMailDependencies,
): Promise<HttpResponseInit> {
  const replayed = { 'idempotent-replayed': 'true' };
  if (wait !== undefined) return waitForOutcome(id, wait, deps, replayed);
  const stored = await deps.outbox.get(id).catch((err: unknown) => {
    throw storageDependencyProblem(err, OUTBOX_TABLE, deps.config);
  });
  if (!stored) {
    return {
      status: first.status,
      headers: { 'content-type': 'application/json', location: `/api/mail/${id}`, ...replayed },
      body: first.body,
    };
  }
  return outcomeResponse(stored.record, replayed) ?? queuedResponse(id, stored.record.status, replayed);
}

/** The answer for a mail whose outcome is final (200 sent, or its problem); undefined while it is on its way. */
function outcomeResponse(record: OutboxRecord, headers: Record<string, string>): HttpResponseInit | undefined {
  const id = record.id;
  if (record.status === 'sent') {
    return {
      status: 200,
      headers: { 'content-type': 'application/json', location: `/api/mail/${id}`, ...headers },
      body: JSON.stringify({ id, status: 'sent', requestId: record.requestIds.at(-1) ?? null }),
    };
  }
  if (record.status === 'failed' && record.problem) {
    return problemResponse({ ...record.problem, id }, { location: `/api/mail/${id}`, ...headers });
  }
  return undefined;
}

/** Polls the outbox record until the mail is sent or failed, or `seconds` pass; answers accordingly. */
async function waitForOutcome(
  id: string,
  seconds: number,
  deps: SendMailDependencies,
  extraHeaders: Record<string, string> = {},
): Promise<HttpResponseInit> {
  const applied = { 'preference-applied': `wait=${seconds}`, ...extraHeaders };
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const stored = await deps.outbox.get(id).catch(() => undefined);
    const record = stored?.record;
    const outcome = record && outcomeResponse(record, applied);
    if (outcome) return outcome;
    if (Date.now() >= deadline) return queuedResponse(id, record?.status ?? 'queued', applied);
    await new Promise((r) => setTimeout(r, Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}
