/**
 * The token helper: the app registration's credential, read from Key Vault, as a `TokenCredential` for the tenant
 * and cloud. MSAL (inside `@azure/identity`) caches tokens until shortly before expiry; this class only decides
 * which Key Vault version backs the credential: it reads Key Vault once, re-checks every
 * `CREDENTIAL_REFRESH_MINUTES`, and re-reads at once when Entra rejects the credential, so a rotation needs no
 * restart and the overlap of old and new causes no outage.
 */
import {
  ClientCertificateCredential,
  ClientSecretCredential,
  type AccessToken,
  type GetTokenOptions,
  type TokenCredential,
} from '@azure/identity';
import type { GatewayConfig } from '../platform/config';
import type { TokenRejectionAware } from '../graph/graphClient';
import { entraReason, isCredentialRejected } from './entraErrors';
import { KeyVaultCredentialSource, type AppCredentialMaterial } from './keyVaultCredentialSource';
import { assertRoles, explainToken, type TokenExplanation } from './tokenClaims';

/** Where the app credential stands, for diagnostics (never the secret). */
export interface CredentialStatus {
  kind: 'certificate' | 'secret';
  /** Key Vault version in use. */
  version: string;
  /** Certificate `notAfter` or secret `expiresOn`; undefined when Key Vault holds no expiry. */
  expiresOn?: Date;
  /** Days until `expiresOn` (negative once expired). */
  daysLeft?: number;
  /** SHA-256 thumbprint of a certificate. */
  thumbprint?: string;
  /** Set while Entra rejects Key Vault's newest version and an older one is used instead. */
  rejected?: RejectedVersion;
}

/** Key Vault's newest version, which Entra ID refuses, while the gateway keeps an older one. */
export interface RejectedVersion {
  version: string;
  /** Entra's reason (AADSTS code and text, no trace ids). */
  reason: string;
  /** What the operator must do. */
  fix: string;
}

/** Anything that yields the current credential material (Key Vault in production). */
export interface CredentialMaterialSource {
  /** The newest version, or `version`. */
  read(version?: string): Promise<AppCredentialMaterial>;
  /** Versions that may back the credential, newest first (enabled, within nbf/exp). */
  usableVersions?(): Promise<string[]>;
}

/** Older versions worth trying once the newest is rejected; more would only delay the failure. */
const MAX_FALLBACK_VERSIONS = 3;

interface Loaded {
  material: AppCredentialMaterial;
  credential: TokenCredential;
  readAt: number;
  /** Tokens this credential handed out (the newest few), to recognise one Graph later refuses. */
  issued?: string[];
}

/** A token this close to its expiry is no longer answered from (MSAL renews tokens before they expire). */
const TOKEN_MARGIN_MS = 5 * 60_000;

/** Entra's answers that mean "this credential is not (or no longer) valid", worth a Key Vault re-read. */
const REJECTED_CREDENTIAL = /invalid_client|AADSTS(7000215|7000222|700027|700024|50012|700016)\b/;

/** The app registration's credential: a rotating `TokenCredential` plus token explanation. */
export class AppCredential implements TokenCredential, TokenRejectionAware {
  private loaded?: Loaded;
  private loading?: Promise<Loaded>;
  private rejected?: RejectedVersion;
  /** Token acquisitions under way, by scope: MSAL caches tokens but does not merge concurrent cache misses. */
  private readonly acquiring = new Map<string, Promise<AccessToken>>();
  /** The last Graph token explained, what it says, and the credential it came from. */
  private explained?: { token: AccessToken; explanation: TokenExplanation; from: Loaded };
  /** The last token answered per scope (and claims, tenant), with the credential it came from. */
  private readonly answered = new Map<string, { token: AccessToken; from: Loaded }>();

  constructor(
    private readonly config: GatewayConfig,
    private readonly source: CredentialMaterialSource = new KeyVaultCredentialSource(config),
    private readonly now: () => number = Date.now,
    /** Where operator warnings go (the Functions worker turns `console.warn` into a warning log). */
    private readonly warn: (message: string) => void = (message) => console.warn(message),
  ) {}

