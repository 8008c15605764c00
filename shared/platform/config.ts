/**
 * The gateway's configuration: every app setting it reads, read once, typed and validated.
 *
 * A missing or malformed setting stops start-up with a {@link ConfigError} naming each bad setting. The same
 * list ({@link SETTINGS}) is what `local.settings.sample.json`, `infra/` and the README document; a test holds
 * them equal.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { CLOUD_NAMES, CLOUDS, isCloudName, isKnownAuthorityHost, type CloudEndpoints, type CloudName } from './clouds';

/** Who provides a setting in Azure: the app's own settings (Bicep) or the platform (App Service). */
export type SettingSource = 'app' | 'platform';

/** One setting the gateway reads. */
export interface SettingDefinition {
  /** The environment variable / app setting name. */
  name: string;
  /** Whether start-up fails without it. */
  required: boolean;
  /** Who sets it in Azure. */
  source: SettingSource;
  /** What it means, for the README and error messages. */
  description: string;
}

/**
 * Every setting the config module reads. Storage is the `AzureWebJobsStorage` family: a connection string, or
 * the identity-based `AzureWebJobsStorage__*` properties the Functions host also understands.
 */
export const SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'AZURE_CLOUD',
    required: false,
    source: 'app',
    description: `Microsoft cloud: ${CLOUD_NAMES.join(', ')} (default global).`,
  },
  {
    name: 'ENTRA_TENANT_ID',
    required: true,
    source: 'app',
    description: 'Tenant of the app registration: its GUID or a verified domain (not common/organizations/consumers).',
  },
  {
    name: 'ENTRA_CLIENT_ID',
    required: true,
    source: 'app',
    description: 'Application (client) id of the app registration (GUID).',
  },
  {
    name: 'KEY_VAULT_URL',
    required: true,
    source: 'app',
    description: 'URL of the Key Vault holding the app credential, e.g. https://kv-mail.vault.azure.net.',
  },
  {
    name: 'APP_CREDENTIAL_NAME',
    required: true,
    source: 'app',
    description:
      'Name of the Key Vault certificate (its backing secret, PEM or PKCS#12) or secret (client secret) that is the app credential.',
  },
  {
    name: 'MANAGED_IDENTITY_CLIENT_ID',
    required: false,
    source: 'app',
    description:
      'Client id of the user-assigned managed identity used to read Key Vault. Unset: DefaultAzureCredential (developer sign-in).',
  },
  {
    name: 'CREDENTIAL_REFRESH_MINUTES',
    required: false,
    source: 'app',
    description:
      'How often to check Key Vault for a new credential version (default 60). A rejected credential is re-read at once.',
  },
  {
    name: 'ENTRA_AUTHORITY_HOST',
    required: false,
    source: 'app',
    description: "Override of the cloud's Entra authority host (https).",
  },
  {
    name: 'GRAPH_BASE_URL',
    required: false,
    source: 'app',
    description: "Override of the cloud's Microsoft Graph root URL (https, no version).",
  },
  {
    name: 'GRAPH_SCOPE',
    required: false,
    source: 'app',
    description: 'Override of the scope requested for Graph tokens (default {graph}/.default of the cloud).',
  },
  {
    name: 'ALLOWED_SENDERS',
    required: true,
    source: 'app',
    description:
      'Mailboxes callers may send as: comma-separated exact addresses and *@domain patterns, e.g. alerts@contoso.com,*@billing.contoso.com. Anything else is refused with 403 before Graph is called.',
  },
  {
    name: 'MAX_SEND_REQUEST_MB',
    required: false,
    source: 'app',
    description:
      'Largest POST /api/mail/send body accepted, in MB (default 50, at most 100); larger bodies get 413 naming the cap.',
  },
  {
    name: 'IDEMPOTENCY_TTL_HOURS',
    required: false,
    source: 'app',
    description: 'How long an Idempotency-Key and its result are kept (default 24 hours).',
  },
  {
    name: 'GRAPH_MAX_WAIT_SECONDS',
    required: false,
    source: 'app',
    description:
      'Longest total time one Graph call may spend waiting out 429/503 Retry-After answers (default 30); past it the caller gets 503 with Retry-After.',
  },
  {
    name: 'GRAPH_PERMISSION_CHECK',
    required: false,
    source: 'app',
    description:
      "token (default): refuse a send whose token lacks Mail.Send, naming the missing admin consent, before Graph is called. off: leave the decision to Graph, for Exchange RBAC for Applications, whose grants never appear in the token's roles.",
  },
  {
    name: 'AzureWebJobsStorage',
    required: true,
    source: 'app',
    description:
      'Storage for tables and queues: a connection string, or the identity-based AzureWebJobsStorage__accountName / __tableServiceUri / __queueServiceUri (+ __clientId, __credential) properties.',
  },
  {
    name: 'NODE_EXTRA_CA_CERTS',
    required: false,
    source: 'app',
    description:
      'Path of a PEM file of extra CAs that Node trusts (read by Node at process start; only for private endpoints or the local emulators).',
  },
  {
    name: 'IDENTITY_ENDPOINT',
    required: false,
    source: 'platform',
    description:
      'Managed-identity token endpoint, set by App Service / Functions (the sandbox sets it to the emulator).',
  },
  {
    name: 'IDENTITY_HEADER',
    required: false,
    source: 'platform',
    description: 'Secret header value for IDENTITY_ENDPOINT, set by App Service / Functions.',
  },
];

