/**
 * The gateway's configuration: every app setting it reads, read once, typed and validated.
 *
 * A missing or malformed setting is a {@link ConfigError} naming each bad setting (see configGate.ts for what the
 * app then does: health and every function answer 503, queue and timer triggers stay unregistered). The same
 * list ({@link SETTINGS}) is what `local.settings.sample.json`, `infra/` and the README document; a test holds
 * them equal.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { CLOUD_NAMES, CLOUDS, isCloudName, isKnownAuthorityHost, type CloudEndpoints, type CloudName } from './clouds';
import { parseMailboxPolicy, type MailboxPolicy } from './mailboxPolicy';

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

/** The range and unit of a setting that is a whole number: validation messages name the unit. */
interface WholeNumberRule {
  /** The value when the setting is unset. */
  value: number;
  min: number;
  max: number;
  /** Plural, as in "must be a whole number of hours". */
  unit: string;
}

/**
 * Each optional setting's default, written once: {@link loadConfig} falls back to it, and the descriptions in
 * {@link SETTINGS} quote it. Whole-number settings carry their range too (what the validation messages name). The
 * README, `local.settings.sample.json` and `infra/` state the same values; a test holds them equal.
 */
export const DEFAULTS = {
  AZURE_CLOUD: { value: 'global' },
  CREDENTIAL_REFRESH_MINUTES: { value: 60, min: 1, max: 1440, unit: 'minutes' },
  MAX_SEND_REQUEST_MB: { value: 50, min: 1, max: 100, unit: 'MB' },
  IDEMPOTENCY_TTL_HOURS: { value: 24, min: 1, max: 24 * 30, unit: 'hours' },
  GRAPH_MAX_WAIT_SECONDS: { value: 30, min: 0, max: 600, unit: 'seconds' },
  GRAPH_PERMISSION_CHECK: { value: 'token' },
  /** At minute 0 of every hour. */
  RENEWAL_SCHEDULE: { value: '0 0 * * * *' },
  RENEWAL_WINDOW_HOURS: { value: 48, min: 1, max: 168, unit: 'hours' },
  /** Graph's own guidance for polling without notifications: no more often than every 15 seconds per mailbox. */
  POLL_INTERVAL_SECONDS: { value: 60, min: 15, max: 3600, unit: 'seconds' },
  RECONCILE_INTERVAL_MINUTES: { value: 15, min: 1, max: 1440, unit: 'minutes' },
  MAILBOX_MESSAGES_PER_MINUTE: { value: 30, min: 1, max: 10_000, unit: 'messages' },
  MAILBOX_RECIPIENTS_PER_DAY: { value: 10_000, min: 1, max: 1_000_000, unit: 'recipients' },
  /** Off: the tenant's budget is the admin's to compute (TERRL depends on the licence count). */
  TENANT_EXTERNAL_RECIPIENTS_PER_DAY: { value: 'off' },
  /** A mail not sent within a day of being due fails. */
  OUTBOX_MAX_AGE_HOURS: { value: 24, min: 1, max: 168, unit: 'hours' },
  /** Off: bounces are reported only for mailboxes someone watches. */
  BOUNCE_TRACKING: { value: 'off' },
} as const satisfies Record<string, { value: string } | WholeNumberRule>;

/**
 * Every setting the config module reads. Storage is the `AzureWebJobsStorage` family: a connection string, or
 * the identity-based `AzureWebJobsStorage__*` properties the Functions host also understands.
 */
