/**
 * `PUT/GET/DELETE /api/mailboxes[/{mailbox}]`: watch a mailbox, list or show watched ones, stop watching. The
 * watch policy (`ALLOWED_WATCH_MAILBOXES`) and the token's permissions are checked before Graph is called. Views
 * never show the clientState or the delta link.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { GraphError } from '@microsoft/microsoft-graph-client';
import { storageUnavailableProblem } from '../platform/storage/storageErrors';
import { GraphFailure } from '../graph/graphFailure';
import { graphFailureProblem, graphForbidden, type GraphProblemCases } from '../graph/graphProblems';
import { parseMailboxPath as parseMailbox } from '../mail/mailboxPath';
import type { AppCredential } from '../identity/appCredential';
import type { GatewayConfig } from '../platform/config';
import { isMailboxAllowed } from '../platform/mailboxPolicy';
import { HttpProblem } from '../platform/problems/httpProblem';
import { internalProblem } from '../platform/problems/internalProblem';
import { problem } from '../platform/problems/problem';
import { featurePermission, WATCH_PERMISSION, WATCH_PERMISSIONS_ACCEPTED } from '../identity/graphPermissions';
import { NO_CONTENT, readWatchRequest, wantsContent, type EventContent } from './content/eventContent';
import { WatchBusyError, type WatchService } from './watchService';
import { DEFAULT_FOLDER } from './watchFolders';
import type { Delivery, DeliveryMode, WatchedMailbox, WatchStore } from './watchStore';

/** What the mailbox API needs. */
export interface MailboxApiDependencies {
  config: GatewayConfig;
  credential: AppCredential;
  store: WatchStore;
  /** Undefined when WEBHOOK_BASE_URL is unset. */
  service: WatchService | undefined;
}

/** One watched folder of a mailbox as the API shows it. */
export interface FolderView {
  folder: string;
  /** How the folder is read now. */
  mode: DeliveryMode;
  modeReason: string | null;
  /** Null while polled. */
  subscriptionId: string | null;
  expirationDateTime: string | null;
  /** When it is next read by delta (a poll, or under push a reconciliation). */
  nextReadAt: string | null;
  /** Under push: mail the reconciliation found that Graph never announced. */
  reconciled: number;
  lastRenewal: { at: string; outcome: string; error?: string } | null;
  lastEventAt: string | null;
  eventsPublished: number;
  lastCaughtUpAt: string | null;
}

/**
 * A watched mailbox as the API shows it: the subscription fields at the top are its first folder's (the Inbox's, as
 * before folders), the counters cover every folder, and `folders` shows each.
 */
export interface MailboxView {
  mailbox: string;
  /** The first folder's subscription; null while it is polled. */
  subscriptionId: string | null;
  expirationDateTime: string | null;
  createdAt: string;
  lastRenewal: { at: string; outcome: string; error?: string } | null;
  lastEventAt: string | null;
  eventsPublished: number;
  lastCaughtUpAt: string | null;
  /** What its mail.received events carry of the mail. */
  content: EventContent;
  /** The delivery asked for. */
  delivery: Delivery;
  /** The mode in force (the first folder's; each folder says its own) and why. */
  mode: DeliveryMode;
  modeReason: string | null;
  /** Mail the reconciliation found that Graph never announced, all folders. */
  reconciled: number;
  /** Present when BOUNCE_TRACKING watches the Inbox for non-delivery reports only (no mail.received). */
  bounceOnly?: true;
  folders: FolderView[];
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
        return await watch(parseMailbox(required(mailbox)), request, context, deps);
      case 'DELETE':
        return await unwatch(parseMailbox(required(mailbox)), context, deps);
      default:
        throw new HttpProblem(
          problem(405, 'method-not-allowed', 'Method not allowed', `${request.method} is not supported.`),
        );
    }
  } catch (err) {
    if (err instanceof HttpProblem) return err.toResponse();
    const storage = storageUnavailableProblem(err, deps.config, 'Repeat the request once storage answers.');
    if (storage) {
      context.error(`mailbox API: ${storage.doc.detail}`);
      return storage.toResponse();
    }
    if (err instanceof WatchBusyError) {
      return new HttpProblem(
        problem(503, 'watch-busy', 'The mailbox is being changed', `${err.message}; retry shortly.`),
        { retryAfterSeconds: 30 },
      ).toResponse();
    }
    if (err instanceof GraphError) {
      const failure = GraphFailure.of(err);
      const mapped = graphFailureProblem(failure, WATCH_GRAPH_CASES);
      context.warn(`mailbox API: Graph answered ${mapped.doc.status} ${failure.code ?? ''}`);
      return mapped.toResponse();
    }
    return internalProblem(context, err, { operation: 'mailbox API' }).toResponse();
  }
}

