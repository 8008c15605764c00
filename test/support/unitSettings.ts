/**
 * The app settings every gateway configuration needs (tenant, app, Key Vault, credential, a sender), for unit tests
 * that build a `GatewayConfig` with `loadConfig` and add only what they are about (storage, permission check, ...).
 */
export const UNIT_SETTINGS = {
  ENTRA_TENANT_ID: '11111111-1111-1111-1111-111111111111',
  ENTRA_CLIENT_ID: '22222222-2222-2222-2222-222222222222',
  KEY_VAULT_URL: 'https://kv-mail.vault.azure.net',
  APP_CREDENTIAL_NAME: 'mail-gateway',
  ALLOWED_SENDERS: 'alerts@contoso.com',
} as const;
