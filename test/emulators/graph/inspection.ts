/**
 * `/_emulator/...`: a window into the emulator for the sandbox and for people (what requests arrived, what
 * landed in which mailbox). No token: it is not part of Graph, and it answers loopback clients only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../httpServer';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { OutboundMail } from './delivery';
import type { MailboxStore, StoredFolder, StoredMessage } from './mailboxStore';
import type { LifecycleEvent, NotificationDelivery } from './notificationDelivery';
import type { SeenRequest } from './requestLog';
import type { MinuteCount, SubmissionSummary } from './submissionQueue';

/** Path prefix of the inspection API. */
export const INSPECTION_PREFIX = '/_emulator';

/** What the inspection API reads. */
export interface InspectionSource {
  tenant: EmulatedTenant;
  requests: readonly SeenRequest[];
  /** Mail sent to recipients outside the tenant. */
  outbound: readonly OutboundMail[];
  mailboxOf: (user: TenantUser) => MailboxStore;
  /** What Exchange did with the mailbox's accepted submissions (`/_emulator/mailboxes/{m}/submissions`). */
  submissions?: (user: TenantUser) => SubmissionView;
  /** Subscriptions, the delivery log and the controls the sandbox drives. */
  notifications?: NotificationControl;
}

/** A mailbox's submissions with its accepted-send count and deliveries per emulated minute. */
export type SubmissionView = SubmissionSummary & { sendsAccepted: number; deliveredPerMinute: MinuteCount[] };

/** What the inspection API shows and drives of change notifications. */
export interface NotificationControl {
  /** Every live subscription as Graph's resource (clientState redacted here). */
  subscriptions(): Array<Record<string, unknown>>;
  deliveries(): readonly NotificationDelivery[];
  /** Sends a lifecycle event; undefined when there is no such subscription. */
  lifecycle(id: string, event: LifecycleEvent): Promise<NotificationDelivery> | undefined;
  /** Turns dropping on or off; false when there is no such subscription. */
  drop(id: string, on: boolean): boolean;
  advanceClock(ms: number): void;
  now(): Date;
}

const LIFECYCLE_EVENTS = new Set(['missed', 'reauthorizationRequired', 'subscriptionRemoved']);

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** True when `pathname` belongs to the inspection API. */
export function isInspectionPath(pathname: string): boolean {
  return pathname === INSPECTION_PREFIX || pathname.startsWith(`${INSPECTION_PREFIX}/`);
}

/** Answers an inspection request. */
export async function serveInspection(
  req: IncomingMessage,
  res: ServerResponse,
  source: InspectionSource,
): Promise<void> {
  if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
    sendJson(res, 403, { error: { code: 'Forbidden', message: 'The emulator inspection API answers loopback only.' } });
    return;
  }
  if (req.method === 'POST' && source.notifications) {
    await serveControl(req, res, source.notifications);
    return;
  }
  if (req.method !== 'GET') {
    sendJson(
      res,
      405,
      {
        error: {
          code: 'MethodNotAllowed',
          message: 'The inspection API answers GET (and POST for the change-notification controls).',
        },
      },
      { allow: 'GET' },
    );
    return;
  }
  const url = new URL(req.url ?? '/', 'https://localhost');
  const parts = url.pathname
    .slice(INSPECTION_PREFIX.length)
    .split('/')
    .filter((p) => p !== '')
    .map((p) => decodeURIComponent(p));

  if (parts.length === 1 && parts[0] === 'requests') {
    sendJson(res, 200, { value: source.requests });
    return;
  }
  if (parts.length === 1 && parts[0] === 'subscriptions' && source.notifications) {
    sendJson(res, 200, { value: source.notifications.subscriptions() });
    return;
  }
  if (parts.length === 1 && parts[0] === 'notifications' && source.notifications) {
    sendJson(res, 200, { value: source.notifications.deliveries().map(redactDelivery) });
    return;
  }
  if (parts.length === 1 && parts[0] === 'outbound') {
    sendJson(res, 200, { value: source.outbound });
    return;
  }
  if (parts[0] === 'mailboxes' && (parts.length === 2 || parts.length === 3)) {
    const user = source.tenant.findUser(parts[1]);
    if (!user) {
      sendJson(res, 404, { error: { code: 'NotFound', message: `No user '${parts[1]}' in the emulated tenant.` } });
      return;
    }
    const mailbox = source.mailboxOf(user);
    if (parts.length === 2) {
      sendJson(res, 200, {
        user: {
          id: user.id,
          userPrincipalName: user.userPrincipalName,
          mail: user.mail,
          restEnabled: user.restEnabled,
        },
        folders: mailbox.folders().map((f) => folderView(mailbox, f)),
      });
      return;
    }
    if (parts[2] === 'submissions' && source.submissions) {
      sendJson(res, 200, source.submissions(user));
      return;
    }
    const folder = mailbox.findFolder(parts[2]);
    if (!folder) {
      sendJson(res, 404, { error: { code: 'NotFound', message: `No folder '${parts[2]}' in ${user.mail}.` } });
      return;
    }
    sendJson(res, 200, folderView(mailbox, folder));
    return;
  }
  sendJson(res, 404, {
    error: {
      code: 'NotFound',
      message:
        'Try /_emulator/requests, /_emulator/outbound, /_emulator/subscriptions, /_emulator/notifications, /_emulator/mailboxes/{address}, /_emulator/mailboxes/{address}/{folder} or /_emulator/mailboxes/{address}/submissions.',
    },
  });
}

