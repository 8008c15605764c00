/**
 * Large attachments (3 MB to 150 MB): `POST .../attachments/createUploadSession` opens a session whose `uploadUrl`
 * is pre-authenticated (an opaque token in the URL, shaped like Outlook's `.../AttachmentSessions('...')?authtoken=`),
 * and the client PUTs the bytes to it in order, at most 4 MB per request, without an Authorization header. The last
 * chunk adds the attachment to the draft. A refused chunk leaves the session where it was, so the client can resume
 * from `nextExpectedRanges`; every chunk counts against the upload budget of the app and mailbox that opened it.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { EmulatedTenant, TenantUser } from '../tenant';
import { decodeJwtPart } from '../tokenIssuer';
import { GraphError, type GraphResponse } from './graphResponse';
import { newItemId, type MailboxStore } from './mailboxStore';
import { resolveMessage } from './mailReadRoutes';
import { MAIL_WRITE_ROLES } from './draftRoutes';
import { asObject } from './messageInput';
import type { GraphRequestContext, GraphRoute } from './router';
import { UPLOAD_THROTTLED_MESSAGE, type UploadBudget } from './uploadBudget';

/** Smallest file an upload session accepts (smaller ones go in one POST). */
export const MIN_UPLOAD_SESSION_BYTES = 3 * 1024 * 1024;
/** Largest file an upload session accepts. */
export const MAX_UPLOAD_SESSION_BYTES = 150 * 1024 * 1024;
/** Largest chunk one PUT may carry. */
export const MAX_UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
/** How long an upload URL stays valid unless configured otherwise. */
export const DEFAULT_UPLOAD_SESSION_LIFETIME_MS = 2 * 60 * 60 * 1000;

/** An open upload session. */
interface UploadSession {
  id: string;
  token: string;
  owner: TenantUser;
  /** The app that opened it: its PUTs carry no token, yet count against this app's upload budget. */
  appId: string;
  messageId: string;
  name: string;
  contentType: string;
  size: number;
  isInline: boolean;
  contentId?: string;
  expiresAt: number;
  chunks: Buffer[];
  received: number;
}

/** The open upload sessions. */
export class UploadSessions {
  private readonly sessions = new Map<string, UploadSession>();

  constructor(readonly lifetimeMs: number) {}

  /** Opens a session; the caller builds the upload URL from its id and token. */
  open(fields: Omit<UploadSession, 'id' | 'token' | 'expiresAt' | 'chunks' | 'received'>, now: number): UploadSession {
    const session: UploadSession = {
      ...fields,
      id: newItemId(),
      token: randomBytes(32).toString('base64url'),
      expiresAt: now + this.lifetimeMs,
      chunks: [],
      received: 0,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session with `id` whose token is `token`; undefined when unknown, expired or the token is wrong. */
  find(id: string, token: string, now: number): UploadSession | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.expiresAt <= now) {
      this.sessions.delete(id);
      return undefined;
    }
    const expected = Buffer.from(session.token);
    const given = Buffer.from(token);
    return expected.length === given.length && timingSafeEqual(expected, given) ? session : undefined;
  }

  /** Ends a session. */
  close(id: string): void {
    this.sessions.delete(id);
  }

  /** Number of open sessions (expired ones included until touched). */
  get size(): number {
    return this.sessions.size;
  }
}

/** What the upload-session routes need from the emulator. */
export interface UploadSessionDeps {
  tenant: EmulatedTenant;
  sessions: UploadSessions;
  budget: UploadBudget;
  mailboxOf: (user: TenantUser) => MailboxStore;
}

/** The upload-session routes: creating a session (Graph, with a token) and the pre-authenticated upload URL. */
export function uploadSessionRoutes(deps: UploadSessionDeps): GraphRoute[] {
  const uploadUrl = {
    path: '/users/{owner}/messages/{message}/attachmentSessions/{session}',
    roles: [],
    mailbox: false,
    anonymous: true,
  } as const;
  return [
    {
      method: 'POST',
      path: '/users/{user}/messages/{id}/attachments/createUploadSession',
      roles: MAIL_WRITE_ROLES,
      mailbox: true,
      handler: (ctx) => createUploadSession(ctx, deps),
    },
    {
      ...uploadUrl,
      method: 'PUT',
      // Chunks over 4 MB must reach the handler, which refuses them without losing the session.
      maxBodyBytes: MAX_UPLOAD_SESSION_BYTES + MAX_UPLOAD_CHUNK_BYTES,
      handler: (ctx) => putChunk(ctx, deps),
    },
    {
      ...uploadUrl,
      method: 'DELETE',
      handler: (ctx) => {
        refuseAuthorization(ctx);
        const session = findSession(ctx, deps, Date.now());
        deps.sessions.close(session.id);
        return ctx.empty(204);
      },
    },
  ];
}

