/**
 * Table and queue clients for the gateway's storage account, from the `AzureWebJobsStorage` setting family: a
 * connection string (Azurite, or keys where allowed) or identity-based URLs with the managed identity.
 */
import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { QueueClient } from '@azure/storage-queue';
import type { GatewayConfig } from './config';

function identityCredential(clientId: string | undefined): TokenCredential {
  return clientId ? new ManagedIdentityCredential({ clientId }) : new DefaultAzureCredential();
}

/** A client for table `name`. */
export function createTableClient(config: GatewayConfig, name: string): TableClient {
  const storage = config.storage;
  if (storage.kind === 'connectionString') {
    // Azurite speaks plain HTTP on loopback; production connection strings use https and ignore this.
    return TableClient.fromConnectionString(storage.connectionString, name, { allowInsecureConnection: true });
  }
  return new TableClient(storage.tableUrl, name, identityCredential(storage.managedIdentityClientId));
}

/** A client for queue `name`. */
export function createQueueClient(config: GatewayConfig, name: string): QueueClient {
  const storage = config.storage;
  if (storage.kind === 'connectionString') return new QueueClient(storage.connectionString, name);
  return new QueueClient(
    `${storage.queueUrl.replace(/\/$/, '')}/${name}`,
    identityCredential(storage.managedIdentityClientId),
  );
}
