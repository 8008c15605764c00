/**
 * Key Vault emulator: the secrets API the SDK uses, with challenge-based authentication (an anonymous request
 * gets 401 and `WWW-Authenticate: Bearer authorization=..., resource=...`), bearer tokens checked for audience
 * and signature, RBAC (Key Vault Secrets User), versions, `attributes.exp`/`nbf`/`enabled`, `contentType`, and
 * certificates' backing secrets (PEM or PKCS#12, `managed: true`, `kid`).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, startHttpsServer, type RunningServer } from './httpServer';
import type { EmulatedTenant } from './tenant';
import { toPkcs12Base64, type PemPair } from './testCa';
import type { TokenIssuer } from './tokenIssuer';

/** One stored version of a secret. */
export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  enabled: boolean;
  created: Date;
  notBefore?: Date;
  expiresOn?: Date;
  /** True for a certificate's backing secret. */
  managed: boolean;
}

/** Options for {@link KeyVaultEmulator.start}. */
export interface KeyVaultEmulatorOptions {
  tenant: EmulatedTenant;
  issuer: TokenIssuer;
  ca: PemPair;
  /** Authority host named in the challenge (the Entra emulator's URL). */
  authorityHost: string;
  /** Resource named in the challenge and required as token audience; default `https://vault.azure.net`. */
  resource?: string;
}

/** A request the vault saw (never a secret value). */
export interface VaultRequestRecord {
  method: string;
  path: string;
  status: number;
  /** Object id (`oid`) of the caller, when authenticated. */
  caller?: string;
}

/** The running Key Vault emulator. */
export class KeyVaultEmulator {
  /** Every request, in order. */
  readonly requests: VaultRequestRecord[] = [];
  private readonly secrets = new Map<string, SecretVersion[]>();
  private readonly resource: string;

  private server!: RunningServer;

  private constructor(private readonly options: KeyVaultEmulatorOptions) {
    this.resource = options.resource ?? 'https://vault.azure.net';
  }

  /** Starts the vault on a free loopback port. */
  static async start(options: KeyVaultEmulatorOptions): Promise<KeyVaultEmulator> {
    const vault = new KeyVaultEmulator(options);
    vault.server = await startHttpsServer(options.ca, (req, res) => vault.handle(req, res));
    return vault;
  }

  /** The vault URL (use as `KEY_VAULT_URL`). */
  get url(): string {
    return this.server.url;
  }

  /** Stops the server. */
  close(): Promise<void> {
    return this.server.close();
  }

  /** Stores a new version of a plain secret (a client secret) and returns it. */
  setSecret(
    name: string,
    value: string,
    options: { contentType?: string; expiresOn?: Date; notBefore?: Date; enabled?: boolean } = {},
  ): SecretVersion {
    return this.addVersion(name, { value, managed: false, enabled: options.enabled ?? true, ...options });
  }

  /**
   * Imports a certificate: stores its backing secret as Key Vault does, PEM (`application/x-pem-file`, key then
   * certificate) or PKCS#12 (`application/x-pkcs12`, base64), with the certificate's validity as nbf/exp.
   */
  importCertificate(name: string, pair: PemPair, format: 'pem' | 'pkcs12' = 'pem'): SecretVersion {
    const x509 = new X509Certificate(pair.certPem);
    const value = format === 'pem' ? `${pair.keyPem.trim()}\n${pair.certPem.trim()}\n` : toPkcs12Base64(pair);
    return this.addVersion(name, {
      value,
      contentType: format === 'pem' ? 'application/x-pem-file' : 'application/x-pkcs12',
      managed: true,
      enabled: true,
      notBefore: new Date(x509.validFrom),
      expiresOn: new Date(x509.validTo),
    });
  }

  /** Enables or disables a stored version. */
  setEnabled(name: string, version: string, enabled: boolean): void {
    const found = this.secrets.get(name.toLowerCase())?.find((v) => v.version === version);
    if (!found) throw new Error(`no version ${version} of ${name}`);
    found.enabled = enabled;
  }

