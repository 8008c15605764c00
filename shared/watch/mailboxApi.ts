/**
 * `PUT/GET/DELETE /api/mailboxes[/{mailbox}]`: watch a mailbox, list or show watched ones, stop watching. The
 * watch policy (`ALLOWED_WATCH_MAILBOXES`) and the token's permissions are checked before Graph is called. Views
 * never show the clientState or the delta link.
 */
import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { GraphError } from '@microsoft/microsoft-graph-client';
import { describeForLog } from '../platform/logSafe';
import { storageUnavailableProblem } from '../platform/storageErrors';
import { addressProblems } from '../mail/textRules';
import type { AppCredential } from '../identity/appCredential';
import type { GatewayConfig } from '../platform/config';
import { isMailboxAllowed } from '../platform/mailboxPolicy';
import { problem, problemResponse, type ProblemDocument } from '../platform/problem';
import type { ProblemSlug } from '../platform/problemCatalogue';
import { WATCH_PERMISSION, WATCH_PERMISSIONS_ACCEPTED } from '../identity/graphPermissions';
import { WatchBusyError, type WatchService } from './watchService';
import type { WatchedMailbox, WatchStore } from './watchStore';

/** What the mailbox API needs. */
export interface MailboxApiDependencies {
  config: GatewayConfig;
  credential: AppCredential;
  store: WatchStore;
  /** Undefined when WEBHOOK_BASE_URL is unset. */
  service: WatchService | undefined;
}

/** A watched mailbox as the API shows it. */
export interface MailboxView {
  mailbox: string;
  subscriptionId: string;
  expirationDateTime: string;
  createdAt: string;
  lastRenewal: { at: string; outcome: string; error?: string } | null;
  lastEventAt: string | null;
  eventsPublished: number;
  lastCaughtUpAt: string | null;
}

// On top of the send API's address rules: the address goes into a Graph resource path, so its domain must be plain
// DNS labels.
const MAILBOX_DOMAIN = /@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/i;

class ApiProblem extends Error {
  constructor(
    readonly doc: ProblemDocument,
    readonly headers: Record<string, string> = {},
  ) {
    super(doc.title);
  }
}

/** Handles one request to the mailbox API. */
export async function handleMailboxes(
  request: HttpRequest,
  context: InvocationContext,
  deps: MailboxApiDependencies,
): Promise<HttpResponseInit> {
  try {
    const mailbox = request.params.mailbox;
    switch (request.method) {
      case 'GET':
        return mailbox === undefined ? await list(deps) : await show(parseMailbox(mailbox), deps);
      // One handler serves /api/mailboxes (GET) and /api/mailboxes/{mailbox} (GET, PUT, DELETE).
      case 'PUT':
        return await watch(parseMailbox(required(mailbox)), context, deps);
      case 'DELETE':
        return await unwatch(parseMailbox(required(mailbox)), context, deps);
      default:
        throw new ApiProblem(
          problem(405, 'method-not-allowed', 'Method not allowed', `${request.method} is not supported.`),
        );
    }
  } catch (err) {
    if (err instanceof ApiProblem) return problemResponse(err.doc, err.headers);
    const storage = storageUnavailableProblem(err, deps.config, 'Repeat the request once storage answers.');
    if (storage) {
      context.error(`mailbox API: ${storage.doc.detail}`);
      return problemResponse(storage.doc, storage.headers);
    }
    if (err instanceof WatchBusyError) {
      return problemResponse(
        problem(503, 'watch-busy', 'The mailbox is being changed', `${err.message}; retry shortly.`),
        { 'retry-after': '30' },
      );
    }
    const mapped = graphProblem(err);
    if (mapped) {
      context.warn(
        `mailbox API: Graph answered ${mapped.doc.status} ${String((mapped.doc.graph as { code?: string })?.code ?? '')}`,
      );
      return problemResponse(mapped.doc, mapped.headers);
    }
    const incident = randomUUID();
    context.error(`mailbox API failed unexpectedly (incident ${incident}): ${describeForLog(err)}`);
    return problemResponse(
      problem(
        500,
        'internal',
        'The gateway failed',
        `An unexpected error occurred; incident ${incident} is in the gateway's logs.`,
        {
          incident,
        },
      ),
    );
  }
}

/** The view of a stored record. */
function mailboxView(record: WatchedMailbox): MailboxView {
  return {
    mailbox: record.mailbox,
    subscriptionId: record.subscriptionId,
    expirationDateTime: record.expirationDateTime,
    createdAt: record.createdAt,
    lastRenewal: record.lastRenewal ?? null,
    lastEventAt: record.lastEventAt ?? null,
    eventsPublished: record.eventsPublished,
    lastCaughtUpAt: record.deltaSyncedAt ?? null,
  };
}

async function list(deps: MailboxApiDependencies): Promise<HttpResponseInit> {
  const records = await deps.store.list();
  return json(200, { value: records.map(mailboxView) });
}

async function show(mailbox: string, deps: MailboxApiDependencies): Promise<HttpResponseInit> {
  const record = await deps.store.get(mailbox);
  if (!record) throw notWatched(mailbox);
  return json(200, mailboxView(record));
}

