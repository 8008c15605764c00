/**
 * `/subscriptions`: create (with the validation handshake), list, get, renew, delete and reauthorize message
 * subscriptions (api-reference/v1.0/api/subscription-*.md). A subscription belongs to the app that created it; to any
 * other app it does not exist.
 *
 * Where Graph's exact error text is not documented, the code/message is the strict reading and says so in a comment.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { EmulatedClock } from './clock';
import { GraphError } from './graphResponse';
import type { MailboxStore } from './mailboxStore';
import { resolveFolder } from './mailReadRoutes';
import type { NotificationDispatcher } from './notificationDelivery';
import type { GraphRequestContext, GraphRoute } from './router';
import { parseMessageResource } from './subscriptionResource';
import { subscriptionJson, type StoredSubscription, type SubscriptionStore } from './subscriptionStore';

/**
 * Application permissions that may watch messages. The create-subscription doc lists Mail.ReadBasic and Mail.Read
 * (and Mail.ReadBasic.All is the tenant-wide ReadBasic), and says subscriptions do not accept write permissions
 * where read is needed, so Mail.ReadWrite alone is refused.
 */
export const MESSAGE_SUBSCRIPTION_ROLES: readonly string[] = ['Mail.ReadBasic', 'Mail.ReadBasic.All', 'Mail.Read'];

/** Live tenants cap Outlook message subscriptions at 10,070 minutes (docs: 10,080). */
export const DEFAULT_MAX_EXPIRATION_MINUTES = 10_070;
/** Outlook's documented ceiling of active subscriptions per mailbox, over all apps. */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_MAILBOX = 1000;
/** Graph raises an expiry closer than this to this. */
export const MIN_EXPIRATION_MS = 45 * 60_000;
/** resources/subscription.md: clientState is at most 128 characters. */
export const MAX_CLIENT_STATE_LENGTH = 128;

const CHANGE_TYPES = new Set(['created', 'updated', 'deleted']);

/** What the subscription routes work with. */
export interface SubscriptionRouteDeps {
  tenant: EmulatedTenant;
  clock: EmulatedClock;
  store: SubscriptionStore;
  dispatcher: NotificationDispatcher;
  mailboxOf: (user: TenantUser) => MailboxStore;
  maxExpirationMinutes: number;
  maxPerMailbox: number;
}

/** The `/subscriptions` routes. */
export function subscriptionRoutes(deps: SubscriptionRouteDeps): GraphRoute[] {
  const common = { roles: [] as string[], mailbox: false } as const;
  return [
    { ...common, method: 'POST', path: '/subscriptions', handler: (ctx) => create(ctx, deps) },
    {
      ...common,
      method: 'GET',
      path: '/subscriptions',
      handler: (ctx) =>
        ctx.json(200, {
          '@odata.context': `${ctx.baseUrl}/$metadata#subscriptions`,
          value: deps.store
            .all()
            .filter((s) => s.applicationId === ctx.appId)
            .map(subscriptionJson),
        }),
    },
    {
      ...common,
      method: 'GET',
      path: '/subscriptions/{id}',
      handler: (ctx) =>
        ctx.json(200, {
          '@odata.context': `${ctx.baseUrl}/$metadata#subscriptions/$entity`,
          ...subscriptionJson(owned(ctx, deps)),
        }),
    },
    { ...common, method: 'PATCH', path: '/subscriptions/{id}', handler: (ctx) => update(ctx, deps) },
    {
      ...common,
      method: 'DELETE',
      path: '/subscriptions/{id}',
      handler: (ctx) => {
        deps.store.delete(owned(ctx, deps).id);
        return ctx.empty(204);
      },
    },
    {
      ...common,
      method: 'POST',
      path: '/subscriptions/{id}/reauthorize',
      handler: (ctx) => {
        const sub = owned(ctx, deps);
        requireWatchPermission(ctx, 'Update');
        deps.dispatcher.release(sub);
        return ctx.empty(204);
      },
    },
  ];
}

