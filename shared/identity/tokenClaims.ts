/**
 * Explains an access token: decodes its payload (no signature check — Graph tokens are opaque to clients and
 * must not be validated by them) and reports what Entra granted, so a missing admin consent is named before a
 * Graph call fails with "The token contains no permissions".
 */

/** What an app-only access token says about the caller. */
export interface TokenExplanation {
  /** Application permissions in the token (`roles`); empty when none were consented. */
  roles: string[];
  /** Tenant id (`tid`). */
  tenantId?: string;
  /** Client id of the app (`appid`, or `azp` in v2 tokens). */
  appId?: string;
  /** `app` for app-only tokens. */
  identityType?: string;
  /** Audience (`aud`). */
  audience?: string;
  /** How the app authenticated: `appidacr`/`azpacr` 1 = secret, 2 = certificate. */
  credentialType?: 'secret' | 'certificate' | 'none';
  /** Expiry (`exp`). */
  expiresOn?: Date;
}

/** Thrown when a token cannot be decoded at all. */
class TokenDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenDecodeError';
  }
}

/** Decodes `accessToken`'s payload and picks out the claims that explain it. Never logs or returns the token. */
export function explainToken(accessToken: string): TokenExplanation {
  const payload = accessToken.split('.')[1];
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new TokenDecodeError('The access token is not a JWT whose payload can be decoded.');
  }
  if (!claims || typeof claims !== 'object') throw new TokenDecodeError('The access token payload is not an object.');
  const str = (name: string) => (typeof claims[name] === 'string' ? claims[name] : undefined);
  const acr = str('appidacr') ?? str('azpacr');
  return {
    roles: Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [],
    tenantId: str('tid'),
    appId: str('appid') ?? str('azp'),
    identityType: str('idtyp'),
    audience: str('aud'),
    credentialType: acr === '1' ? 'secret' : acr === '2' ? 'certificate' : acr === '0' ? 'none' : undefined,
    expiresOn: typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : undefined,
  };
}

/** Permissions that include others: a token holding the key also satisfies the listed ones. */
const IMPLIED_ROLES: Readonly<Record<string, readonly string[]>> = {
  'Mail.ReadWrite': ['Mail.Read', 'Mail.ReadBasic', 'Mail.ReadBasic.All'],
  'Mail.Read': ['Mail.ReadBasic', 'Mail.ReadBasic.All'],
  'Directory.Read.All': ['User.Read.All'],
  'User.ReadWrite.All': ['User.Read.All'],
};

/** Returns the entries of `required` that `roles` neither contains nor implies. */
export function missingRoles(roles: readonly string[], required: readonly string[]): string[] {
  const granted = new Set(roles.flatMap((role) => [role, ...(IMPLIED_ROLES[role] ?? [])]));
  return required.filter((role) => !granted.has(role));
}

/** The app's token lacks application permissions an operation needs: admin consent was not granted. */
export class AdminConsentMissingError extends Error {
  /** The permissions the token lacks. */
  readonly missing: readonly string[];
  /** What the token does carry. */
  readonly granted: readonly string[];

  constructor(missing: readonly string[], granted: readonly string[], appId?: string) {
    const list = missing.join(', ');
    super(
      `admin consent not granted for ${list}: the app's token ${granted.length ? `carries only ${granted.join(', ')}` : 'carries no application permissions (no roles claim)'}. ` +
        `In Entra ID open App registrations > ${appId ?? 'the app'} > API permissions, add the Microsoft Graph application permission${missing.length > 1 ? 's' : ''} ${list} and select "Grant admin consent".`,
    );
    this.name = 'AdminConsentMissingError';
    this.missing = missing;
    this.granted = granted;
  }
}

/** Throws {@link AdminConsentMissingError} unless `explanation` grants every role in `required`. */
export function assertRoles(explanation: TokenExplanation, required: readonly string[]): void {
  const missing = missingRoles(explanation.roles, required);
  if (missing.length > 0) throw new AdminConsentMissingError(missing, explanation.roles, explanation.appId);
}
