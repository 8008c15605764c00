/**
 * Settings that wire the gateway to the sandbox's local cloud and storage. Set in the environment they could not be
 * honoured (the emulators decide them), so the sandbox refuses to start, naming them, rather than ignore them.
 * Every other gateway setting in the environment (ALLOWED_SENDERS, ALLOWED_WATCH_MAILBOXES, MAX_SEND_REQUEST_MB,
 * ...) is passed to the functions as set.
 */
export const SANDBOX_WIRED_SETTINGS = [
  'AZURE_CLOUD',
  'ENTRA_TENANT_ID',
  'ENTRA_CLIENT_ID',
  'ENTRA_AUTHORITY_HOST',
  'GRAPH_BASE_URL',
  'KEY_VAULT_URL',
  'APP_CREDENTIAL_NAME',
  'MANAGED_IDENTITY_CLIENT_ID',
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'AzureWebJobsStorage',
  'WEBHOOK_BASE_URL',
  'EVENTS_WEBHOOK_URL',
  'EVENTS_SIGNING_SECRET',
] as const;

/** The wired settings `env` sets (non-blank), including any `AzureWebJobsStorage__*` property. */
export function wiredSettingsIn(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env)
    .filter((name) => (SANDBOX_WIRED_SETTINGS as readonly string[]).includes(name.split('__')[0]))
    .filter((name) => (env[name] ?? '').trim() !== '')
    .sort();
}