async function create(ctx: GraphRequestContext, deps: SubscriptionRouteDeps) {
  const body = jsonObject(ctx.readJson());
  const changeType = requiredString(body, 'changeType');
  const notificationUrl = requiredString(body, 'notificationUrl');
  const resource = requiredString(body, 'resource');
  const expiration = requiredString(body, 'expirationDateTime');
  const changeTypes = parseChangeTypes(changeType);
  httpsUrl(notificationUrl, 'notificationUrl');
  const lifecycleNotificationUrl = optionalString(body, 'lifecycleNotificationUrl');
  if (lifecycleNotificationUrl !== null) httpsUrl(lifecycleNotificationUrl, 'lifecycleNotificationUrl');
  const clientState = optionalString(body, 'clientState');
  if (clientState !== null && clientState.length > MAX_CLIENT_STATE_LENGTH) {
    // Strict reading of resources/subscription.md ("The maximum length is 128 characters"); Graph's text unconfirmed.
    throw new GraphError(
      400,
      'InvalidRequest',
      `clientState is ${clientState.length} characters long; the maximum is ${MAX_CLIENT_STATE_LENGTH}.`,
    );
  }
  if (body.includeResourceData === true) {
    throw new GraphError(501, 'NotImplemented', 'The Graph emulator does not implement rich notifications.');
  }
  const expirationDateTime = checkExpiration(expiration, deps);

  const target = parseMessageResource(resource);
  requireWatchPermission(ctx, 'Create');
  const user = deps.tenant.findUser(target.user);
  if (!user) throw extensionError('Create', 404, `The requested user '${target.user}' is invalid.`);
  if (!user.restEnabled) {
    throw extensionError('Create', 404, 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
  }
  let folderId: string | undefined;
  if (target.folder !== undefined) {
    try {
      folderId = resolveFolder(deps.mailboxOf(user), target.folder).id;
    } catch (err) {
      if (err instanceof GraphError) throw extensionError('Create', err.status, err.message);
      throw err;
    }
  }
  if (deps.store.forMailbox(user.id).length >= deps.maxPerMailbox) {
    // outlook-change-notifications-overview: 1,000 active subscriptions per mailbox over all apps, 403 beyond; the
    // exact text is not documented.
    throw extensionError(
      'Create',
      403,
      `The maximum number of subscriptions (${deps.maxPerMailbox}) for this mailbox has been reached.`,
    );
  }

  const id = randomUUID();
  const failed =
    (await deps.dispatcher.validate(notificationUrl, id)) ??
    (lifecycleNotificationUrl !== null ? await deps.dispatcher.validate(lifecycleNotificationUrl, id) : undefined);
  if (failed) throw failed;

  const sub: StoredSubscription = {
    id,
    resource,
    applicationId: ctx.appId ?? '',
    creatorId: servicePrincipalId(ctx.appId ?? ''),
    changeType,
    changeTypes,
    clientState,
    notificationUrl,
    lifecycleNotificationUrl,
    expirationDateTime,
    mailboxId: user.id,
    folderId,
    awaitingReauthorization: false,
    held: [],
    dropping: false,
  };
  deps.store.add(sub);
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#subscriptions/$entity`,
    ...subscriptionJson(sub),
  });
}

async function update(ctx: GraphRequestContext, deps: SubscriptionRouteDeps) {
  const sub = owned(ctx, deps);
  const body = jsonObject(ctx.readJson());
  if ('lifecycleNotificationUrl' in body) {
    // concepts/change-notifications-lifecycle-events.md: it can only be set when the subscription is created.
    throw new GraphError(
      400,
      'InvalidRequest',
      'lifecycleNotificationUrl can only be set when the subscription is created.',
    );
  }
  const unknown = Object.keys(body).filter((k) => k !== 'expirationDateTime' && k !== 'notificationUrl');
  if (unknown.length > 0) {
    throw new GraphError(
      400,
      'InvalidRequest',
      `Only expirationDateTime and notificationUrl can be updated, not ${unknown.join(', ')}.`,
    );
  }
  requireWatchPermission(ctx, 'Update');
  const expirationDateTime =
    body.expirationDateTime === undefined
      ? undefined
      : checkExpiration(requiredString(body, 'expirationDateTime'), deps);
  let notificationUrl: string | undefined;
  if (body.notificationUrl !== undefined) {
    notificationUrl = requiredString(body, 'notificationUrl');
    httpsUrl(notificationUrl, 'notificationUrl');
    const failed = await deps.dispatcher.validate(notificationUrl, sub.id);
    if (failed) throw failed;
  }
  if (expirationDateTime) sub.expirationDateTime = expirationDateTime;
  if (notificationUrl) sub.notificationUrl = notificationUrl;
  // A renewal answers a reauthorizationRequired challenge too (concepts/change-notifications-lifecycle-events.md).
  deps.dispatcher.release(sub);
  return ctx.json(200, {
    '@odata.context': `${ctx.baseUrl}/$metadata#subscriptions/$entity`,
    ...subscriptionJson(sub),
  });
}