export const SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'AZURE_CLOUD',
    required: false,
    source: 'app',
    description: `Microsoft cloud: ${CLOUD_NAMES.join(', ')} (default ${DEFAULTS.AZURE_CLOUD.value}).`,
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
      `How often to check Key Vault for a new credential version (default ${DEFAULTS.CREDENTIAL_REFRESH_MINUTES.value}). ` +
      'A rejected credential is re-read at once.',
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
      `Largest POST /api/mail/send body accepted, in MB (default ${DEFAULTS.MAX_SEND_REQUEST_MB.value}, at most ${DEFAULTS.MAX_SEND_REQUEST_MB.max}); ` +
      'larger bodies get 413 naming the cap.',
  },
  {
    name: 'IDEMPOTENCY_TTL_HOURS',
    required: false,
    source: 'app',
    description: `How long an Idempotency-Key and its result are kept (default ${DEFAULTS.IDEMPOTENCY_TTL_HOURS.value} hours).`,
  },
  {
    name: 'GRAPH_MAX_WAIT_SECONDS',
    required: false,
    source: 'app',
    description:
      `Longest total time one Graph call may spend waiting out 429/503 Retry-After answers (default ${DEFAULTS.GRAPH_MAX_WAIT_SECONDS.value}); ` +
      'past it the caller gets 503 with Retry-After.',
  },
  {
    name: 'GRAPH_PERMISSION_CHECK',
    required: false,
    source: 'app',
    description:
      `${DEFAULTS.GRAPH_PERMISSION_CHECK.value} (default): ` +
      "refuse a send whose token lacks Mail.Send, naming the missing admin consent, before Graph is called. off: leave the decision to Graph, for Exchange RBAC for Applications, whose grants never appear in the token's roles.",
  },
  {
    name: 'WEBHOOK_BASE_URL',
    required: false,
    source: 'app',
    description:
      "The app's public https origin, e.g. https://func-mail.azurewebsites.net: Graph's subscriptions call {WEBHOOK_BASE_URL}/api/graph/notifications and /api/graph/lifecycle. Unset: mailboxes are watched by polling (delivery push is refused with a problem naming it).",
  },
  {
    name: 'ALLOWED_WATCH_MAILBOXES',
    required: false,
    source: 'app',
    description:
      'Mailboxes that may be watched, in the syntax of ALLOWED_SENDERS (addresses and *@domain patterns). Unset: none; anything else is refused with 403 before Graph is called.',
  },
  {
    name: 'ALLOWED_READ_MAILBOXES',
    required: false,
    source: 'app',
    description:
      'Mailboxes whose mail callers may read, answer and file through /api/mailboxes/{mailbox}/messages, in the syntax of ALLOWED_SENDERS. Unset: none; anything else is refused with 403 before Graph is called.',
  },
  {
    name: 'RENEWAL_SCHEDULE',
    required: false,
    source: 'app',
    description:
      'NCRONTAB schedule (six fields, UTC) of the subscription renewal timer, which also purges expired records ' +
      `(default ${DEFAULTS.RENEWAL_SCHEDULE.value}, hourly).`,
  },
  {
    name: 'RENEWAL_WINDOW_HOURS',
    required: false,
    source: 'app',
    description:
      `Renew every subscription that expires within this many hours (default ${DEFAULTS.RENEWAL_WINDOW_HOURS.value}, at most ${DEFAULTS.RENEWAL_WINDOW_HOURS.max}: ` +
      'a message subscription lives at most 10,080 minutes), and never before half of the lifetime Graph granted it has passed.',
  },
  {
    name: 'POLL_INTERVAL_SECONDS',
    required: false,
    source: 'app',
    description: `How often a mailbox watched by polling is read with the messages delta query (default ${DEFAULTS.POLL_INTERVAL_SECONDS.value}, at least ${DEFAULTS.POLL_INTERVAL_SECONDS.min}, at most ${DEFAULTS.POLL_INTERVAL_SECONDS.max}).`,
  },
  {
    name: 'RECONCILE_INTERVAL_MINUTES',
    required: false,
    source: 'app',
    description: `How often a mailbox watched by push is also read by delta, so that mail Graph never announced still becomes an event (default ${DEFAULTS.RECONCILE_INTERVAL_MINUTES.value}, at most ${DEFAULTS.RECONCILE_INTERVAL_MINUTES.max}).`,
  },
  {
    name: 'EVENTS_WEBHOOK_URL',
    required: false,
    source: 'app',
    description:
      'Optional https URL that also receives every mail event (CloudEvents JSON), signed per Standard Webhooks with EVENTS_SIGNING_SECRET. Events always go to the mail-events queue.',
  },
  {
    name: 'EVENTS_SIGNING_SECRET',
    required: false,
    source: 'app',
    description:
      'Standard Webhooks signing secret (whsec_ + base64 of 24 to 64 random bytes) for EVENTS_WEBHOOK_URL; in Azure a Key Vault reference, never a literal.',
  },
  {
    name: 'MAILBOX_MESSAGES_PER_MINUTE',
    required: false,
    source: 'app',
    description:
      'Messages the outbox processor sends per minute per mailbox, across all instances ' +
      `(default ${DEFAULTS.MAILBOX_MESSAGES_PER_MINUTE.value}, Exchange Online's message rate limit).`,
  },
  {
    name: 'MAILBOX_RECIPIENTS_PER_DAY',
    required: false,
    source: 'app',
    description:
      'Recipients (To + Cc + Bcc) the outbox processor sends to per mailbox in any 24 h, counted before the send ' +
      `(default ${DEFAULTS.MAILBOX_RECIPIENTS_PER_DAY.value}, Exchange Online's recipient rate limit); a mail over it is deferred, never sent into an NDR.`,
  },
  {
    name: 'TENANT_EXTERNAL_RECIPIENTS_PER_DAY',
    required: false,
    source: 'app',
    description:
      'External recipients (outside TENANT_DOMAINS) the outbox processor sends to from all mailboxes of the tenant in any 24 h, ' +
      `across all instances (default ${DEFAULTS.TENANT_EXTERNAL_RECIPIENTS_PER_DAY.value}; Exchange Online's tenant external recipient rate limit is ` +
      '500 × licences^0.7 + 9,500); a mail over it is deferred, never sent into an NDR. Needs TENANT_DOMAINS.',
  },
  {
    name: 'TENANT_DOMAINS',
    required: false,
    source: 'app',
    description:
      "The tenant's accepted domains, comma-separated (e.g. contoso.com,contoso.onmicrosoft.com): recipients outside them are external.",
  },
  {
    name: 'BOUNCE_TRACKING',
    required: false,
    source: 'app',
    description: `on: the Inbox of every mailbox the outbox sends from is watched for non-delivery reports only (mail.bounced, no mail.received; needs Mail.Read); off (default ${DEFAULTS.BOUNCE_TRACKING.value}): only watched mailboxes report bounces.`,
  },
  {
    name: 'OUTBOX_MAX_AGE_HOURS',
    required: false,
    source: 'app',
    description:
      'How long the outbox processor keeps trying a mail (waits, Retry-After, interrupted attempts) before marking it failed ' +
      `(default ${DEFAULTS.OUTBOX_MAX_AGE_HOURS.value}, at most ${DEFAULTS.OUTBOX_MAX_AGE_HOURS.max}).`,
  },
  {
    name: 'AzureWebJobsStorage',
    required: true,
    source: 'app',
    description:
      'Storage for tables, queues and the outbox blobs: a connection string, or the identity-based AzureWebJobsStorage__accountName / __tableServiceUri / __queueServiceUri / __blobServiceUri (+ __clientId, __credential) properties.',
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

/** Where the gateway keeps its tables, queues and blobs. */
export type StorageConfig =
  | { kind: 'connectionString'; connectionString: string }
  | { kind: 'identity'; tableUrl: string; queueUrl: string; blobUrl: string; managedIdentityClientId?: string };

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
  allowedSenders: MailboxPolicy;
  /** Largest send request body in bytes. */
  maxSendRequestBytes: number;
  /** Idempotency record lifetime in milliseconds. */
  idempotencyTtlMs: number;
  /** Longest total Retry-After wait per Graph call, in seconds. */
  graphMaxWaitSeconds: number;
  /** Whether sends are refused when the token's roles lack a permission (`token`) or Graph decides (`off`). */
  graphPermissionCheck: 'token' | 'off';
  /** Watching mailboxes. */
  watch: {
    /** https origin Graph's webhooks call back; undefined when unset (watching is refused). */
    webhookBaseUrl: string | undefined;
    /** Mailboxes that may be watched, in the sender-policy shape. */
    allowedMailboxes: MailboxPolicy;
    /** NCRONTAB schedule of the renewal timer. */
    renewalSchedule: string;
    /** Subscriptions expiring within this many milliseconds are renewed. */
    renewalWindowMs: number;
    /** How often a polled mailbox folder is read by delta. */
    pollIntervalMs: number;
    /** How often a pushed mailbox folder is also read by delta (reconciliation). */
    reconcileIntervalMs: number;
  };
  /** Reading, answering and filing received mail. */
  messages: {
    /** Mailboxes whose mail may be read and acted on, in the sender-policy shape. */
    allowedMailboxes: MailboxPolicy;
  };
  /** The outbox processor's pacing and give-up time. */
  outbox: {
    /** Messages per minute per mailbox. */
    messagesPerMinute: number;
    /** Recipients per sliding 24 h per mailbox. */
    recipientsPerDay: number;
    /** The tenant's external recipient budget per sliding 24 h, when on, with the domains that are not external. */
    tenantExternal: { perDay: number; domains: ReadonlySet<string> } | undefined;
    /** A mail not sent within this many milliseconds of acceptance fails. */
    maxAgeMs: number;
    /** BOUNCE_TRACKING=on: a sending mailbox's Inbox is watched for non-delivery reports. */
    bounceTracking: boolean;
  };
  /** Where mail events go besides the `mail-events` queue. */
  events: {
    /** The downstream webhook, when set; always with its signing secret. */
    webhook: { url: string; signingSecret: string } | undefined;
  };
}