/** Where the gateway keeps its tables and queues. */
export type StorageConfig =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; tableUrl: string; queueUrl: string; managedIdentityClientId?: string };

/** The validated configuration. */
export interface GatewayConfig {
  /** Cloud name from `AZURE_CLOUD`. */
  cloudName: CloudName;
  /** The cloud's endpoints after overrides. */
  endpoints: CloudEndpoints;
  /** True when the authority host is not one MSAL knows, so instance discovery must be skipped. */
  customAuthority: boolean;
  /** Tenant of the app registration. */
  tenantId: string;
  /** Client id of the app registration. */
  clientId: string;
  /** Key Vault holding the app credential. */
  keyVault: {
    /** Vault URL, without trailing slash. */
    url: string;
    /** Name of the certificate or secret. */
    credentialName: string;
    /** False when the vault is outside the cloud's Key Vault DNS suffix (a private endpoint or the emulator). */
    verifyChallengeResource: boolean;
  };
  /** Client id of the user-assigned managed identity, when one is configured. */
  managedIdentityClientId?: string;
  /** Milliseconds between checks for a new credential version. */
  credentialRefreshMs: number;
  /** Tables and queues. */
  storage: StorageConfig;
  /** Sender policy: exact addresses (lower case) and domains allowed by `*@domain` patterns (lower case). */
  allowedSenders: { addresses: ReadonlySet<string>; domains: ReadonlySet<string> };
  /** Largest send request body in bytes. */
  maxSendRequestBytes: number;
  /** Idempotency record lifetime in milliseconds. */
  idempotencyTtlMs: number;
  /** Longest total Retry-After wait per Graph call, in seconds. */
  graphMaxWaitSeconds: number;
  /** Whether sends are refused when the token's roles lack a permission (`token`) or Graph decides (`off`). */
  graphPermissionCheck: 'token' | 'off';
}

