/**
 * Reads the app's credential from Key Vault with the Function App's managed identity: a certificate's backing
 * secret (PEM or PKCS#12) or a client secret. No credential ever sits in an app setting.
 */
import { X509Certificate } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import { SecretClient, type KeyVaultSecret } from '@azure/keyvault-secrets';
import { RestError } from '@azure/core-rest-pipeline';
import forge from 'node-forge';
import { azureIdentityCredential } from '../platform/azureIdentity';
import type { GatewayConfig } from '../platform/config';

/** The app credential as read from one Key Vault version. */
export type AppCredentialMaterial =
  | {
      kind: 'certificate';
      /** Key Vault version id. */
      version: string;
      /** Private key and certificate, PEM, as `ClientCertificateCredential` takes them. */
      pem: string;
      /** Certificate `notAfter`. */
      expiresOn: Date;
      /** SHA-256 thumbprint (hex), for diagnostics. */
      thumbprint: string;
    }
  | {
      kind: 'secret';
      version: string;
      secret: string;
      /** The Key Vault secret's `expiresOn`, when set. */
      expiresOn?: Date;
    };

/** The stored value cannot be used as a credential; the message says why, never the value. */
export class CredentialFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialFormatError';
  }
}

/**
 * The credential the Function App uses to read Key Vault: its user-assigned managed identity when
 * `MANAGED_IDENTITY_CLIENT_ID` is set, otherwise `DefaultAzureCredential` (a developer's sign-in).
 */
function createKeyVaultReaderCredential(config: GatewayConfig): TokenCredential {
  return azureIdentityCredential(config.managedIdentityClientId);
}

/** Turns a Key Vault secret value into credential material, by its content type. */
function parseCredentialSecret(
  value: string,
  contentType: string | undefined,
  version: string,
  secretExpiresOn?: Date,
): AppCredentialMaterial {
  const type = contentType?.toLowerCase();
  if (type === 'application/x-pkcs12') {
    return certificateMaterial(pkcs12ToPem(value), version);
  }
  if (type === 'application/x-pem-file' || value.includes('-----BEGIN')) {
    return certificateMaterial(value, version);
  }
  if (value.trim() === '') throw new CredentialFormatError('The Key Vault secret is empty.');
  return { kind: 'secret', version, secret: value, expiresOn: secretExpiresOn };
}

function certificateMaterial(pem: string, version: string): AppCredentialMaterial {
  if (!/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new CredentialFormatError(
      'The certificate in Key Vault has no private key: it must be exportable (a Key Vault certificate with an exportable key policy).',
    );
  }
  const certBlock = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!certBlock) throw new CredentialFormatError('The PEM in Key Vault holds no certificate.');
  const x509 = new X509Certificate(certBlock[0]);
  return {
    kind: 'certificate',
    version,
    pem,
    expiresOn: new Date(x509.validTo),
    thumbprint: x509.fingerprint256.replace(/:/g, ''),
  };
}

/** Converts a base64 PKCS#12 (Key Vault stores them password-less) to PEM key + certificate chain. */
function pkcs12ToPem(base64: string): string {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const der = forge.util.decode64(base64.replace(/\s+/g, ''));
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der), '');
  } catch {
    throw new CredentialFormatError(
      'The PKCS#12 in Key Vault cannot be read without a password; store the certificate in Key Vault with an exportable key.',
    );
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
  const key = keyBags.find((b) => b.key)?.key;
  if (!key) throw new CredentialFormatError('The PKCS#12 in Key Vault holds no private key.');
  const certs = certBags.flatMap((b) => (b.cert ? [forge.pki.certificateToPem(b.cert)] : []));
  return `${forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)))}${certs.join('')}`;
}

/** Key Vault could not give the credential; the message says what to fix in Azure. */
export class KeyVaultAccessError extends Error {
  /** HTTP status from Key Vault, when it answered. */
  readonly statusCode?: number;

