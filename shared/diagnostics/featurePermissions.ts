/**
 * Least privilege per feature: which features this deployment has on (from its settings), the Microsoft Graph
 * application permission each needs, whether the token carries it, and what to grant when it does not. Permissions a
 * feature that is off would need are not asked for.
 */
import { FEATURE_PERMISSIONS, type FeaturePermission } from '../identity/graphPermissions';
import type { GatewayConfig } from '../platform/config';
import type { MailboxPolicy } from '../platform/mailboxPolicy';
import type { DiagnosticCheck } from './diagnostics';

/** One feature's line of the report. */
export interface FeatureReport {
  feature: FeaturePermission['feature'];
  description: string;
  /** On in this deployment's settings (content in events: available to watched mailboxes). */
  enabled: boolean;
  /** `ok`: the token carries a permission that serves it; `missing`: it does not; `off`: the feature is off. */
  status: 'ok' | 'missing' | 'off';
  /** The least-privileged permission that serves it. */
  permission: string;
  /** The permissions in the token that serve it. */
  granted: string[];
  /** What to grant, when missing. */
  grant?: string;
}

function configured(policy: MailboxPolicy): boolean {
  return policy.addresses.size + policy.domains.size > 0;
}

/** Which features the settings turn on; content in events is optional per mailbox, so its lack never fails. */
function enabledFeatures(config: GatewayConfig): Record<FeaturePermission['feature'], boolean> {
  const watching = configured(config.watch.allowedMailboxes);
  const reading = configured(config.messages.allowedMailboxes);
  return {
    send: true,
    largeAttachments: true,
    watch: watching,
    read: reading,
    contentEvents: watching,
    actions: reading,
    bounceTracking: config.outbox.bounceTracking,
  };
}

/** The features' report from the token's `roles`. */
export function featureReports(config: GatewayConfig, roles: readonly string[]): FeatureReport[] {
  const enabled = enabledFeatures(config);
  return FEATURE_PERMISSIONS.map((f) => {
    const granted = f.accepted.filter((p) => roles.includes(p));
    const status = !enabled[f.feature] ? 'off' : granted.length > 0 ? 'ok' : 'missing';
    return {
      feature: f.feature,
      description: f.description,
      enabled: enabled[f.feature],
      status,
      permission: f.permission,
      granted,
      ...(status === 'missing' ? { grant: f.permission } : {}),
    };
  });
}

/** The `featurePermissions` check: failed when a feature that is on lacks its permission (a warning when Exchange decides). */
export function featurePermissionsCheck(config: GatewayConfig, roles: readonly string[] | undefined): DiagnosticCheck {
  if (roles === undefined) return { name: 'featurePermissions', status: 'skipped', detail: 'No token to inspect.' };
  const features = featureReports(config, roles);
  // Content in events is asked for per mailbox (and refused without Mail.Read): its lack alone fails nothing.
  const blocking = features.filter((f) => f.status === 'missing' && f.feature !== 'contentEvents');
  const grants = [...new Set(blocking.map((f) => f.grant))];
  const lines = features
    .filter((f) => f.enabled)
    .map((f) => `${f.feature}: ${f.status === 'ok' ? `ok (${f.granted.join(', ')})` : `grant ${f.grant}`}`);
  const exchangeDecides = config.graphPermissionCheck === 'off';
  return {
    name: 'featurePermissions',
    status: blocking.length === 0 ? 'ok' : exchangeDecides ? 'warning' : 'failed',
    detail:
      blocking.length === 0
        ? `Every feature that is on has its permission: ${lines.join('; ')}.`
        : `admin consent not granted for ${grants.join(', ')}, needed by ${blocking.map((f) => f.feature).join(', ')}: add the Microsoft Graph application permission${grants.length > 1 ? 's' : ''} in Entra ID (App registrations > API permissions) and grant admin consent${exchangeDecides ? ', unless Exchange RBAC for Applications grants them (Set-MailboxScope.ps1)' : ''}, or turn the feature off. ${lines.join('; ')}.`,
    features,
  };
}