function createUploadSession(ctx: GraphRequestContext, deps: UploadSessionDeps) {
  const message = resolveMessage(ctx.mailbox, ctx.params.id);
  if (ctx.body.toString('utf8').trim() === '') {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const body = asObject(ctx.readJson(), 'createUploadSession');
  let rawItem: unknown;
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@')) continue;
    if (key.toLowerCase() !== 'attachmentitem') {
      throw new GraphError(
        400,
        'RequestBodyRead',
        `The parameter '${key}' in the request payload is not a valid parameter for the operation 'createUploadSession'.`,
      );
    }
    rawItem = value;
  }
  if (rawItem === undefined || rawItem === null) {
    throw new GraphError(400, 'ErrorInvalidParameter', "The value of the parameter 'AttachmentItem' is empty.");
  }
  const item = readAttachmentItem(rawItem);
  if (item.size < MIN_UPLOAD_SESSION_BYTES) {
    throw new GraphError(
      400,
      'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize',
      `The attachment size ${item.size} is less than the minimum size of ${MIN_UPLOAD_SESSION_BYTES} bytes for an upload session; attach smaller files with a single POST to the attachments collection.`,
    );
  }
  if (item.size > MAX_UPLOAD_SESSION_BYTES) {
    throw new GraphError(
      400,
      'ErrorAttachmentSizeLimitExceeded',
      'The file attachment exceeds the maximum supported size.',
    );
  }
  if (!ctx.appId) throw new Error('createUploadSession reached without an app id');
  const now = Date.now();
  const session = deps.sessions.open({ ...item, owner: ctx.user, appId: ctx.appId, messageId: message.id }, now);
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#microsoft.graph.uploadSession`,
    uploadUrl:
      `${ctx.baseUrl}/Users('${sessionOwner(deps.tenant, session)}')/Messages('${session.messageId}')` +
      `/AttachmentSessions('${session.id}')?authtoken=${session.token}`,
    expirationDateTime: new Date(session.expiresAt).toISOString(),
    nextExpectedRanges: ['0-'],
  });
}

function putChunk(ctx: GraphRequestContext, deps: UploadSessionDeps): GraphResponse {
  refuseAuthorization(ctx);
  const now = Date.now();
  const session = findSession(ctx, deps, now);
  const bytes = ctx.body.length;
  const admission = deps.budget.check(session.appId, session.owner.id, bytes, now);
  if (!admission.ok) {
    return ctx.error(429, 'ApplicationThrottled', UPLOAD_THROTTLED_MESSAGE, {
      'retry-after': String(admission.retryAfterSeconds),
    });
  }
  // The bytes crossed the wire, so they count whether or not the chunk is accepted.
  deps.budget.charge(session.appId, session.owner.id, bytes, now);

  const { start, end } = readRanges(ctx, session);
  if (bytes > MAX_UPLOAD_CHUNK_BYTES) {
    throw new GraphError(
      413,
      'RequestEntityTooLarge',
      `The chunk has ${bytes} bytes; upload at most ${MAX_UPLOAD_CHUNK_BYTES} bytes per request.`,
    );
  }
  if (start !== session.received) {
    throw new GraphError(
      416,
      'RangeNotSatisfiable',
      `The chunk starts at byte ${start}, but the upload session expects byte ${session.received} next (nextExpectedRanges: ["${session.received}"]). Upload the bytes in order.`,
    );
  }
  session.chunks.push(Buffer.from(ctx.body));
  session.received = end + 1;
  if (session.received < session.size) {
    // Outlook's answer, as documented: PascalCase expiry and a bare start offset, unlike the creation response.
    return ctx.json(200, {
      '@odata.context': `${ctx.baseUrl}/$metadata#Users('${sessionOwner(deps.tenant, session)}')/Messages('${session.messageId}')/AttachmentSessions/$entity`,
      ExpirationDateTime: new Date(session.expiresAt).toISOString(),
      nextExpectedRanges: [String(session.received)],
    });
  }

  deps.sessions.close(session.id);
  const content = Buffer.concat(session.chunks);
  const attachment = deps.mailboxOf(session.owner).addAttachment(session.messageId, {
    '@odata.type': '#microsoft.graph.fileAttachment',
    name: session.name,
    contentType: session.contentType,
    size: content.length,
    isInline: session.isInline,
    ...(session.contentId !== undefined ? { contentId: session.contentId } : {}),
    contentBytes: content.toString('base64'),
  });
  if (!attachment) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  return ctx.empty(201, {
    location: `${ctx.baseUrl}/Users('${session.owner.id}')/Messages('${session.messageId}')/Attachments('${attachment.id}')`,
  });
}

/**
 * The upload URL carries its own credential; Outlook answers a bearer token on it as a token for the wrong resource
 * (the Graph token's audience is not Outlook's), which is how products that let their HTTP client add the token fail.
 */