  constructor(message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyVaultAccessError';
    this.statusCode = statusCode;
  }

  /** Maps a Key Vault SDK failure to an actionable message. */
  static from(err: unknown, vaultUrl: string, name: string, identityClientId?: string): KeyVaultAccessError {
    const who = identityClientId
      ? `the managed identity (client id ${identityClientId})`
      : 'the signed-in identity (DefaultAzureCredential)';
    if (err instanceof RestError) {
      if (err.statusCode === 403) {
        return new KeyVaultAccessError(
          `${who} may not read secrets in ${vaultUrl}: assign it the role 'Key Vault Secrets User' on the vault (RBAC mode) and allow a few minutes to propagate. Key Vault said: ${err.code ?? 'Forbidden'}.`,
          403,
          { cause: err },
        );
      }
      if (err.statusCode === 404) {
        return new KeyVaultAccessError(
          `${vaultUrl} has no enabled certificate or secret named '${name}': check APP_CREDENTIAL_NAME or import the credential.`,
          404,
          { cause: err },
        );
      }
      if (err.statusCode === 401) {
        return new KeyVaultAccessError(`${vaultUrl} refused the token of ${who}: ${err.message}`, 401, { cause: err });
      }
    }
    const reason = err instanceof Error ? err.message : String(err);
    return new KeyVaultAccessError(`Could not read '${name}' from ${vaultUrl} as ${who}: ${reason}`, undefined, {
      cause: err,
    });
  }
}

/** Reads the latest version of the app credential from Key Vault. */
export class KeyVaultCredentialSource {
  private readonly client: SecretClient;

  constructor(
    private readonly config: GatewayConfig,
    readerCredential: TokenCredential = createKeyVaultReaderCredential(config),
  ) {
    this.client = new SecretClient(config.keyVault.url, readerCredential, {
      // A vault outside the cloud's DNS suffix (private DNS name, emulator) names a resource on another domain.
      disableChallengeResourceVerification: !config.keyVault.verifyChallengeResource,
    });
  }

  /**
   * Fetches and parses the latest version, or `version` when given; Key Vault failures become
   * {@link KeyVaultAccessError}.
   */
  async read(version?: string): Promise<AppCredentialMaterial> {
    const { url, credentialName } = this.config.keyVault;
    let secret: KeyVaultSecret;
    try {
      secret = await this.client.getSecret(credentialName, version ? { version } : {});
    } catch (err) {
      throw KeyVaultAccessError.from(err, url, credentialName, this.config.managedIdentityClientId);
    }
    if (secret.value === undefined) throw new CredentialFormatError('The Key Vault secret has no value.');
    return parseCredentialSecret(
      secret.value,
      secret.properties.contentType,
      secret.properties.version ?? 'unknown',
      secret.properties.expiresOn,
    );
  }

  /**
   * Versions that could back the credential, newest first: enabled and inside their `nbf`/`exp` window. Listing
   * reads metadata only (no values), which the `Key Vault Secrets User` role allows.
   */
  async usableVersions(now = Date.now()): Promise<string[]> {
    const { url, credentialName } = this.config.keyVault;
    const found: { version: string; created: number; order: number }[] = [];
    try {
      for await (const p of this.client.listPropertiesOfSecretVersions(credentialName)) {
        const valid =
          p.enabled !== false &&
          (!p.notBefore || p.notBefore.getTime() <= now) &&
          (!p.expiresOn || p.expiresOn.getTime() > now);
        if (valid && p.version)
          found.push({ version: p.version, created: p.createdOn?.getTime() ?? 0, order: found.length });
      }
    } catch (err) {
      throw KeyVaultAccessError.from(err, url, credentialName, this.config.managedIdentityClientId);
    }
    // Key Vault lists in no promised order; later in the list wins a tie on the (second-precision) creation time.
    return found.sort((a, b) => b.created - a.created || b.order - a.order).map((v) => v.version);
  }
}