function folderView(record: WatchedMailbox): FolderView {
  return {
    folder: record.folder ?? DEFAULT_FOLDER,
    mode: record.mode ?? 'push',
    modeReason: record.modeReason ?? null,
    subscriptionId: record.subscriptionId || null,
    expirationDateTime: record.expirationDateTime || null,
    nextReadAt: record.nextReadAt ?? null,
    reconciled: record.reconciled ?? 0,
    lastRenewal: record.lastRenewal ?? null,
    lastEventAt: record.lastEventAt ?? null,
    eventsPublished: record.eventsPublished,
    lastCaughtUpAt: record.deltaSyncedAt ?? null,
  };
}

/** The view of a mailbox's stored folder records (at least one), the Inbox's first when it is watched. */
function mailboxView(records: readonly WatchedMailbox[]): MailboxView {
  const folders = [...records].sort(
    (a, b) =>
      Number((b.folder ?? DEFAULT_FOLDER) === DEFAULT_FOLDER) - Number((a.folder ?? DEFAULT_FOLDER) === DEFAULT_FOLDER),
  );
  const first = folders[0];
  const views = folders.map(folderView);
  const lastEventAt = views
    .map((v) => v.lastEventAt)
    .reduce<string | null>((a, b) => (b && (!a || b > a) ? b : a), null);
  const head = views[0];
  return {
    mailbox: first.mailbox,
    subscriptionId: head.subscriptionId,
    expirationDateTime: head.expirationDateTime,
    createdAt: first.createdAt,
    lastRenewal: head.lastRenewal,
    lastCaughtUpAt: head.lastCaughtUpAt,
    mode: head.mode,
    modeReason: head.modeReason,
    lastEventAt,
    eventsPublished: views.reduce((sum, v) => sum + v.eventsPublished, 0),
    reconciled: views.reduce((sum, v) => sum + v.reconciled, 0),
    content: first.content ?? NO_CONTENT,
    delivery: first.delivery ?? 'push',
    ...(first.bounceOnly ? { bounceOnly: true as const } : {}),
    folders: views,
  };
}

/** The records grouped by mailbox, in address order. */
function byMailbox(records: readonly WatchedMailbox[]): WatchedMailbox[][] {
  const groups = new Map<string, WatchedMailbox[]>();
  for (const record of records) groups.set(record.mailbox, [...(groups.get(record.mailbox) ?? []), record]);
  return [...groups.values()];
}

async function list(deps: MailboxApiDependencies): Promise<HttpResponseInit> {
  const records = await deps.store.list();
  return json(200, { value: byMailbox(records).map(mailboxView) });
}

async function show(mailbox: string, deps: MailboxApiDependencies): Promise<HttpResponseInit> {
  const records = await deps.store.listMailbox(mailbox);
  if (records.length === 0) throw notWatched(mailbox);
  return json(200, mailboxView(records));
}