function refuseAuthorization(ctx: GraphRequestContext): void {
  const authorization = ctx.header('authorization');
  if (authorization === undefined) return;
  const token = /^Bearer\s+(\S+)/i.exec(authorization)?.[1] ?? '';
  const audience = decodeJwtPart(token.split('.')[1])?.aud;
  throw new GraphError(
    401,
    'InvalidAudienceForResource',
    `The audience claim value is invalid for current resource. Audience claim is '${typeof audience === 'string' ? audience : ''}', request url is '${ctx.url.origin}${ctx.url.pathname}'. The upload URL is pre-authenticated: send no Authorization header.`,
    { 'www-authenticate': 'Bearer realm=""' },
  );
}

function findSession(ctx: GraphRequestContext, deps: UploadSessionDeps, now: number): UploadSession {
  const session = deps.sessions.find(ctx.params.session, ctx.query.get('authtoken') ?? '', now);
  const owner = session && sessionOwner(deps.tenant, session).toLowerCase();
  if (!session || owner !== ctx.params.owner.toLowerCase() || session.messageId !== ctx.params.message) {
    throw new GraphError(404, 'ErrorItemNotFound', 'The upload session does not exist or has expired.');
  }
  return session;
}

/** Checks Content-Length and Content-Range against the body and the session. */
function readRanges(ctx: GraphRequestContext, session: UploadSession): { start: number; end: number } {
  const length = ctx.header('content-length');
  if (length === undefined) {
    throw new GraphError(411, 'LengthRequired', 'Content-Length is required on an upload-session PUT.');
  }
  if (!/^\d+$/.test(length.trim()) || Number(length) !== ctx.body.length) {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      `Content-Length ${length} does not match the ${ctx.body.length} bytes sent.`,
    );
  }
  const raw = ctx.header('content-range');
  const range = /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(raw ?? '');
  if (!range) {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      `Content-Range must be 'bytes {start}-{end}/{total}'; got ${raw === undefined ? 'none' : `'${raw}'`}.`,
    );
  }
  const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])];
  if (total !== session.size) {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      `Content-Range total ${total} differs from the size ${session.size} declared when the session was created.`,
    );
  }
  if (end < start || end >= total || end - start + 1 !== ctx.body.length) {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      `Content-Range bytes ${start}-${end}/${total} does not describe the ${ctx.body.length} bytes sent.`,
    );
  }
  return { start, end };
}

type AttachmentItem = Pick<UploadSession, 'name' | 'contentType' | 'size' | 'isInline' | 'contentId'>;

const ATTACHMENT_ITEM_PROPERTIES = ['attachmentType', 'name', 'size', 'contentType', 'isInline', 'contentId'];

function readAttachmentItem(value: unknown): AttachmentItem {
  const source = asObject(value, 'AttachmentItem');
  const item: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(source)) {
    if (key.startsWith('@')) continue;
    const name = ATTACHMENT_ITEM_PROPERTIES.find((p) => p.toLowerCase() === key.toLowerCase());
    if (!name) {
      throw new GraphError(
        400,
        'RequestBodyRead',
        `The property '${key}' does not exist on type 'microsoft.graph.attachmentItem'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      );
    }
    item[name] = raw;
  }
  const type = item.attachmentType;
  if (typeof type !== 'string' || type.toLowerCase() !== 'file') {
    throw new GraphError(
      400,
      'ErrorInvalidParameter',
      `An upload session uploads files: AttachmentItem.attachmentType must be 'file', got ${JSON.stringify(type ?? null)}.`,
    );
  }
  if (typeof item.name !== 'string' || item.name === '' || typeof item.size !== 'number') {
    throw new GraphError(400, 'ErrorRequiredPropertyMissing', 'Required property is missing.');
  }
  if (!Number.isSafeInteger(item.size) || item.size < 0) {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `Cannot convert the literal '${item.size}' to the expected type 'Edm.Int64'.`,
    );
  }
  const optional = (name: string, type: 'string' | 'boolean'): unknown => {
    const v = item[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== type) {
      throw new GraphError(
        400,
        'RequestBodyRead',
        `Cannot convert the literal '${JSON.stringify(v)}' to the expected type '${type === 'string' ? 'Edm.String' : 'Edm.Boolean'}'.`,
      );
    }
    return v;
  };
  const contentId = optional('contentId', 'string') as string | undefined;
  return {
    name: item.name,
    size: item.size,
    contentType: (optional('contentType', 'string') as string | undefined) ?? 'application/octet-stream',
    isInline: (optional('isInline', 'boolean') as boolean | undefined) ?? false,
    ...(contentId !== undefined ? { contentId } : {}),
  };
}

/** The user key Outlook puts in session URLs: `{user id}@{tenant id}`. */
function sessionOwner(tenant: EmulatedTenant, session: UploadSession): string {
  return `${session.owner.id}@${tenant.tenantId}`;
}