/** Thrown when settings are missing or malformed; `problems` names each setting. */
export class ConfigError extends Error {
  /** One line per bad setting, each starting with the setting's name. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const RESERVED_TENANTS = new Set(['common', 'organizations', 'consumers']);
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

const present = (message: string) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined), z.string({ error: message }));
const optional = () =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined), z.string().optional());
const httpsUrl = (what: string) =>
  z.string().refine(
    (v) => {
      try {
        return new URL(v).protocol === 'https:';
      } catch {
        return false;
      }
    },
    { message: `must be an https URL (${what})` },
  );
const guid = (what: string) => z.string().regex(GUID, { message: `must be a GUID (${what})` });

const wholeNumber = (min: number, max: number, unit: string) =>
  optional()
    .refine((v) => v === undefined || /^\d+$/.test(v), { message: `must be a whole number of ${unit}` })
    .transform((v) => (v === undefined ? undefined : Number(v)))
    .refine((v) => v === undefined || (v >= min && v <= max), { message: `must be between ${min} and ${max} ${unit}` });

const SENDER_ENTRY = /^(\*|[^\s@,*]+)@[a-z0-9.-]+\.[a-z]{2,}$/i;

const settingsSchema = z.object({
  AZURE_CLOUD: optional().refine((v) => v === undefined || isCloudName(v), {
    message: `is not a known cloud; use one of ${CLOUD_NAMES.join(', ')}`,
  }),
  ENTRA_TENANT_ID: present('is missing').pipe(
    z
      .string()
      .refine((v) => !RESERVED_TENANTS.has(v.toLowerCase()), {
        message:
          'must name one tenant (its GUID or domain); common/organizations/consumers cannot issue app-only tokens',
      })
      .refine((v) => RESERVED_TENANTS.has(v.toLowerCase()) || GUID.test(v) || DOMAIN.test(v), {
        message: 'must be a tenant GUID or domain such as contoso.onmicrosoft.com',
      }),
  ),
  ENTRA_CLIENT_ID: present('is missing').pipe(guid('the application (client) id')),
  KEY_VAULT_URL: present('is missing').pipe(httpsUrl('e.g. https://kv-mail.vault.azure.net')),
  APP_CREDENTIAL_NAME: present('is missing').pipe(
    z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, { message: 'must be a Key Vault object name (letters, digits, dashes)' }),
  ),
  MANAGED_IDENTITY_CLIENT_ID: optional().pipe(guid('the managed identity client id').optional()),
  CREDENTIAL_REFRESH_MINUTES: wholeNumber(1, 1440, 'minutes'),
  ALLOWED_SENDERS: present('is missing: name the mailboxes callers may send as').pipe(
    z.string().refine((v) => v.split(',').every((entry) => SENDER_ENTRY.test(entry.trim())), {
      message: 'must be comma-separated addresses or *@domain patterns, e.g. alerts@contoso.com,*@billing.contoso.com',
    }),
  ),
  MAX_SEND_REQUEST_MB: wholeNumber(1, 100, 'MB'),
  IDEMPOTENCY_TTL_HOURS: wholeNumber(1, 24 * 30, 'hours'),
  GRAPH_MAX_WAIT_SECONDS: wholeNumber(0, 600, 'seconds'),
  GRAPH_PERMISSION_CHECK: optional().pipe(z.enum(['token', 'off'], { error: 'must be token or off' }).optional()),
  ENTRA_AUTHORITY_HOST: optional().pipe(httpsUrl('MSAL refuses a non-https authority').optional()),
  GRAPH_BASE_URL: optional().pipe(httpsUrl('Graph is only served over https').optional()),
  GRAPH_SCOPE: optional().pipe(
    z
      .string()
      .regex(/\/\.default$/, { message: 'must end with /.default (app-only tokens use the .default scope)' })
      .optional(),
  ),
  NODE_EXTRA_CA_CERTS: optional().refine((v) => v === undefined || existsSync(v), {
    message: 'names a file that does not exist',
  }),
  IDENTITY_ENDPOINT: optional().pipe(
    z
      .string()
      .refine((v) => URL.canParse(v), { message: 'must be a URL' })
      .optional(),
  ),
});

function parseStorage(env: NodeJS.ProcessEnv, managedIdentityClientId: string | undefined, problems: string[]) {
  const connectionString = env.AzureWebJobsStorage?.trim();
  if (connectionString) {
    return { kind: 'connectionString', connectionString } as const;
  }
  const accountName = env.AzureWebJobsStorage__accountName?.trim();
  const tableUrl =
    env.AzureWebJobsStorage__tableServiceUri?.trim() ||
    (accountName && `https://${accountName}.table.core.windows.net`);
  const queueUrl =
    env.AzureWebJobsStorage__queueServiceUri?.trim() ||
    (accountName && `https://${accountName}.queue.core.windows.net`);
  if (!tableUrl || !queueUrl) {
    problems.push(
      'AzureWebJobsStorage is missing: set a connection string, or AzureWebJobsStorage__accountName (or both __tableServiceUri and __queueServiceUri) for identity-based access',
    );
    return undefined;
  }
  for (const [name, url] of [
    ['AzureWebJobsStorage__tableServiceUri', tableUrl],
    ['AzureWebJobsStorage__queueServiceUri', queueUrl],
  ] as const) {
    if (!URL.canParse(url)) problems.push(`${name} must be a URL`);
  }
  const clientId = env.AzureWebJobsStorage__clientId?.trim() || managedIdentityClientId;
  return { kind: 'identity', tableUrl, queueUrl, managedIdentityClientId: clientId } as const;
}

/**
 * Reads and validates every setting from `env`. Throws a {@link ConfigError} listing all problems at once,
 * so one deployment fixes them all.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${String(issue.path[0])} ${issue.message}`);
    }
  }
  const settings = parsed.success ? parsed.data : undefined;
  const storage = parseStorage(env, settings?.MANAGED_IDENTITY_CLIENT_ID, problems);
  if (problems.length > 0 || !settings || !storage) {
    throw new ConfigError(problems);
  }

  const cloudName: CloudName =
    settings.AZURE_CLOUD && isCloudName(settings.AZURE_CLOUD) ? settings.AZURE_CLOUD : 'global';
  const cloud = CLOUDS[cloudName];
  const graphBaseUrl = trimSlash(settings.GRAPH_BASE_URL ?? cloud.graphBaseUrl);
  const endpoints: CloudEndpoints = {
    authorityHost: trimSlash(settings.ENTRA_AUTHORITY_HOST ?? cloud.authorityHost),
    graphBaseUrl,
    graphScope: settings.GRAPH_SCOPE ?? cloud.graphScope,
    keyVaultDnsSuffix: cloud.keyVaultDnsSuffix,
  };
  const keyVaultUrl = trimSlash(settings.KEY_VAULT_URL);
  return {
    cloudName,
    endpoints,
    customAuthority: !isKnownAuthorityHost(endpoints.authorityHost),
    tenantId: settings.ENTRA_TENANT_ID,
    clientId: settings.ENTRA_CLIENT_ID,
    keyVault: {
      url: keyVaultUrl,
      credentialName: settings.APP_CREDENTIAL_NAME,
      verifyChallengeResource: new URL(keyVaultUrl).hostname.endsWith(`.${cloud.keyVaultDnsSuffix}`),
    },
    managedIdentityClientId: settings.MANAGED_IDENTITY_CLIENT_ID,
    credentialRefreshMs: (settings.CREDENTIAL_REFRESH_MINUTES ?? 60) * 60_000,
    storage,
    allowedSenders: parseSenderPolicy(settings.ALLOWED_SENDERS),
    maxSendRequestBytes: (settings.MAX_SEND_REQUEST_MB ?? 50) * 1024 * 1024,
    idempotencyTtlMs: (settings.IDEMPOTENCY_TTL_HOURS ?? 24) * 3_600_000,
    graphMaxWaitSeconds: settings.GRAPH_MAX_WAIT_SECONDS ?? 30,
    graphPermissionCheck: settings.GRAPH_PERMISSION_CHECK ?? 'token',
  };
}

let cached: GatewayConfig | undefined;

/** The process's configuration, read from `process.env` on first use and kept. */
export function getConfig(): GatewayConfig {
  cached ??= loadConfig(process.env);
  return cached;
}

function parseSenderPolicy(value: string): GatewayConfig['allowedSenders'] {
  const addresses = new Set<string>();
  const domains = new Set<string>();
  for (const entry of value.split(',').map((e) => e.trim().toLowerCase())) {
    if (entry.startsWith('*@')) domains.add(entry.slice(2));
    else addresses.add(entry);
  }
  return { addresses, domains };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
