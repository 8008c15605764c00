/**
 * Graph's refusals of a message API call as problems an operator or caller can act on, and the token check made
 * before Graph is called: reading bodies, attachments and MIME needs Mail.Read (or Mail.ReadWrite), listing
 * metadata needs Mail.ReadBasic.All (or more), and acting on mail needs Mail.ReadWrite.
 */
import type { AppCredential } from '../identity/appCredential';
import {
  MAILBOX_WRITE_PERMISSION,
  READ_PERMISSION,
  READ_PERMISSIONS_ACCEPTED,
  LIST_PERMISSIONS_ACCEPTED,
  WATCH_PERMISSION,
} from '../identity/graphPermissions';
import { graphForbidden, type GraphProblemCases } from '../graph/graphProblems';
import type { GatewayConfig } from '../platform/config';
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';

/** What a message API call needs of the token. */
export type MessageAccess = 'list' | 'read' | 'write';

const NEEDS: Record<MessageAccess, { name: string; accepted: readonly string[]; what: string }> = {
  list: { name: WATCH_PERMISSION, accepted: LIST_PERMISSIONS_ACCEPTED, what: 'list messages' },
  read: {
    name: READ_PERMISSION,
    accepted: READ_PERMISSIONS_ACCEPTED,
    what: 'read message bodies, attachments and MIME',
  },
  write: {
    name: MAILBOX_WRITE_PERMISSION,
    accepted: [MAILBOX_WRITE_PERMISSION],
    what: 'change, move or delete messages',
  },
};

/**
 * With GRAPH_PERMISSION_CHECK=token, throws 403 `permission-missing` naming the permission unless the gateway's token
 * carries one that allows `access`; Graph is not called.
 */
export async function requireMessagePermission(
  config: GatewayConfig,
  credential: Pick<AppCredential, 'explainGraphToken'>,
  access: MessageAccess,
): Promise<void> {
  if (config.graphPermissionCheck !== 'token') return;
  const need = NEEDS[access];
  const { roles } = await credential.explainGraphToken();
  if (need.accepted.some((role) => roles.includes(role))) return;
  throw new HttpProblem(
    problem(
      403,
      'permission-missing',
      'The gateway lacks a Microsoft Graph permission',
      `To ${need.what} the app needs the Microsoft Graph application permission ${need.name} (or ${need.accepted.filter((r) => r !== need.name).join(' or ') || 'nothing less'}); its token carries ${roles.length ? roles.join(', ') : 'no application permissions'}. Add ${need.name} to the app registration and grant admin consent.`,
      { missingPermissions: [need.name] },
    ),
  );
}

/** How the message API words Graph's refusals, and the ones only it meets. */
export const MESSAGE_GRAPH_CASES: GraphProblemCases = {
  before: (failure, make) => {
    if (failure.code === 'ErrorItemNotFound' || (failure.status === 404 && failure.code === 'ResourceNotFound')) {
      return make(
        404,
        'message-not-found',
        'No such message',
        'The mailbox holds no such message or attachment: it was moved (a move gives a message a new id), deleted, or the id is wrong.',
      );
    }
    if (failure.code === 'ErrorInvalidIdMalformed') {
      return make(
        400,
        'invalid-message-id',
        'Graph refused an id',
        `Graph says an id of the request is malformed ("${failure.message}"): the message, attachment or folder id is not one Graph handed out.`,
      );
    }
    return undefined;
  },
  accessDenied: (failure) => ({
    title: 'The app may not use this mailbox',
    detail: `Graph denied access ("${failure.message}"): the mailbox is outside the app's Exchange application access scope (RBAC for Applications or an application access policy), or the app lacks the permission this call needs.`,
  }),
  after: graphForbidden,
  throttled: (failure) => ({
    title: 'Microsoft Graph is busy',
    detail: `Graph answered ${failure.status} for this mailbox beyond the gateway's wait budget (GRAPH_MAX_WAIT_SECONDS); retry after Retry-After.`,
    retryAfterSeconds: Math.max(1, Math.ceil(failure.retryAfterSeconds ?? 30)),
  }),
};
