/**
 * The identity the Function App uses for Azure resources (Key Vault, storage): its user-assigned managed identity
 * by client id in Azure, `DefaultAzureCredential` for a developer. One credential per client id, so every client of
 * the process shares its token cache.
 */
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';

const credentials = new Map<string, TokenCredential>();

/** The credential for `managedIdentityClientId`, or `DefaultAzureCredential` when it is undefined. */
export function azureIdentityCredential(managedIdentityClientId?: string): TokenCredential {
  const key = managedIdentityClientId ?? '';
  let credential = credentials.get(key);
  if (!credential) {
    credential = managedIdentityClientId
      ? new ManagedIdentityCredential({ clientId: managedIdentityClientId })
      : new DefaultAzureCredential();
    credentials.set(key, credential);
  }
  return credential;
}