/**
 * POST controls: `subscriptions/{id}/lifecycle?event=...`, `subscriptions/{id}/drop-notifications?on=true|false` and
 * `clock/advance?minutes=N`.
 */
async function serveControl(req: IncomingMessage, res: ServerResponse, control: NotificationControl): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://localhost');
  const parts = url.pathname
    .slice(INSPECTION_PREFIX.length)
    .split('/')
    .filter((p) => p !== '')
    .map((p) => decodeURIComponent(p));
  const bad = (message: string) => sendJson(res, 400, { error: { code: 'BadRequest', message } });
  const missing = (id: string) =>
    sendJson(res, 404, { error: { code: 'NotFound', message: `No live subscription '${id}'.` } });
  if (parts.length === 3 && parts[0] === 'subscriptions' && parts[2] === 'lifecycle') {
    const event = url.searchParams.get('event') ?? '';
    if (!LIFECYCLE_EVENTS.has(event)) {
      bad('event must be missed, reauthorizationRequired or subscriptionRemoved.');
      return;
    }
    let delivery: NotificationDelivery;
    try {
      const sent = control.lifecycle(parts[1], event as LifecycleEvent);
      if (!sent) {
        missing(parts[1]);
        return;
      }
      delivery = await sent;
    } catch (err) {
      bad(err instanceof Error ? err.message : String(err));
      return;
    }
    sendJson(res, 200, redactDelivery(delivery));
    return;
  }
  if (parts.length === 3 && parts[0] === 'subscriptions' && parts[2] === 'drop-notifications') {
    const on = url.searchParams.get('on');
    if (on !== 'true' && on !== 'false') {
      bad('on must be true or false.');
      return;
    }
    if (!control.drop(parts[1], on === 'true')) missing(parts[1]);
    else sendJson(res, 200, { id: parts[1], dropping: on === 'true' });
    return;
  }
  if (parts.length === 2 && parts[0] === 'clock' && parts[1] === 'advance') {
    const minutes = Number(url.searchParams.get('minutes'));
    if (!(minutes >= 0) || !Number.isFinite(minutes)) {
      bad('minutes must be a non-negative number.');
      return;
    }
    control.advanceClock(minutes * 60_000);
    sendJson(res, 200, { now: control.now().toISOString() });
    return;
  }
  sendJson(res, 404, {
    error: {
      code: 'NotFound',
      message:
        'POST /_emulator/subscriptions/{id}/lifecycle?event=..., /_emulator/subscriptions/{id}/drop-notifications?on=..., or /_emulator/clock/advance?minutes=N.',
    },
  });
}

/** The delivery without clientState in the posted items (the log is shown to people). */
function redactDelivery(delivery: NotificationDelivery): NotificationDelivery {
  const body = delivery.body as { value?: unknown[] } | undefined;
  if (!body || !Array.isArray(body.value)) return delivery;
  return {
    ...delivery,
    body: {
      ...body,
      value: body.value.map((item) => {
        if (!item || typeof item !== 'object' || typeof (item as { clientState?: unknown }).clientState !== 'string') {
          return item;
        }
        return { ...(item as Record<string, unknown>), clientState: '***' };
      }),
    },
  };
}

function folderView(mailbox: MailboxStore, folder: StoredFolder): Record<string, unknown> {
  return {
    ...mailbox.folderResource(folder),
    wellKnownName: folder.wellKnownName,
    messages: mailbox.listMessages(folder.id).map(messageView),
  };
}

/** The stored message with attachment contents reduced to their size, so large mail stays readable. */
function messageView(message: StoredMessage): Record<string, unknown> {
  return {
    ...message,
    attachments: message.attachments.map(({ contentBytes, ...rest }) => ({
      ...rest,
      contentBytesLength: contentBytes?.length ?? 0,
    })),
  };
}