async function watch(
  mailbox: string,
  context: InvocationContext,
  deps: MailboxApiDependencies,
): Promise<HttpResponseInit> {
  if (!isMailboxAllowed(deps.config.watch.allowedMailboxes, mailbox)) {
    throw new ApiProblem(
      problem(
        403,
        'mailbox-not-allowed',
        'This mailbox may not be watched',
        `'${mailbox}' is not in ALLOWED_WATCH_MAILBOXES; add it (or its *@domain) to the setting to watch it.`,
        { mailbox },
      ),
    );
  }
  if (!deps.service) {
    throw new ApiProblem(
      problem(
        503,
        'watch-not-configured',
        'Watching is not configured',
        "WEBHOOK_BASE_URL is not set: set it to the app's public https origin (Bicep sets it to the app's host name), so Graph can call /api/graph/notifications.",
      ),
    );
  }
  if (deps.config.graphPermissionCheck === 'token') {
    const token = await deps.credential.explainGraphToken();
    if (!WATCH_PERMISSIONS_ACCEPTED.some((role) => token.roles.includes(role))) {
      throw new ApiProblem(
        problem(
          403,
          'admin-consent-missing',
          'The gateway lacks a Microsoft Graph permission',
          `admin consent not granted for ${WATCH_PERMISSION}: the app's token carries ${token.roles.length ? token.roles.join(', ') : 'no application permissions'}. Add the Microsoft Graph application permission ${WATCH_PERMISSION} (least privileged for subscriptions, message metadata and delta) and grant admin consent.`,
          { missingPermissions: [WATCH_PERMISSION] },
        ),
      );
    }
  }
  const { outcome, record } = await deps.service.watch(mailbox);
  context.info(
    `watch ${mailbox}: ${outcome}, subscription ${record.subscriptionId} until ${record.expirationDateTime}`,
  );
  return json(outcome === 'created' ? 201 : 200, { ...mailboxView(record), outcome });
}

async function unwatch(
  mailbox: string,
  context: InvocationContext,
  deps: MailboxApiDependencies,
): Promise<HttpResponseInit> {
  if (deps.service) {
    if (!(await deps.service.unwatch(mailbox))) throw notWatched(mailbox);
  } else {
    const existing = await deps.store.get(mailbox);
    if (!existing) throw notWatched(mailbox);
    await deps.store.remove(existing);
  }
  context.info(`unwatched ${mailbox}`);
  return { status: 204 };
}

function required(mailbox: string | undefined): string {
  if (mailbox === undefined) {
    throw new ApiProblem(
      problem(400, 'mailbox-missing', 'Mailbox missing', 'Name the mailbox: /api/mailboxes/{address}.'),
    );
  }
  return mailbox;
}

/** The path's mailbox, judged by the send API's address rules before any storage or Graph call. */
function parseMailbox(value: string): string {
  const address = value.trim().toLowerCase();
  const problems = addressProblems(address);
  if (problems.length === 0 && !MAILBOX_DOMAIN.test(address)) {
    problems.push('must end in a domain of letters, digits and hyphens, such as @contoso.com');
  }
  if (problems.length > 0) {
    throw new ApiProblem(
      problem(
        400,
        'invalid-mailbox',
        'Not a mailbox address',
        `The path must name a mailbox address such as support@contoso.com; the mailbox ${problems.join('; ')}.`,
        { errors: problems.map((message) => ({ field: 'mailbox', message })) },
      ),
    );
  }
  return address;
}

function notWatched(mailbox: string): ApiProblem {
  return new ApiProblem(
    problem(404, 'mailbox-not-watched', 'Mailbox not watched', `'${mailbox}' is not watched.`, { mailbox }),
  );
}

function json(status: number, body: unknown): HttpResponseInit {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** Graph's refusals, in words an operator can act on. */
function graphProblem(err: unknown): ApiProblem | undefined {
  if (!(err instanceof GraphError)) return undefined;
  const graph = {
    code: err.code ?? undefined,
    status: err.statusCode,
    requestId: err.requestId ?? err.headers?.get('request-id') ?? undefined,
    clientRequestId: err.headers?.get('client-request-id') ?? undefined,
  };
  const make = (
    status: number,
    slug: ProblemSlug,
    title: string,
    detail: string,
    headers: Record<string, string> = {},
  ) => new ApiProblem(problem(status, slug, title, detail, { graph }), headers);
  if (err.statusCode === 400 && /validation/i.test(err.message)) {
    return make(
      502,
      'webhook-validation-failed',
      "Graph could not validate the gateway's webhook",
      `Graph refused the subscription because its validation request to WEBHOOK_BASE_URL failed ("${err.message}"). Check that WEBHOOK_BASE_URL is this app's public https origin and reachable from the internet.`,
    );
  }
  switch (err.code) {
    case 'ErrorAccessDenied':
      return make(
        403,
        'mailbox-out-of-scope',
        'The app may not read this mailbox',
        `Graph denied access ("${err.message}"): the mailbox is outside the app's Exchange application access scope, or ${WATCH_PERMISSION} lacks consent.`,
      );
    case 'MailboxNotEnabledForRESTAPI':
      return make(422, 'mailbox-not-enabled', 'The mailbox cannot be used through Graph', err.message);
    case 'ErrorInvalidUser':
    case 'Request_ResourceNotFound':
      return make(422, 'mailbox-not-found', 'No such mailbox', `The tenant has no such mailbox ("${err.message}").`);
  }
  if (err.statusCode === 429 || err.statusCode === 503 || err.statusCode === 504) {
    return make(503, 'graph-throttled', 'Microsoft Graph is busy', `Graph answered ${err.statusCode}; retry later.`, {
      'retry-after': '30',
    });
  }
  if (err.statusCode === 403) {
    return make(
      403,
      'graph-forbidden',
      'Microsoft Graph refused',
      `Graph answered 403 ${err.code ?? ''}: ${err.message}`,
    );
  }
  return make(
    502,
    'graph-error',
    'Microsoft Graph refused the request',
    `Graph answered ${err.statusCode} ${err.code ?? ''}: ${err.message}`,
  );
}
