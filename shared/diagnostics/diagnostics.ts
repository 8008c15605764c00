/**
 * "Is everything wired right?": checks configuration, the Key Vault read, the credential's expiry, the token Entra
 * issues and the Graph permissions the gateway needs, and says what to fix for each failure. Reports claims and
 * dates only, never a token, secret or certificate.
 */
import type { AppCredential } from '../identity/appCredential';
import { REQUIRED_GRAPH_PERMISSIONS, WATCH_PERMISSION, WATCH_PERMISSIONS_ACCEPTED } from '../identity/graphPermissions';
import type { GatewayConfig } from '../platform/config';
import { missingRoles } from '../identity/tokenClaims';
import { featurePermissionsCheck } from './featurePermissions';
import { probeStorage, type StorageServiceCheck } from './storageProbe';

/** Days before expiry from which the credential check warns. */
export const EXPIRY_WARNING_DAYS = 30;

/** One check's outcome. */
export interface DiagnosticCheck {
  name:
    | 'keyVault'
    | 'credentialExpiry'
    | 'token'
    | 'permissions'
    | 'watchPermission'
    | 'featurePermissions'
    | 'tableStorage'
    | 'queueStorage';
  status: 'ok' | 'warning' | 'failed' | 'skipped';
  detail: string;
  [fact: string]: unknown;
}