/**
 * The renewal timer's schedule, read straight from the environment: the timer is registered while the worker loads,
 * before the appStart hook validates the whole configuration (which reports a malformed value by name).
 */
export function renewalScheduleSetting(env: NodeJS.ProcessEnv = process.env): string {
  return env.RENEWAL_SCHEDULE?.trim() || DEFAULTS.RENEWAL_SCHEDULE.value;
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

const wholeNumber = ({ min, max, unit }: WholeNumberRule) =>
  optional()
    .refine((v) => v === undefined || /^\d+$/.test(v), { message: `must be a whole number of ${unit}` })
    .transform((v) => (v === undefined ? undefined : Number(v)))
    .refine((v) => v === undefined || (v >= min && v <= max), { message: `must be between ${min} and ${max} ${unit}` });

const SENDER_ENTRY = /^(\*|[^\s@,*]+)@[a-z0-9.-]+\.[a-z]{2,}$/i;
const mailboxList = () =>
  z.string().refine((v) => v.split(',').every((entry) => SENDER_ENTRY.test(entry.trim())), {
    message: 'must be comma-separated addresses or *@domain patterns, e.g. alerts@contoso.com,*@billing.contoso.com',
  });
// Six NCRONTAB fields (seconds first), or a TimeSpan such as 01:00:00, as the Functions timer trigger accepts.
const NCRONTAB = /^(\S+\s+){5}\S+$|^\d{1,2}:\d{2}:\d{2}$/;
// App Service leaves a Key Vault reference it could not resolve in place, so the literal text reaches the app.
const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\(/i;

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
  CREDENTIAL_REFRESH_MINUTES: wholeNumber(DEFAULTS.CREDENTIAL_REFRESH_MINUTES),
  ALLOWED_SENDERS: present('is missing: name the mailboxes callers may send as').pipe(mailboxList()),
  WEBHOOK_BASE_URL: optional().pipe(
    httpsUrl('Graph calls only https notification URLs')
      .refine((v) => !URL.canParse(v) || ['', '/'].includes(new URL(v).pathname), {
        message: 'must be an origin without a path, e.g. https://func-mail.azurewebsites.net',
      })
      .optional(),
  ),
  ALLOWED_WATCH_MAILBOXES: optional().pipe(mailboxList().optional()),
  ALLOWED_READ_MAILBOXES: optional().pipe(mailboxList().optional()),
  RENEWAL_SCHEDULE: optional().refine((v) => v === undefined || NCRONTAB.test(v), {
    message: 'must be a six-field NCRONTAB expression such as 0 0 * * * * (or a TimeSpan such as 01:00:00)',
  }),
  RENEWAL_WINDOW_HOURS: wholeNumber(DEFAULTS.RENEWAL_WINDOW_HOURS),
  POLL_INTERVAL_SECONDS: wholeNumber(DEFAULTS.POLL_INTERVAL_SECONDS),
  RECONCILE_INTERVAL_MINUTES: wholeNumber(DEFAULTS.RECONCILE_INTERVAL_MINUTES),
  EVENTS_WEBHOOK_URL: optional().pipe(httpsUrl('events are signed, and only sent over https').optional()),
  EVENTS_SIGNING_SECRET: optional()
    .refine((v) => v === undefined || !KEY_VAULT_REFERENCE.test(v), {
      message:
        "is an unresolved Key Vault reference: give the app's identity Key Vault Secrets User on the vault, set the app's keyVaultReferenceIdentity to that identity, and check the secret URI",
    })
    .refine((v) => v === undefined || KEY_VAULT_REFERENCE.test(v) || isSigningSecret(v), {
      message: 'must be a Standard Webhooks secret: whsec_ followed by the base64 of 24 to 64 random bytes',
    }),
  MAX_SEND_REQUEST_MB: wholeNumber(DEFAULTS.MAX_SEND_REQUEST_MB),
  MAILBOX_MESSAGES_PER_MINUTE: wholeNumber(DEFAULTS.MAILBOX_MESSAGES_PER_MINUTE),
  MAILBOX_RECIPIENTS_PER_DAY: wholeNumber(DEFAULTS.MAILBOX_RECIPIENTS_PER_DAY),
  TENANT_EXTERNAL_RECIPIENTS_PER_DAY: optional()
    .refine((v) => v === undefined || v === 'off' || (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 100_000_000), {
      message: 'must be off or a whole number of recipients between 1 and 100000000',
    })
    .transform((v) => (v === undefined || v === 'off' ? undefined : Number(v))),
  TENANT_DOMAINS: optional().refine(
    (v) => v === undefined || v.split(',').every((domain) => DOMAIN.test(domain.trim())),
    { message: 'must be comma-separated domains, e.g. contoso.com,contoso.onmicrosoft.com' },
  ),
  OUTBOX_MAX_AGE_HOURS: wholeNumber(DEFAULTS.OUTBOX_MAX_AGE_HOURS),
  BOUNCE_TRACKING: optional().pipe(z.enum(['on', 'off'], { error: 'must be on or off' }).optional()),
  IDEMPOTENCY_TTL_HOURS: wholeNumber(DEFAULTS.IDEMPOTENCY_TTL_HOURS),
  GRAPH_MAX_WAIT_SECONDS: wholeNumber(DEFAULTS.GRAPH_MAX_WAIT_SECONDS),
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
  const blobUrl =
    env.AzureWebJobsStorage__blobServiceUri?.trim() || (accountName && `https://${accountName}.blob.core.windows.net`);
  if (!tableUrl || !queueUrl || !blobUrl) {
    problems.push(
      'AzureWebJobsStorage is missing: set a connection string, or AzureWebJobsStorage__accountName (or all of __tableServiceUri, __queueServiceUri and __blobServiceUri) for identity-based access',
    );
    return undefined;
  }
  for (const [name, url] of [
    ['AzureWebJobsStorage__tableServiceUri', tableUrl],
    ['AzureWebJobsStorage__queueServiceUri', queueUrl],
    ['AzureWebJobsStorage__blobServiceUri', blobUrl],
  ] as const) {
    if (!URL.canParse(url)) problems.push(`${name} must be a URL`);
  }
  const clientId = env.AzureWebJobsStorage__clientId?.trim() || managedIdentityClientId;
  return { kind: 'identity', tableUrl, queueUrl, blobUrl, managedIdentityClientId: clientId } as const;
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
  if (settings?.TENANT_EXTERNAL_RECIPIENTS_PER_DAY !== undefined && !settings.TENANT_DOMAINS) {
    problems.push(
      'TENANT_DOMAINS is missing: TENANT_EXTERNAL_RECIPIENTS_PER_DAY is set, and without the accepted domains every recipient would count as external',
    );
  }
  if (settings?.EVENTS_WEBHOOK_URL && !settings.EVENTS_SIGNING_SECRET) {
    problems.push('EVENTS_SIGNING_SECRET is missing: EVENTS_WEBHOOK_URL is set, and events are only sent signed');
  }
  if (problems.length > 0 || !settings || !storage) {
    throw new ConfigError(problems);
  }

  const cloudName: CloudName =
    settings.AZURE_CLOUD && isCloudName(settings.AZURE_CLOUD) ? settings.AZURE_CLOUD : DEFAULTS.AZURE_CLOUD.value;
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
    credentialRefreshMs: (settings.CREDENTIAL_REFRESH_MINUTES ?? DEFAULTS.CREDENTIAL_REFRESH_MINUTES.value) * 60_000,
    storage,
    allowedSenders: parseMailboxPolicy(settings.ALLOWED_SENDERS),
    maxSendRequestBytes: (settings.MAX_SEND_REQUEST_MB ?? DEFAULTS.MAX_SEND_REQUEST_MB.value) * 1024 * 1024,
    idempotencyTtlMs: (settings.IDEMPOTENCY_TTL_HOURS ?? DEFAULTS.IDEMPOTENCY_TTL_HOURS.value) * 3_600_000,
    graphMaxWaitSeconds: settings.GRAPH_MAX_WAIT_SECONDS ?? DEFAULTS.GRAPH_MAX_WAIT_SECONDS.value,
    graphPermissionCheck: settings.GRAPH_PERMISSION_CHECK ?? DEFAULTS.GRAPH_PERMISSION_CHECK.value,
    watch: {
      webhookBaseUrl: settings.WEBHOOK_BASE_URL && trimSlash(settings.WEBHOOK_BASE_URL),
      allowedMailboxes: parseMailboxPolicy(settings.ALLOWED_WATCH_MAILBOXES ?? ''),
      renewalSchedule: settings.RENEWAL_SCHEDULE ?? DEFAULTS.RENEWAL_SCHEDULE.value,
      renewalWindowMs: (settings.RENEWAL_WINDOW_HOURS ?? DEFAULTS.RENEWAL_WINDOW_HOURS.value) * 3_600_000,
      pollIntervalMs: (settings.POLL_INTERVAL_SECONDS ?? DEFAULTS.POLL_INTERVAL_SECONDS.value) * 1000,
      reconcileIntervalMs: (settings.RECONCILE_INTERVAL_MINUTES ?? DEFAULTS.RECONCILE_INTERVAL_MINUTES.value) * 60_000,
    },
    messages: {
      allowedMailboxes: parseMailboxPolicy(settings.ALLOWED_READ_MAILBOXES ?? ''),
    },
    outbox: {
      messagesPerMinute: settings.MAILBOX_MESSAGES_PER_MINUTE ?? DEFAULTS.MAILBOX_MESSAGES_PER_MINUTE.value,
      recipientsPerDay: settings.MAILBOX_RECIPIENTS_PER_DAY ?? DEFAULTS.MAILBOX_RECIPIENTS_PER_DAY.value,
      tenantExternal:
        settings.TENANT_EXTERNAL_RECIPIENTS_PER_DAY === undefined
          ? undefined
          : {
              perDay: settings.TENANT_EXTERNAL_RECIPIENTS_PER_DAY,
              domains: new Set((settings.TENANT_DOMAINS ?? '').split(',').map((d) => d.trim().toLowerCase())),
            },
      maxAgeMs: (settings.OUTBOX_MAX_AGE_HOURS ?? DEFAULTS.OUTBOX_MAX_AGE_HOURS.value) * 3_600_000,
      bounceTracking: (settings.BOUNCE_TRACKING ?? DEFAULTS.BOUNCE_TRACKING.value) === 'on',
    },
    events: {
      webhook:
        settings.EVENTS_WEBHOOK_URL && settings.EVENTS_SIGNING_SECRET
          ? { url: settings.EVENTS_WEBHOOK_URL, signingSecret: settings.EVENTS_SIGNING_SECRET }
          : undefined,
    },
  };
}

let cached: GatewayConfig | undefined;

/** The process's configuration, read from `process.env` on first use and kept. */
export function getConfig(): GatewayConfig {
  cached ??= loadConfig(process.env);
  return cached;
}

/**
 * What is wrong with the process's settings: `[]` when {@link getConfig} succeeds, else one line per bad setting
 * (each starting with its name, never quoting its value). Invalid settings are read again on each call: fixing one
 * in Azure restarts the app anyway, and the check is cheap.
 */
export function configurationProblems(): readonly string[] {
  try {
    getConfig();
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

/** The setting names a list of problems names (each problem starts with one), in order, each once. */
export function problemSettingNames(problems: readonly string[]): string[] {
  return [...new Set(problems.map((p) => p.split(' ')[0]))];
}

function isSigningSecret(value: string): boolean {
  const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!match) return false;
  const bytes = Buffer.from(match[1], 'base64').length;
  return bytes >= 24 && bytes <= 64;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