async function watch(
  mailbox: string,
  request: HttpRequest,
  context: InvocationContext,
  deps: MailboxApiDependencies,
): Promise<HttpResponseInit> {
  const { content, folders, delivery } = await readWatchRequest(request);
  if (!isMailboxAllowed(deps.config.watch.allowedMailboxes, mailbox)) {
    throw new HttpProblem(
      problem(
        403,
        'mailbox-not-allowed',
        'This mailbox may not be watched',
        `'${mailbox}' is not in ALLOWED_WATCH_MAILBOXES; add it (or its *@domain) to the setting to watch it.`,
        { mailbox },
      ),
    );
  }
  if (!deps.service || (delivery === 'push' && !deps.config.watch.webhookBaseUrl)) {
    throw new HttpProblem(
      problem(
        503,
        'watch-not-configured',
        'Watching is not configured',
        "WEBHOOK_BASE_URL is not set: set it to the app's public https origin (Bicep sets it to the app's host name), so Graph can call /api/graph/notifications, or watch with delivery poll or auto.",
      ),
    );
  }
  if (deps.config.graphPermissionCheck === 'token') {
    const token = await deps.credential.explainGraphToken();
    const carries = token.roles.length ? token.roles.join(', ') : 'no application permissions';
    if (!WATCH_PERMISSIONS_ACCEPTED.some((role) => token.roles.includes(role))) {
      throw new HttpProblem(
        problem(
          403,
          'admin-consent-missing',
          'The gateway lacks a Microsoft Graph permission',
          `admin consent not granted for ${WATCH_PERMISSION}: the app's token carries ${carries}. Add the Microsoft Graph application permission ${WATCH_PERMISSION} (least privileged for subscriptions, message metadata and delta) and grant admin consent.`,
          { missingPermissions: [WATCH_PERMISSION] },
        ),
      );
    }
    const reading = featurePermission('contentEvents');
    if (wantsContent(content) && !reading.accepted.some((role) => token.roles.includes(role))) {
      throw new HttpProblem(
        problem(
          403,
          'permission-missing',
          'The gateway lacks the Microsoft Graph permission this feature needs',
          `Content in events (body or attachment list) needs the Microsoft Graph application permission ${reading.permission} (Mail.ReadBasic.All reads neither); the app's token carries ${carries}. Grant ${reading.permission} and admin consent, or watch without content.`,
          { missingPermissions: [reading.permission], feature: reading.feature },
        ),
      );
    }
  }
  const { outcome, record, records } = await deps.service.watch(mailbox, content, folders, delivery);
  const modes = records.map((r) => `${r.folder ?? DEFAULT_FOLDER} by ${r.mode ?? 'push'}`).join(', ');
  context.info(
    `watch ${mailbox}: ${outcome}, delivery ${delivery} (${modes}), subscription ${record.subscriptionId || 'none'} until ${record.expirationDateTime || 'n/a'}, content body ${record.content?.body ?? 'none'}, attachments ${record.content?.attachments ?? 'none'}`,
  );
  for (const polled of records.filter((r) => r.mode === 'poll' && delivery === 'auto')) {
    context.warn(
      `watch ${mailbox}: ${polled.folder ?? DEFAULT_FOLDER} falls back to polling (${polled.modeReason ?? 'unknown'}); push is tried again at each renewal run`,
    );
  }
  return json(outcome === 'created' ? 201 : 200, { ...mailboxView(records), outcome });
}

async function unwatch(
  mailbox: string,
  context: InvocationContext,
  deps: MailboxApiDependencies,
): Promise<HttpResponseInit> {
  if (deps.service) {
    if (!(await deps.service.unwatch(mailbox))) throw notWatched(mailbox);
  } else {
    const existing = await deps.store.listMailbox(mailbox);
    if (existing.length === 0) throw notWatched(mailbox);
    for (const record of existing) await deps.store.remove(record);
  }
  context.info(`unwatched ${mailbox}`);
  return { status: 204 };
}

function required(mailbox: string | undefined): string {
  if (mailbox === undefined) {
    throw new HttpProblem(
      problem(400, 'mailbox-missing', 'Mailbox missing', 'Name the mailbox: /api/mailboxes/{address}.'),
    );
  }
  return mailbox;
}

/** The path's mailbox, judged by the send API's address rules before any storage or Graph call. */
function notWatched(mailbox: string): HttpProblem {
  return new HttpProblem(
    problem(404, 'mailbox-not-watched', 'Mailbox not watched', `'${mailbox}' is not watched.`, { mailbox }),
  );
}

function json(status: number, body: unknown): HttpResponseInit {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** How the mailbox API words Graph's refusals, and the refusals only watching meets. */
const WATCH_GRAPH_CASES: GraphProblemCases = {
  before: (failure, make) =>
    failure.status === 400 && /validation/i.test(failure.message)
      ? make(
          502,
          'webhook-validation-failed',
          "Graph could not validate the gateway's webhook",
          `Graph refused the subscription because its validation request to WEBHOOK_BASE_URL failed ("${failure.message}"). Check that WEBHOOK_BASE_URL is this app's public https origin and reachable from the internet.`,
        )
      : undefined,
  accessDenied: (failure) => ({
    title: 'The app may not read this mailbox',
    detail: `Graph denied access ("${failure.message}"): the mailbox is outside the app's Exchange application access scope, or ${WATCH_PERMISSION} lacks consent.`,
  }),
  after: graphForbidden,
  throttled: (failure) => ({
    title: 'Microsoft Graph is busy',
    detail: `Graph answered ${failure.status}; retry later.`,
    retryAfterSeconds: 30,
  }),
};
