/**
 * Table and queue clients for the gateway's storage account, from the `AzureWebJobsStorage` setting family: a
 * connection string (Azurite, or keys where allowed) or identity-based URLs with the managed identity.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { azureIdentityCredential } from '../identity/azureIdentity';
import type { GatewayConfig } from './config';

/** A client for table `name`. */
export function createTableClient(config: GatewayConfig, name: string): TableClient {
  const storage = config.storage;
  if (storage.kind === 'connectionString') {
    // Azurite speaks plain HTTP on loopback; production connection strings use https and ignore this.
    return TableClient.fromConnectionString(storage.connectionString, name, { allowInsecureConnection: true });
  }
  return new TableClient(storage.tableUrl, name, azureIdentityCredential(storage.managedIdentityClientId));
}

/** A client for queue `name`. */
export function createQueueClient(config: GatewayConfig, name: string): QueueClient {
  const storage = config.storage;
  if (storage.kind === 'connectionString') return new QueueClient(storage.connectionString, name);
  return new QueueClient(
    `${storage.queueUrl.replace(/\/$/, '')}/${name}`,
    azureIdentityCredential(storage.managedIdentityClientId),
  );
}