  private addVersion(name: string, fields: Omit<SecretVersion, 'version' | 'created'>): SecretVersion {
    const version: SecretVersion = { ...fields, version: randomBytes(16).toString('hex'), created: new Date() };
    const key = name.toLowerCase();
    this.secrets.set(key, [...(this.secrets.get(key) ?? []), version]);
    return version;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const record: VaultRequestRecord = { method: req.method ?? '', path: url.pathname, status: 0 };
    this.requests.push(record);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, body, headers);
    };
    const error = (status: number, code: string, message: string, inner?: string) =>
      reply(status, { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } });

    // Drain the body: the SDK's first (anonymous) request of a challenge exchange carries none, later ones may.
    req.resume();
    if (!url.searchParams.get('api-version')) {
      return error(400, 'BadParameter', 'The request URI contains an invalid or missing api-version parameter.');
    }
    const authorization = req.headers.authorization;
    if (!authorization?.startsWith('Bearer ')) {
      return reply(
        401,
        { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
        {
          'www-authenticate': `Bearer authorization="${this.options.authorityHost}/${this.options.tenant.tenantId}", resource="${this.resource}"`,
        },
      );
    }
    const verified = this.options.issuer.verify(authorization.slice(7), [this.resource, `${this.resource}/`]);
    if (!verified.ok) {
      return error(401, 'Unauthorized', `AKV10022: Invalid audience or token: ${verified.message}`);
    }
    record.caller = verified.claims.oid;
    const identity = [...this.options.tenant.identities.values()].find((i) => i.principalId === verified.claims.oid);
    if (!identity?.keyVaultSecretsUser) {
      return error(
        403,
        'Forbidden',
        `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${verified.claims.appid};oid=${verified.claims.oid}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'`,
        'ForbiddenByRbac',
      );
    }

    const listing = /^\/secrets\/([0-9a-zA-Z-]+)\/versions\/?$/.exec(url.pathname);
    if (listing && req.method === 'GET') return reply(200, this.listVersions(listing[1]));
    const match = /^\/secrets\/([0-9a-zA-Z-]+)(?:\/([0-9a-f]*))?\/?$/.exec(url.pathname);
    if (!match || req.method !== 'GET') {
      return error(405, 'BadParameter', `The emulator does not implement ${req.method ?? ''} ${url.pathname}.`);
    }
    const [, name, versionId] = match;
    const versions = this.secrets.get(name.toLowerCase());
    const found = versionId ? versions?.find((v) => v.version === versionId) : versions?.at(-1);
    if (!found) {
      return error(
        404,
        'SecretNotFound',
        `A secret with (name/id) ${name}${versionId ? `/${versionId}` : ''} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
      );
    }
    if (!found.enabled) {
      return error(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    }
    const now = Date.now();
    if ((found.notBefore && found.notBefore.getTime() > now) || (found.expiresOn && found.expiresOn.getTime() < now)) {
      return error(
        403,
        'Forbidden',
        'Operation get is not allowed on an expired or not yet valid secret.',
        'SecretDisabled',
      );
    }
    reply(200, {
      value: found.value,
      ...(found.contentType ? { contentType: found.contentType } : {}),
      id: `${this.url}/secrets/${name}/${found.version}`,
      ...(found.managed ? { managed: true, kid: `${this.url}/keys/${name}/${found.version}` } : {}),
      attributes: attributes(found),
      tags: {},
    });
  }

  /**
   * `GET /secrets/{name}/versions`: every version's metadata (never a value), as Key Vault lists them; the
   * `Key Vault Secrets User` role includes this (`secrets/readMetadata`). A name without versions lists nothing.
   */
  private listVersions(name: string): { value: unknown[]; nextLink: null } {
    const versions = this.secrets.get(name.toLowerCase()) ?? [];
    return {
      value: versions.map((v) => ({
        id: `${this.url}/secrets/${name}/${v.version}`,
        ...(v.contentType ? { contentType: v.contentType } : {}),
        ...(v.managed ? { managed: true } : {}),
        attributes: attributes(v),
        tags: {},
      })),
      nextLink: null,
    };
  }
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** A version's `attributes` as Key Vault returns them. */
function attributes(v: SecretVersion): Record<string, unknown> {
  return {
    enabled: v.enabled,
    ...(v.notBefore ? { nbf: seconds(v.notBefore) } : {}),
    ...(v.expiresOn ? { exp: seconds(v.expiresOn) } : {}),
    created: seconds(v.created),
    updated: seconds(v.created),
    recoveryLevel: 'Recoverable+Purgeable',
    recoverableDays: 90,
  };
}
