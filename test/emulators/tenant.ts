/**
 * The emulated organisation: its tenant id, app registrations (credentials and admin consent), managed
 * identities and users (mailboxes). Entra, Key Vault and Graph emulators all read this one object, and tests
 * change it (withhold consent, remove a secret) to reproduce customer situations.
 */
import { randomUUID } from 'node:crypto';
import { thumbprints } from './testCa';

/**
 * Graph application permissions the emulator knows (the default consented set). Mail.ReadBasic.All is the
 * least-privileged permission Graph documents for GET message and message delta; the gateway needs it to watch.
 */
export const GRAPH_APP_ROLES = [
  'Mail.Send',
  'Mail.ReadWrite',
  'Mail.Read',
  'Mail.ReadBasic',
  'Mail.ReadBasic.All',
  'User.Read.All',
] as const;

/** A client secret registered on an app. */
export interface ClientSecretRecord {
  value: string;
  expiresOn?: Date;
}

/** A certificate registered on an app (public part only, as in Entra). */
export interface ClientCertificateRecord {
  certPem: string;
  /** base64url SHA-1 thumbprint (`x5t`). */
  sha1: string;
  /** base64url SHA-256 thumbprint (`x5t#S256`). */
  sha256: string;
}

/** An app registration with its service principal's consented application roles. */
export interface AppRegistration {
  clientId: string;
  displayName: string;
  secrets: ClientSecretRecord[];
  certificates: ClientCertificateRecord[];
  /** Application permissions an admin consented for Microsoft Graph (the token's `roles`). */
  graphRoles: Set<string>;
}

/** A user-assigned managed identity. */
export interface ManagedIdentityRecord {
  clientId: string;
  principalId: string;
  /** Whether it holds Key Vault Secrets User on the emulated vault. */
  keyVaultSecretsUser: boolean;
}

/** A user with an Exchange Online mailbox. */
export interface TenantUser {
  id: string;
  userPrincipalName: string;
  mail: string;
  displayName: string;
  /** False for a mailbox on-premises or unlicensed (Graph answers MailboxNotEnabledForRESTAPI). */
  restEnabled: boolean;
  /**
   * The mailbox's MaxSendSize in bytes (`Set-Mailbox -MaxSendSize`): Exchange refuses to send a larger message with
   * ErrorMessageSizeExceeded. Exchange Online's default is 35 MB; tests set a small one instead of sending 36 MB.
   */
  maxSendSizeBytes: number;
}

/** Exchange Online's default MaxSendSize: 35 MB. */
export const DEFAULT_MAX_SEND_SIZE_BYTES = 35 * 1024 * 1024;

/** The emulated tenant. */
export class EmulatedTenant {
  readonly apps = new Map<string, AppRegistration>();
  readonly identities = new Map<string, ManagedIdentityRecord>();
  readonly users = new Map<string, TenantUser>();
  /**
   * Exchange's Send As permission: for each mailbox (user id), the lower-case addresses it may put in `from` besides
   * its own. Graph refuses any other `from` with ErrorSendAsDenied.
   */
  readonly sendAs = new Map<string /* mailbox user id */, Set<string /* lower-case address */>>();

  constructor(
    readonly tenantId: string = randomUUID(),
    readonly domain = 'contoso.com',
  ) {}

  /** Registers an app; by default every Graph role is consented. */
  registerApp(
    options: { displayName?: string; graphRoles?: readonly string[]; clientId?: string } = {},
  ): AppRegistration {
    const app: AppRegistration = {
      clientId: options.clientId ?? randomUUID(),
      displayName: options.displayName ?? 'Mail gateway',
      secrets: [],
      certificates: [],
      graphRoles: new Set(options.graphRoles ?? GRAPH_APP_ROLES),
    };
    this.apps.set(app.clientId, app);
    return app;
  }

  /** Adds a client secret to `app`. */
  addSecret(app: AppRegistration, value: string, expiresOn?: Date): ClientSecretRecord {
    const record = { value, expiresOn };
    app.secrets.push(record);
    return record;
  }

  /** Adds a certificate's public part to `app`. */
  addCertificate(app: AppRegistration, certPem: string): ClientCertificateRecord {
    const record = { certPem, ...thumbprints(certPem) };
    app.certificates.push(record);
    return record;
  }

  /** Creates a user-assigned managed identity (with Key Vault Secrets User unless told otherwise). */
  addManagedIdentity(options: { clientId?: string; keyVaultSecretsUser?: boolean } = {}): ManagedIdentityRecord {
    const identity = {
      clientId: options.clientId ?? randomUUID(),
      principalId: randomUUID(),
      keyVaultSecretsUser: options.keyVaultSecretsUser ?? true,
    };
    this.identities.set(identity.clientId, identity);
    return identity;
  }

  /** Adds a user with a mailbox; `localPart` becomes `{localPart}@{domain}`. */
  addUser(
    localPart: string,
    options: { displayName?: string; restEnabled?: boolean; maxSendSizeBytes?: number } = {},
  ): TenantUser {
    const address = localPart.includes('@') ? localPart : `${localPart}@${this.domain}`;
    const user: TenantUser = {
      id: randomUUID(),
      userPrincipalName: address,
      mail: address,
      displayName: options.displayName ?? address.split('@')[0],
      restEnabled: options.restEnabled ?? true,
      maxSendSizeBytes: options.maxSendSizeBytes ?? DEFAULT_MAX_SEND_SIZE_BYTES,
    };
    this.users.set(user.id, user);
    return user;
  }

  /** Lets `user`'s mailbox send as `address` (what `Add-RecipientPermission -AccessRights SendAs` grants). */
  grantSendAs(user: TenantUser, address: string): void {
    let addresses = this.sendAs.get(user.id);
    if (!addresses) {
      addresses = new Set();
      this.sendAs.set(user.id, addresses);
    }
    addresses.add(address.toLowerCase());
  }

  /** Finds a user by id, UPN or mail (case-insensitive), as Graph's `/users/{id|upn}` does. */
  findUser(idOrAddress: string): TenantUser | undefined {
    const key = idOrAddress.toLowerCase();
    for (const user of this.users.values()) {
      if (user.id === key || user.userPrincipalName.toLowerCase() === key || user.mail.toLowerCase() === key) {
        return user;
      }
    }
    return undefined;
  }

  /** True when `name` is this tenant's id or domain (as authority paths accept either). */
  matches(name: string): boolean {
    const key = name.toLowerCase();
    return key === this.tenantId || key === this.domain;
  }
}
