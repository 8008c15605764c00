/**
 * The Microsoft clouds the gateway can run against, and the endpoints each one uses.
 * Figures from Microsoft's national-cloud deployment table; GCC (not High) uses `global`.
 */

/** Names accepted in the `AZURE_CLOUD` setting. */
export const CLOUD_NAMES = ['global', 'gcc-high', 'dod', 'china'] as const;

/** A cloud name accepted in the `AZURE_CLOUD` setting. */
export type CloudName = (typeof CLOUD_NAMES)[number];

/** The endpoints of one Microsoft cloud. */
export interface CloudEndpoints {
  /** Entra ID authority host, e.g. `https://login.microsoftonline.com`. */
  authorityHost: string;
  /** Microsoft Graph root, without version, e.g. `https://graph.microsoft.com`. */
  graphBaseUrl: string;
  /** Scope to request for app-only Graph tokens, e.g. `https://graph.microsoft.com/.default`. */
  graphScope: string;
  /** DNS suffix of Key Vaults in this cloud, e.g. `vault.azure.net`. */
  keyVaultDnsSuffix: string;
}

/** The endpoint table, keyed by cloud name. */
export const CLOUDS: Readonly<Record<CloudName, Readonly<CloudEndpoints>>> = {
  global: {
    authorityHost: 'https://login.microsoftonline.com',
    graphBaseUrl: 'https://graph.microsoft.com',
    graphScope: 'https://graph.microsoft.com/.default',
    keyVaultDnsSuffix: 'vault.azure.net',
  },
  'gcc-high': {
    authorityHost: 'https://login.microsoftonline.us',
    graphBaseUrl: 'https://graph.microsoft.us',
    graphScope: 'https://graph.microsoft.us/.default',
    keyVaultDnsSuffix: 'vault.usgovcloudapi.net',
  },
  dod: {
    authorityHost: 'https://login.microsoftonline.us',
    graphBaseUrl: 'https://dod-graph.microsoft.us',
    graphScope: 'https://dod-graph.microsoft.us/.default',
    keyVaultDnsSuffix: 'vault.usgovcloudapi.net',
  },
  china: {
    authorityHost: 'https://login.chinacloudapi.cn',
    graphBaseUrl: 'https://microsoftgraph.chinacloudapi.cn',
    graphScope: 'https://microsoftgraph.chinacloudapi.cn/.default',
    keyVaultDnsSuffix: 'vault.azure.cn',
  },
};

/** Returns true when `name` is one of {@link CLOUD_NAMES}. */
export function isCloudName(name: string): name is CloudName {
  return (CLOUD_NAMES as readonly string[]).includes(name);
}

/**
 * True when `authorityHost` is the authority host of one of the clouds in the table. MSAL knows these hosts;
 * any other host (a private Entra endpoint, the local emulator) must be used without instance discovery,
 * because discovery asks the public cloud about it.
 */
export function isKnownAuthorityHost(authorityHost: string): boolean {
  const origin = new URL(authorityHost).origin;
  return Object.values(CLOUDS).some((cloud) => new URL(cloud.authorityHost).origin === origin);
}
