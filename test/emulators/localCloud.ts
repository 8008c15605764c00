/**
 * The local cloud: Entra ID, the managed-identity endpoint, Key Vault and Graph emulators sharing one tenant,
 * seeded the way a real deployment is (an app registration whose credential sits in Key Vault, a user-assigned
 * managed identity allowed to read it, users with mailboxes), and the app settings that point the gateway at it.
 */
import { randomBytes } from 'node:crypto';
import { EntraEmulator } from './entra';
import { GraphEmulator, type GraphEmulatorOptions } from './graph/graphEmulator';
import { KeyVaultEmulator } from './keyVault';
import { ManagedIdentityEndpoint } from './managedIdentity';
import { EmulatedTenant, type AppRegistration, type ManagedIdentityRecord } from './tenant';
import { createCertificate, type PemPair } from './testCa';
import { TokenIssuer } from './tokenIssuer';

/** How the app registration's credential is stored in Key Vault. */
export type CredentialKind = 'certificate-pem' | 'certificate-pkcs12' | 'secret';

/** Options for {@link startLocalCloud}. */
export interface LocalCloudOptions {
  /** The test CA (from the test run or the sandbox). */
  ca: PemPair;
  /** The app credential; default a PEM certificate. */
  credential?: CredentialKind;
  /** Graph application permissions admin-consented for the app; default all. */
  graphRoles?: readonly string[];
  /** Mailbox local parts to create; default alerts, billing, support, it, someone. */
  users?: readonly string[];
  /** Tenant domain; default contoso.com. */
  domain?: string;
  /** Extra Graph emulator options (latency, limits, change-notification timing). */
  graph?: Pick<GraphEmulatorOptions, 'latencyMs' | 'limits' | 'subscriptions'>;
}

/** The running local cloud. */
export class LocalCloud {
  /** Name of the Key Vault object that holds the app credential. */
  readonly credentialName = 'mail-gateway-credential';

  private constructor(
    readonly ca: PemPair,
    readonly tenant: EmulatedTenant,
    readonly issuer: TokenIssuer,
    readonly entra: EntraEmulator,
    readonly managedIdentity: ManagedIdentityEndpoint,
    readonly keyVault: KeyVaultEmulator,
    readonly graph: GraphEmulator,
    readonly app: AppRegistration,
    readonly identity: ManagedIdentityRecord,
  ) {}

  /** Starts every emulator and seeds the tenant, app, identity, credential and mailboxes. */
  static async start(options: LocalCloudOptions): Promise<LocalCloud> {
    const tenant = new EmulatedTenant(undefined, options.domain);
    const issuer = new TokenIssuer();
    const entra = await EntraEmulator.start({ tenant, issuer, ca: options.ca });
    const managedIdentity = await ManagedIdentityEndpoint.start(tenant, entra);
    const keyVault = await KeyVaultEmulator.start({ tenant, issuer, ca: options.ca, authorityHost: entra.url });
    const graph = await GraphEmulator.start({
      tenant,
      issuer,
      ca: options.ca,
      ...options.graph,
    });
    const app = tenant.registerApp({ graphRoles: options.graphRoles });
    const identity = tenant.addManagedIdentity();
    for (const user of options.users ?? ['alerts', 'billing', 'support', 'it', 'someone']) tenant.addUser(user);
    const cloud = new LocalCloud(options.ca, tenant, issuer, entra, managedIdentity, keyVault, graph, app, identity);
    cloud.rotateCredential(options.credential ?? 'certificate-pem');
    return cloud;
  }

  /**
   * Adds a new credential to the app registration and stores it as a new Key Vault version, as an operator's
   * rotation does. The old credential stays valid until {@link revokeAllBut} removes it.
   */
  rotateCredential(kind: CredentialKind): { version: string; certificate?: PemPair; secret?: string } {
    if (kind === 'secret') {
      const secret = randomBytes(30).toString('base64url');
      this.tenant.addSecret(this.app, secret, new Date(Date.now() + 180 * 86_400_000));
      const version = this.keyVault.setSecret(this.credentialName, secret, {
        expiresOn: new Date(Date.now() + 180 * 86_400_000),
      }).version;
      return { version, secret };
    }
    const certificate = createCertificate({
      commonName: 'mail-gateway',
      notAfter: new Date(Date.now() + 365 * 86_400_000),
    });
    this.tenant.addCertificate(this.app, certificate.certPem);
    const version = this.keyVault.importCertificate(
      this.credentialName,
      certificate,
      kind === 'certificate-pkcs12' ? 'pkcs12' : 'pem',
    ).version;
    return { version, certificate };
  }

  /** Removes every credential from the app registration except the newest of each kind (the end of an overlap). */
  revokeAllBut(latest: { certificate?: PemPair; secret?: string }): void {
    this.app.certificates = this.app.certificates.filter((c) => c.certPem === latest.certificate?.certPem);
    this.app.secrets = this.app.secrets.filter((s) => s.value === latest.secret);
  }

  /**
   * App settings that point the gateway at this cloud, plus the platform's managed-identity variables. Storage
   * (`AzureWebJobsStorage`) comes from Azurite and is added by the caller.
   */
  settings(): Record<string, string> {
    return {
      AZURE_CLOUD: 'global',
      ENTRA_TENANT_ID: this.tenant.tenantId,
      ENTRA_CLIENT_ID: this.app.clientId,
      ENTRA_AUTHORITY_HOST: this.entra.url,
      GRAPH_BASE_URL: this.graph.url,
      KEY_VAULT_URL: this.keyVault.url,
      APP_CREDENTIAL_NAME: this.credentialName,
      MANAGED_IDENTITY_CLIENT_ID: this.identity.clientId,
      ALLOWED_SENDERS: `alerts@${this.tenant.domain},billing@${this.tenant.domain},support@${this.tenant.domain}`,
      ...this.managedIdentity.environment(),
    };
  }

  /** Stops every emulator. */
  async close(): Promise<void> {
    await Promise.all([this.entra.close(), this.managedIdentity.close(), this.keyVault.close(), this.graph.close()]);
  }
}
