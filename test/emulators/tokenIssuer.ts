/**
 * Signs and verifies the emulated Entra ID's JWT access tokens (RS256). Entra issues them; Graph and Key Vault
 * verify them the way the real services do: signature, audience, lifetime.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

/** Claims of an app-only access token (v1 shape, as Graph receives them). */
export interface AccessTokenClaims {
  aud: string;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  tid: string;
  appid: string;
  /** 1 = client secret, 2 = certificate, 0 = managed identity. */
  appidacr: '0' | '1' | '2';
  idtyp: 'app';
  oid: string;
  sub: string;
  ver: '1.0';
  uti: string;
  /** Consented application permissions; absent when none were consented. */
  roles?: string[];
  xms_mirid?: string;
}

/** Why a token was refused. */
export type TokenRejection = 'malformed' | 'signature' | 'expired' | 'notYetValid' | 'audience';

/** Result of {@link TokenIssuer.verify}. */
export type VerifyResult =
  { ok: true; claims: AccessTokenClaims } | { ok: false; reason: TokenRejection; message: string };

/** Decodes a base64url JWT segment as JSON, or undefined. */
export function decodeJwtPart(part: string | undefined): Record<string, unknown> | undefined {
  if (!part) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The emulated Entra ID's token-signing key. */
export class TokenIssuer {
  readonly kid = randomUUID();
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;

  constructor() {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
    this.publicKey = createPublicKey(this.privateKey);
  }

  /** Signs `claims` as a compact JWT. */
  sign(claims: object): string {
    const header = { typ: 'JWT', alg: 'RS256', kid: this.kid, x5t: this.kid };
    const input = `${b64(header)}.${b64(claims)}`;
    const signature = sign('RSA-SHA256', Buffer.from(input), this.privateKey).toString('base64url');
    return `${input}.${signature}`;
  }

  /** Verifies signature, lifetime (5 minutes' skew) and that `aud` is one of `audiences`. */
  verify(token: string, audiences: readonly string[], now = Date.now()): VerifyResult {
    const parts = token.split('.');
    const header = decodeJwtPart(parts[0]);
    const claims = decodeJwtPart(parts[1]) as AccessTokenClaims | undefined;
    if (parts.length !== 3 || !header || !claims) {
      return { ok: false, reason: 'malformed', message: 'IDX14100: JWT is not well formed.' };
    }
    const valid =
      header.alg === 'RS256' &&
      verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), this.publicKey, Buffer.from(parts[2], 'base64url'));
    if (!valid) return { ok: false, reason: 'signature', message: 'IDX10511: Signature validation failed.' };
    const seconds = Math.floor(now / 1000);
    if (typeof claims.exp !== 'number' || claims.exp + 300 < seconds) {
      return { ok: false, reason: 'expired', message: 'Lifetime validation failed, the token is expired.' };
    }
    if (typeof claims.nbf === 'number' && claims.nbf - 300 > seconds) {
      return { ok: false, reason: 'notYetValid', message: 'Lifetime validation failed, the token is not yet valid.' };
    }
    if (!audiences.includes(claims.aud)) {
      return { ok: false, reason: 'audience', message: `Invalid audience '${claims.aud}'.` };
    }
    return { ok: true, claims };
  }

  /** The signing key as a JWKS document, as Entra publishes it. */
  jwks(): { keys: object[] } {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return { keys: [{ ...jwk, kid: this.kid, use: 'sig', kty: 'RSA', alg: 'RS256' }] };
  }
}

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
