/**
 * `/_emulator/...`: a read-only window into the emulator for the sandbox and for people (what requests arrived, what
 * landed in which mailbox). No token: it is not part of Graph, and it answers loopback clients only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../httpServer';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { OutboundMail } from './delivery';
import type { MailboxStore, StoredFolder, StoredMessage } from './mailboxStore';
import type { SeenRequest } from './requestLog';

/** Path prefix of the inspection API. */
export const INSPECTION_PREFIX = '/_emulator';

/** What the inspection API reads. */
export interface InspectionSource {
  tenant: EmulatedTenant;
  requests: readonly SeenRequest[];
  /** Mail sent to recipients outside the tenant. */
  outbound: readonly OutboundMail[];
  mailboxOf: (user: TenantUser) => MailboxStore;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** True when `pathname` belongs to the inspection API. */
export function isInspectionPath(pathname: string): boolean {
  return pathname === INSPECTION_PREFIX || pathname.startsWith(`${INSPECTION_PREFIX}/`);
}

/** Answers an inspection request. */
export function serveInspection(req: IncomingMessage, res: ServerResponse, source: InspectionSource): void {
  if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
    sendJson(res, 403, { error: { code: 'Forbidden', message: 'The emulator inspection API answers loopback only.' } });
    return;
  }
  if (req.method !== 'GET') {
    sendJson(
      res,
      405,
      { error: { code: 'MethodNotAllowed', message: 'The inspection API is read-only.' } },
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
        'Try /_emulator/requests, /_emulator/outbound, /_emulator/mailboxes/{address} or /_emulator/mailboxes/{address}/{folder}.',
    },
  });
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