/** The caller's subscription named by `{id}`, or Graph's 404 for a missing one. */
function owned(ctx: GraphRequestContext, deps: SubscriptionRouteDeps): StoredSubscription {
  const sub = deps.store.getOwned(ctx.params.id, ctx.appId);
  if (!sub) throw new GraphError(404, 'ResourceNotFound', 'The object was not found.');
  return sub;
}

function requireWatchPermission(ctx: GraphRequestContext, operation: string): void {
  if (!MESSAGE_SUBSCRIPTION_ROLES.some((r) => ctx.roles.has(r))) {
    throw extensionError(operation, 403, 'Access is denied. Check credentials and try again.');
  }
}

function checkExpiration(raw: string, deps: SubscriptionRouteDeps): Date {
  const requested = new Date(raw);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(requested.getTime())) {
    throw new GraphError(400, 'InvalidRequest', `'${raw}' is not a valid expirationDateTime.`);
  }
  const now = deps.clock.now().getTime();
  const ahead = requested.getTime() - now;
  if (ahead <= 0) {
    // Graph refuses an expiry in the past with 400; its exact text is not documented.
    throw new GraphError(400, 'ExtensionError', `Subscription expiration date time '${raw}' is in the past.`);
  }
  if (ahead > deps.maxExpirationMinutes * 60_000) {
    throw new GraphError(
      400,
      'ExtensionError',
      `Subscription expiration can only be ${deps.maxExpirationMinutes} minutes in the future.`,
    );
  }
  return ahead < MIN_EXPIRATION_MS ? new Date(now + MIN_EXPIRATION_MS) : requested;
}

function parseChangeTypes(raw: string): Set<string> {
  const parts = raw.split(',').map((p) => p.trim());
  const bad = parts.filter((p) => !CHANGE_TYPES.has(p));
  if (parts.length === 0 || bad.length > 0) {
    throw new GraphError(
      400,
      'InvalidRequest',
      `'${raw}' is not a valid changeType: use a comma-separated list of created, updated and deleted.`,
    );
  }
  return new Set(parts);
}

function httpsUrl(raw: string, name: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GraphError(400, 'InvalidRequest', `${name} '${raw}' is not an absolute URL.`);
  }
  // resources/subscription.md: "This URL must make use of the HTTPS protocol."; Graph's exact text is not documented.
  if (url.protocol !== 'https:') {
    throw new GraphError(400, 'InvalidRequest', `${name} must use the https scheme, not '${url.protocol}'.`);
  }
}

function jsonObject(value: unknown): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new GraphError(400, 'BadRequest', 'The request body must be a JSON object.');
  }
  return value as Record<string, unknown>;
}

function requiredString(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new GraphError(400, 'InvalidRequest', `The property '${name}' is required and must be a non-empty string.`);
  }
  return value;
}

function optionalString(body: Record<string, unknown>, name: string): string | null {
  const value = body[name];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string')
    throw new GraphError(400, 'InvalidRequest', `The property '${name}' must be a string.`);
  return value;
}

const STATUS_NAMES: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound' };

/** Graph wraps the subscription store's failures this way ("Operation: Create; Exception: [...]"). */
function extensionError(operation: string, status: number, reason: string): GraphError {
  return new GraphError(
    status,
    'ExtensionError',
    `Operation: ${operation}; Exception: [Status Code: ${STATUS_NAMES[status] ?? String(status)}; Reason: ${reason}]`,
  );
}

/** A stable service-principal-like object id for an app (app-only subscriptions name the service principal). */
function servicePrincipalId(appId: string): string {
  const hex = createHash('sha256').update(`sp:${appId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
