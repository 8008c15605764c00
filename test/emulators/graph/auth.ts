/**
 * Graph's front door: the bearer token must be a valid app-only token for this tenant and Graph's audience, and
 * carry an application permission the route accepts. Errors use the codes and texts real Graph answers with, because
 * the product explains them to operators (missing admin consent is the classic one).
 */
import type { AccessTokenClaims, TokenIssuer, TokenRejection } from '../tokenIssuer';
import type { EmulatedTenant } from '../tenant';
import { errorResponse, type GraphResponse } from './graphResponse';
import type { GraphRoute } from './router';

/** Graph's audiences: the resource URI and the first-party app id. */
export const DEFAULT_GRAPH_AUDIENCES: readonly string[] = [
  'https://graph.microsoft.com',
  '00000003-0000-0000-c000-000000000000',
];

/** Text Graph (and the older Outlook REST API's `x-ms-diagnostics`) gives a token without application permissions. */
export const NO_PERMISSIONS_MESSAGE = 'The token contains no permissions, or permissions can not be understood.';

/** Who called, once the token checked out. */
export interface Caller {
  appId: string;
  roles: ReadonlySet<string>;
  /** True when the token has a non-empty `roles` array; false is the missing-consent case. */
  hasRoles: boolean;
  claims: AccessTokenClaims;
}

/** Result of {@link authenticate}. */
export type Authentication = { ok: true; caller: Caller } | { ok: false; response: GraphResponse };

// Graph points clients at Entra in every 401; the product may log it, so the emulator sends it too.
const WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ' +
  'client_id="00000003-0000-0000-c000-000000000000"';

const REJECTION_MESSAGES: Record<TokenRejection, string> = {
  malformed: 'CompactToken parsing failed with error code: 80049217',
  signature: 'Access token validation failure. Invalid signature.',
  expired: 'Lifetime validation failed, the token is expired.',
  notYetValid: 'Lifetime validation failed, the token is not yet valid.',
  audience: 'Access token validation failure. Invalid audience.',
};

function unauthorized(code: string, message: string, headers: Record<string, string> = {}): GraphResponse {
  return errorResponse(401, code, message, { 'www-authenticate': WWW_AUTHENTICATE, ...headers });
}

/** Checks the `Authorization` header: scheme, signature, lifetime, audience, tenant and issuer. */
export function authenticate(
  authorization: string | undefined,
  issuer: TokenIssuer,
  tenant: EmulatedTenant,
  audiences: readonly string[],
  now: number = Date.now(),
): Authentication {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) return { ok: false, response: unauthorized('InvalidAuthenticationToken', 'Access token is empty.') };
  const result = issuer.verify(match[1], audiences, now);
  if (!result.ok) {
    return { ok: false, response: unauthorized('InvalidAuthenticationToken', REJECTION_MESSAGES[result.reason]) };
  }
  const claims = result.claims;
  if (typeof claims.tid !== 'string' || claims.tid.toLowerCase() !== tenant.tenantId.toLowerCase()) {
    // Graph serves the token's tenant; a token from another tenant never reaches this tenant's mailboxes.
    return {
      ok: false,
      response: unauthorized('InvalidAuthenticationToken', 'Access token validation failure. Invalid tenant.'),
    };
  }
  if (!issuerNamesTenant(claims.iss, claims.tid)) {
    return {
      ok: false,
      response: unauthorized('InvalidAuthenticationToken', 'Access token validation failure. Invalid issuer.'),
    };
  }
  const appId = typeof claims.appid === 'string' ? claims.appid : (claims as { azp?: unknown }).azp;
  if (typeof appId !== 'string' || appId === '') {
    return { ok: false, response: unauthorized('InvalidAuthenticationToken', 'Access token validation failure.') };
  }
  const rawRoles: unknown = claims.roles;
  const roles = Array.isArray(rawRoles) ? rawRoles.filter((r): r is string => typeof r === 'string') : [];
  return { ok: true, caller: { appId, roles: new Set(roles), hasRoles: roles.length > 0, claims } };
}

/**
 * The issuer must be Entra's, for the same tenant as `tid`: v1 `https://sts.windows.net/{tid}/` or v2
 * `https://login.microsoftonline.com/{tid}/v2.0`, on any host (sovereign clouds, the emulated authority).
 */
function issuerNamesTenant(iss: unknown, tid: string): boolean {
  if (typeof iss !== 'string') return false;
  let url: URL;
  try {
    url = new URL(iss);
  } catch {
    return false;
  }
  const path = url.pathname.toLowerCase();
  const id = tid.toLowerCase();
  return url.protocol === 'https:' && (path === `/${id}/` || path === `/${id}/v2.0` || path === `/${id}/v2.0/`);
}

/** Checks the caller's application permissions against the route; undefined when the call may proceed. */
export function authorize(caller: Caller, route: GraphRoute): GraphResponse | undefined {
  if (route.roles.length === 0) return undefined;
  if (!caller.hasRoles) {
    return unauthorized('NoPermissionsInAccessToken', NO_PERMISSIONS_MESSAGE, {
      'x-ms-diagnostics': `2000008;reason="${NO_PERMISSIONS_MESSAGE}";error_category="invalid_grant"`,
    });
  }
  if (route.roles.some((role) => caller.roles.has(role))) return undefined;
  if (route.forbidden) return errorResponse(403, route.forbidden.code, route.forbidden.message);
  return route.mailbox
    ? errorResponse(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.')
    : errorResponse(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
}