/** The whole report. */
export interface DiagnosticsReport {
  status: 'ok' | 'warning' | 'failed';
  cloud: string;
  endpoints: {
    authorityHost: string;
    graphBaseUrl: string;
    graphScope: string;
    keyVaultDnsSuffix: string;
    keyVaultUrl: string;
  };
  tenantId: string;
  clientId: string;
  readsKeyVaultAs: string;
  checks: DiagnosticCheck[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs every check in order; a failed step skips the ones that depend on it. */
export async function runDiagnostics(
  config: GatewayConfig,
  credential: AppCredential,
  now = Date.now(),
  storage: () => Promise<StorageServiceCheck[]> = () => probeStorage(config),
): Promise<DiagnosticsReport> {
  const checks: DiagnosticCheck[] = [];
  const storageChecks = storage();
  const firstStatus = await credential.status().catch((err: unknown) => err as Error);
  const explanation =
    firstStatus instanceof Error
      ? undefined
      : await credential.explainGraphToken().catch((err: unknown) => err as Error);
  // Getting the token settles which Key Vault version Entra accepts; report that one.
  const status = firstStatus instanceof Error ? firstStatus : await credential.status().catch(() => firstStatus);
  if (status instanceof Error) {
    checks.push({ name: 'keyVault', status: 'failed', detail: message(status) });
    checks.push({ name: 'credentialExpiry', status: 'skipped', detail: 'Key Vault could not be read.' });
  } else {
    const rejected = status.rejected;
    checks.push({
      name: 'keyVault',
      status: rejected ? 'warning' : 'ok',
      detail: rejected
        ? `Entra ID rejects the newest version ${rejected.version} of ${status.kind} '${config.keyVault.credentialName}' (${rejected.reason}); the gateway keeps using version ${status.version}. Fix: ${rejected.fix}.`
        : `Read ${status.kind} '${config.keyVault.credentialName}' version ${status.version}.`,
      kind: status.kind,
      version: status.version,
      ...(status.thumbprint ? { thumbprint: status.thumbprint } : {}),
      ...(rejected ? { rejectedVersion: rejected.version } : {}),
    });
    const days = status.expiresOn ? Math.floor((status.expiresOn.getTime() - now) / 86_400_000) : undefined;
    checks.push(
      days === undefined
        ? {
            name: 'credentialExpiry',
            status: 'warning',
            detail: 'Key Vault holds no expiry date for the credential; set one so rotation is not forgotten.',
          }
        : {
            name: 'credentialExpiry',
            status: days < 0 ? 'failed' : days < EXPIRY_WARNING_DAYS ? 'warning' : 'ok',
            detail:
              days < 0
                ? `The ${status.kind} expired on ${status.expiresOn!.toISOString()}: add a new one to the app registration and Key Vault.`
                : `The ${status.kind} expires on ${status.expiresOn!.toISOString()} (${days} days)${days < EXPIRY_WARNING_DAYS ? ': rotate it now (add the new one to the app registration, then to Key Vault)' : ''}.`,
            expiresOn: status.expiresOn!.toISOString(),
            daysLeft: days,
          },
    );
  }

  if (explanation === undefined) {
    checks.push({ name: 'token', status: 'skipped', detail: 'No credential to request a token with.' });
  } else if (explanation instanceof Error) {
    checks.push({
      name: 'token',
      status: 'failed',
      detail: `Entra ID refused a token for ${config.endpoints.graphScope}: ${message(explanation)}`,
    });
  } else {
    checks.push({
      name: 'token',
      status: explanation.tenantId === config.tenantId || !/^[0-9a-f-]{36}$/i.test(config.tenantId) ? 'ok' : 'failed',
      detail: `Token for ${explanation.audience ?? '?'} issued to app ${explanation.appId ?? '?'} in tenant ${explanation.tenantId ?? '?'} (${explanation.credentialType ?? 'unknown'} credential).`,
      roles: explanation.roles,
      tenantId: explanation.tenantId,
      appId: explanation.appId,
      identityType: explanation.identityType,
      expiresOn: explanation.expiresOn?.toISOString(),
    });
  }

  if (explanation === undefined || explanation instanceof Error) {
    checks.push({ name: 'permissions', status: 'skipped', detail: 'No token to inspect.' });
  } else {
    const missing = missingRoles(explanation.roles, REQUIRED_GRAPH_PERMISSIONS);
    const exchangeDecides = config.graphPermissionCheck === 'off';
    checks.push(
      missing.length > 0 && exchangeDecides
        ? {
            name: 'permissions',
            status: 'warning',
            detail: `Not in the token: ${missing.join(', ')}. GRAPH_PERMISSION_CHECK=off: fine if Exchange RBAC for Applications grants them (check with Test-ServicePrincipalAuthorization); otherwise grant admin consent.`,
            missing,
          }
        : missing.length === 0
          ? { name: 'permissions', status: 'ok', detail: `Granted: ${REQUIRED_GRAPH_PERMISSIONS.join(', ')}.`, missing }
          : {
              name: 'permissions',
              status: 'failed',
              detail: `admin consent not granted for ${missing.join(', ')}: add the Microsoft Graph application permissions in Entra ID (App registrations > API permissions) and select "Grant admin consent".`,
              missing,
            },
    );
  }

  checks.push(watchCheck(config, explanation instanceof Error ? undefined : explanation?.roles));
  checks.push(featurePermissionsCheck(config, explanation instanceof Error ? undefined : explanation?.roles));

  for (const probe of await storageChecks) {
    checks.push({
      name: probe.service === 'table' ? 'tableStorage' : 'queueStorage',
      status: probe.status,
      detail: probe.detail,
      resource: probe.resource,
    });
  }

  const worst = checks.some((c) => c.status === 'failed')
    ? 'failed'
    : checks.some((c) => c.status === 'warning')
      ? 'warning'
      : 'ok';
  return {
    status: worst,
    cloud: config.cloudName,
    endpoints: { ...config.endpoints, keyVaultUrl: config.keyVault.url },
    tenantId: config.tenantId,
    clientId: config.clientId,
    readsKeyVaultAs: config.managedIdentityClientId
      ? `user-assigned managed identity ${config.managedIdentityClientId}`
      : 'DefaultAzureCredential',
    checks,
  };
}

/**
 * Can the gateway watch mailboxes? Names the least-privileged permission Graph documents for message subscriptions,
 * message metadata and delta (Mail.ReadBasic.All), and the webhook origin Graph must reach.
 */
function watchCheck(config: GatewayConfig, roles: readonly string[] | undefined): DiagnosticCheck {
  const policy = config.watch.allowedMailboxes;
  if (policy.addresses.size + policy.domains.size === 0) {
    return {
      name: 'watchPermission',
      status: 'skipped',
      detail: 'ALLOWED_WATCH_MAILBOXES is empty: no mailbox may be watched.',
    };
  }
  if (roles === undefined) return { name: 'watchPermission', status: 'skipped', detail: 'No token to inspect.' };
  const granted = WATCH_PERMISSIONS_ACCEPTED.filter((r) => roles.includes(r));
  if (granted.length > 0) {
    return {
      name: 'watchPermission',
      status: 'ok',
      detail: `Watching uses ${granted.join(', ')}${granted.includes(WATCH_PERMISSION) ? '' : ` (${WATCH_PERMISSION} would be enough: it is the least privileged)`}; ${
        config.watch.webhookBaseUrl
          ? `Graph calls ${config.watch.webhookBaseUrl}/api/graph/notifications.`
          : 'WEBHOOK_BASE_URL is not set: mailboxes are watched by polling (delivery push is refused).'
      }`,
      permission: WATCH_PERMISSION,
    };
  }
  return {
    name: 'watchPermission',
    status: config.graphPermissionCheck === 'off' ? 'warning' : 'failed',
    detail: `admin consent not granted for ${WATCH_PERMISSION}, the least-privileged application permission for message subscriptions, message metadata and delta (subscriptions need a read scope: Mail.ReadWrite alone is not one): add it in Entra ID (App registrations > API permissions) and grant admin consent${config.graphPermissionCheck === 'off' ? ', unless Exchange RBAC for Applications grants Application Mail.ReadBasic' : ''}.`,
    permission: WATCH_PERMISSION,
  };
}
