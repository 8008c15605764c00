/** Builds app-only Graph access tokens the way Entra's v1 tokens look, for emulator tests that skip Entra. */
import { randomUUID } from 'node:crypto';
import type { AppRegistration, EmulatedTenant } from '../emulators/tenant';
import type { TokenIssuer } from '../emulators/tokenIssuer';

/** A signed token for `app` with its consented roles; `overrides` replace claims (`undefined` removes one). */
export function appToken(
  issuer: TokenIssuer,
  tenant: EmulatedTenant,
  app: AppRegistration,
  overrides: Record<string, unknown> = {},
): string {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    aud: 'https://graph.microsoft.com',
    iss: `https://sts.windows.net/${tenant.tenantId}/`,
    iat: now - 60,
    nbf: now - 60,
    exp: now + 3600,
    tid: tenant.tenantId,
    appid: app.clientId,
    appidacr: '1',
    idtyp: 'app',
    oid: randomUUID(),
    sub: randomUUID(),
    ver: '1.0',
    uti: randomUUID(),
    roles: [...app.graphRoles],
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return issuer.sign(claims);
}
