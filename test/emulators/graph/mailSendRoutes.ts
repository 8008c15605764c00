/**
 * Sending: `POST /users/{user}/sendMail` (one call, attachments under 3 MB inline) and
 * `POST /users/{user}/messages/{id}/send` (a draft built up first, large attachments through upload sessions). Both
 * need Mail.Send, apply Exchange's submission rules (recipients, Send As, the mailbox's MaxSendSize) and answer 202 with no body; the message then
 * waits in the mailbox's Outbox until Exchange's sending limits let it leave (see submissionQueue.ts), and its Sent
 * Items copy appears when it does.
 */
import type { Recipient } from '@microsoft/microsoft-graph-types';
import type { EmulatedTenant, TenantUser } from '../tenant';
import { GraphError } from './graphResponse';
import { resolveMessage } from './mailReadRoutes';
import { assertSubmittable, deletesAfterSubmit, readMessage, readParameters } from './messageInput';
import { DEFAULT_MAX_BODY_BYTES } from './pipeline';
import type { GraphRequestContext, GraphRoute } from './router';
import type { SubmissionQueue } from './submissionQueue';

/** Application permissions that can send mail. */
export const MAIL_SEND_ROLES: readonly string[] = ['Mail.Send'];

/** What the send routes need from the emulator. */
export interface MailSendDeps {
  tenant: EmulatedTenant;
  /** Exchange's Outboxes: what is accepted here leaves when the sending limits allow. */
  submissions: SubmissionQueue;
}

/** Text Exchange answers a `from` the mailbox has no Send As right on. */
export const SEND_AS_DENIED_MESSAGE =
  'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.';

/** What Exchange answers a message larger than the sending mailbox's MaxSendSize (sendMail, or a draft's send). */
export const MESSAGE_SIZE_EXCEEDED_MESSAGE = 'The message exceeds the maximum supported size.';

/**
 * The message's size as the emulator counts it against MaxSendSize: the body, the subject and each attachment's
 * bytes. A lower bound of what Exchange counts (it adds headers and MIME encoding), so that the emulator never
 * refuses what Exchange would accept.
 */
export function messageSizeBytes(message: {
  subject?: string | null;
  body?: { content?: string | null } | null;
  attachments?: readonly { size?: number | null; contentBytes?: string | null }[] | null;
}): number {
  let size = Buffer.byteLength(message.subject ?? '', 'utf8') + Buffer.byteLength(message.body?.content ?? '', 'utf8');
  for (const attachment of message.attachments ?? []) {
    size += attachment.size ?? (attachment.contentBytes ? Buffer.from(attachment.contentBytes, 'base64').length : 0);
  }
  return size;
}

/** Refuses a message larger than `mailbox` may send (its MaxSendSize) with Exchange's 413 ErrorMessageSizeExceeded. */
export function assertWithinSendSize(mailbox: TenantUser, message: Parameters<typeof messageSizeBytes>[0]): void {
  if (messageSizeBytes(message) > mailbox.maxSendSizeBytes) {
    throw new GraphError(413, 'ErrorMessageSizeExceeded', MESSAGE_SIZE_EXCEEDED_MESSAGE);
  }
}

/**
 * Refuses a `from` that is neither the mailbox's own address nor one it holds Send As on (tenant.sendAs).
 * Throws 403 ErrorSendAsDenied.
 */
export function assertMaySendAs(tenant: EmulatedTenant, mailbox: TenantUser, from: Recipient | null | undefined): void {
  const address = from?.emailAddress?.address?.trim().toLowerCase();
  if (!address) return;
  if (address === mailbox.mail.toLowerCase() || address === mailbox.userPrincipalName.toLowerCase()) return;
  if (tenant.sendAs.get(mailbox.id)?.has(address)) return;
  throw new GraphError(403, 'ErrorSendAsDenied', SEND_AS_DENIED_MESSAGE);
}

/** The send routes. */
export function mailSendRoutes(deps: MailSendDeps): GraphRoute[] {
  return [
    {
      method: 'POST',
      path: '/users/{user}/sendMail',
      roles: MAIL_SEND_ROLES,
      mailbox: true,
      // Graph's JSON request limit; attachments bigger than this have to go through a draft and an upload session.
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      handler: (ctx) => sendMail(ctx, deps),
    },
    {
      method: 'POST',
      path: '/users/{user}/messages/{id}/send',
      roles: MAIL_SEND_ROLES,
      mailbox: true,
      handler: (ctx) => sendDraft(ctx, deps),
    },
  ];
}

function sendMail(ctx: GraphRequestContext, deps: MailSendDeps) {
  refuseMime(ctx);
  const params = readParameters(ctx, 'sendMail', ['message', 'saveToSentItems']);
  if (params.message === undefined || params.message === null) {
    throw new GraphError(400, 'ErrorInvalidParameter', "The value of the parameter 'Message' is empty.");
  }
  const saveToSentItems = readFlag(params.saveToSentItems, true);
  const message = readMessage(params.message);
  assertSubmittable(message);
  assertMaySendAs(deps.tenant, ctx.user, message.from);
  assertWithinSendSize(ctx.user, message);
  deps.submissions.submit(ctx.user, message, saveToSentItems && !deletesAfterSubmit(message));
  return ctx.empty(202);
}

function sendDraft(ctx: GraphRequestContext, deps: MailSendDeps) {
  // The action has no parameters: an empty body (Content-Length: 0, as documented) or an empty JSON object.
  if (ctx.body.toString('utf8').trim() !== '') readParameters(ctx, 'send', []);
  const draft = resolveMessage(ctx.mailbox, ctx.params.id);
  if (!draft.isDraft) {
    throw new GraphError(400, 'ErrorInvalidOperation', 'Only a draft message can be sent.');
  }
  assertSubmittable(draft);
  assertMaySendAs(deps.tenant, ctx.user, draft.from);
  // Refused, the draft stays in Drafts, as Exchange leaves it.
  assertWithinSendSize(ctx.user, draft);
  // Sending takes the draft out of Drafts; its copy reaches Sent Items (new id) when it leaves the Outbox, unless the
  // client set PidTagDeleteAfterSubmit.
  ctx.mailbox.deleteMessage(draft.id);
  deps.submissions.submit(ctx.user, draft, !deletesAfterSubmit(draft));
  return ctx.empty(202);
}

/** sendMail's MIME form (`Content-Type: text/plain`, base64 MIME) is real Graph, but the emulator lacks it. */
function refuseMime(ctx: GraphRequestContext): void {
  if (/^\s*text\/plain/i.test(ctx.header('content-type') ?? '')) {
    throw new GraphError(501, 'NotImplemented', 'The Graph emulator does not implement sendMail in MIME format.');
  }
}

/** An Edm.Boolean parameter; Graph also takes the strings "true"/"false" (its own sendMail sample sends one). */
function readFlag(value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  throw new GraphError(
    400,
    'RequestBodyRead',
    `Cannot convert the literal '${JSON.stringify(value)}' to the expected type 'Edm.Boolean'.`,
  );
}