  /**
   * Gets an app-only token for `scopes`; picks up a rotated Key Vault version when needed. Concurrent callers for
   * the same scopes share one acquisition, so a burst at cold start costs one Entra request, not one per caller.
   * The token last answered is answered again while it is {@link inUse}, without asking MSAL: every Graph call asks
   * for a token, and `@azure/identity` parses the certificate (PEM, two thumbprints) and opens a tracing span before
   * MSAL's cache lookup on each `getToken`, which cost every message `GET` (two Graph calls) about a millisecond.
   */
  getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    const key =
      [scopes].flat().join(' ') +
      (options?.claims ? `|${options.claims}` : '') +
      (options?.tenantId ? `|${options.tenantId}` : '');
    const answered = this.answered.get(key);
    if (answered && this.inUse(answered.token, answered.from)) return Promise.resolve(answered.token);
    let pending = this.acquiring.get(key);
    if (!pending) {
      pending = this.acquire(scopes, options)
        .then((token) => {
          const from = this.loaded;
          if (from?.issued?.includes(token.token)) this.answered.set(key, { token, from });
          return token;
        })
        .finally(() => this.acquiring.delete(key));
      this.acquiring.set(key, pending);
    }
    return pending;
  }

  /**
   * True while `token` may be answered again without MSAL: it came from the credential in use, Graph has not refused
   * it ({@link tokenRejected} replaces the credential), no Key Vault refresh is due, it is more than 5 minutes from
   * expiry (MSAL would renew it then), and Entra's `refresh_in` has not passed (from then on MSAL renews it early, and
   * keeps answering it while Entra cannot be reached, so each call goes to MSAL until a renewal succeeds).
   */
  private inUse(token: AccessToken, from: Loaded): boolean {
    const now = this.now();
    return (
      from === this.loaded &&
      !!from.issued?.includes(token.token) &&
      now - from.readAt < this.config.credentialRefreshMs &&
      token.expiresOnTimestamp - now > TOKEN_MARGIN_MS &&
      (token.refreshAfterTimestamp === undefined || now < token.refreshAfterTimestamp)
    );
  }

  private async acquire(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    let current = await this.current();
    try {
      return await this.tokenFrom(current, scopes, options);
    } catch (err) {
      if (!REJECTED_CREDENTIAL.test(errorText(err))) throw err;
      // Entra rejected this version: the old one may have been removed after a rotation. Re-read and retry once.
      const previousVersion = current.material.version;
      current = await this.reload();
      if (current.material.version !== previousVersion) {
        try {
          return await this.tokenFrom(current, scopes, options);
        } catch (retryErr) {
          if (!isCredentialRejected(retryErr)) throw retryErr;
          return this.fallBack(current, retryErr, scopes, options);
        }
      }
      if (!isCredentialRejected(err)) throw err;
      return this.fallBack(current, err, scopes, options);
    }
  }

  /**
   * Key Vault's newest version is one the app registration does not know (e.g. Key Vault's certificate policy
   * renewed it on its own): keep working with the newest older version Entra accepts, and say what to fix.
   */
  private async fallBack(
    rejected: Loaded,
    rejection: unknown,
    scopes: string | string[],
    options?: GetTokenOptions,
  ): Promise<AccessToken> {
    const candidates = ((await this.source.usableVersions?.()) ?? []).filter((v) => v !== rejected.material.version);
    for (const version of candidates.slice(0, MAX_FALLBACK_VERSIONS)) {
      const material = await this.source.read(version);
      const candidate: Loaded = { material, credential: this.buildCredential(material), readAt: this.now() };
      let token: AccessToken;
      try {
        token = await this.tokenFrom(candidate, scopes, options);
      } catch (err) {
        if (isCredentialRejected(err)) continue;
        throw err;
      }
      this.loaded = candidate;
      const what = rejected.material.kind === 'certificate' ? 'certificate' : 'secret';
      this.rejected = {
        version: rejected.material.version,
        reason: entraReason(rejection),
        fix:
          rejected.material.kind === 'certificate'
            ? `register the new certificate (SHA-256 thumbprint ${rejected.material.thumbprint}) on the app registration (App registrations > Certificates & secrets), or disable version ${rejected.material.version} in Key Vault`
            : `add the new secret to the app registration (App registrations > Certificates & secrets), or disable version ${rejected.material.version} in Key Vault`,
      };
      this.warn(
        `Entra ID rejects the newest Key Vault version ${rejected.material.version} of the app ${what} '${this.config.keyVault.credentialName}' (${this.rejected.reason}); using the previous version ${version}. Fix: ${this.rejected.fix}.`,
      );
      return token;
    }
    throw rejection;
  }

  /**
   * Graph refused `token` as invalid (revoked, or expired before its `exp`): forget the cached tokens so the next
   * `getToken` gets a new one from Entra. A token this credential no longer holds (another caller already renewed
   * it) changes nothing, so a burst of 401s costs one new token.
   */
  tokenRejected(token: string): void {
    const loaded = this.loaded;
    if (!loaded?.issued?.includes(token)) return;
    // MSAL has no "evict this token": a new credential object starts with an empty cache.
    this.loaded = { ...loaded, credential: this.buildCredential(loaded.material), issued: [] };
  }

  /**
   * Gets a Graph token and explains it (roles, tenant, app id, identity type). The explanation is kept with its token:
   * while that token is the one in use (same credential, not refused by Graph, not within 5 minutes of expiry, no Key
   * Vault refresh due), a call answers from it, without MSAL's `getToken` (which re-reads the certificate) or decoding
   * the token again: the permission check of every request costs nothing once per token.
   */
  async explainGraphToken(): Promise<TokenExplanation> {
    const explained = this.explained;
    if (explained && this.inUse(explained.token, explained.from)) return explained.explanation;
    const token = await this.getToken(this.config.endpoints.graphScope);
    const explanation = explainToken(token.token);
    const from = this.loaded;
    if (from?.issued?.includes(token.token)) this.explained = { token, explanation, from };
    return explanation;
  }

  /**
   * Throws `AdminConsentMissingError` naming every application permission in `roles` that the Graph token lacks,
   * before any Graph call is made.
   */
  async requireGraphPermissions(roles: readonly string[]): Promise<TokenExplanation> {
    const explanation = await this.explainGraphToken();
    assertRoles(explanation, roles);
    return explanation;
  }

  /** Kind, version and expiry of the credential in use (reads Key Vault if not yet read). */
  async status(): Promise<CredentialStatus> {
    const { material } = await this.current();
    const daysLeft =
      material.expiresOn === undefined
        ? undefined
        : Math.floor((material.expiresOn.getTime() - this.now()) / 86_400_000);
    return {
      kind: material.kind,
      version: material.version,
      expiresOn: material.expiresOn,
      daysLeft,
      ...(material.kind === 'certificate' ? { thumbprint: material.thumbprint } : {}),
      ...(this.rejected ? { rejected: this.rejected } : {}),
    };
  }

  private async tokenFrom(loaded: Loaded, scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    const token = await loaded.credential.getToken(scopes, options);
    if (!token) throw new Error('Entra ID returned no access token.');
    if (!loaded.issued?.includes(token.token)) loaded.issued = [token.token, ...(loaded.issued ?? [])].slice(0, 8);
    // Entra accepts the newest version again (the operator registered it): nothing left to warn about.
    if (this.rejected?.version === loaded.material.version) this.rejected = undefined;
    return token;
  }

  private async current(): Promise<Loaded> {
    if (this.loaded && this.now() - this.loaded.readAt < this.config.credentialRefreshMs) return this.loaded;
    return this.reload();
  }

  /** One Key Vault read at a time, shared by every caller waiting for it. */
  private reload(): Promise<Loaded> {
    this.loading ??= this.source
      .read()
      .then((material) => {
        const reuse = this.loaded && this.loaded.material.version === material.version;
        const loaded: Loaded = {
          material,
          credential: reuse ? this.loaded!.credential : this.buildCredential(material),
          readAt: this.now(),
        };
        this.loaded = loaded;
        return loaded;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  private buildCredential(material: AppCredentialMaterial): TokenCredential {
    const options = {
      authorityHost: this.config.endpoints.authorityHost,
      // Instance discovery asks the public cloud about the authority; a custom authority is not listed there.
      disableInstanceDiscovery: this.config.customAuthority,
    };
    return material.kind === 'certificate'
      ? new ClientCertificateCredential(
          this.config.tenantId,
          this.config.clientId,
          { certificate: material.pem },
          options,
        )
      : new ClientSecretCredential(this.config.tenantId, this.config.clientId, material.secret, options);
  }
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const response = (err as { errorResponse?: { error?: string; errorDescription?: string } }).errorResponse;
  return `${err.message} ${response?.error ?? ''} ${response?.errorDescription ?? ''}`;
}
