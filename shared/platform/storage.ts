/**
 * Table, queue and blob container clients for the gateway's storage account, from the `AzureWebJobsStorage` setting family: a
 * connection string (Azurite, or keys where allowed) or identity-based URLs with the managed identity.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { ContainerClient } from '@azure/storage-blob';
import { azureIdentityCredential } from '../identity/azureIdentity';
import type { GatewayConfig } from './config';

/** Client options; `probe` makes one quick attempt (no retries) so a health check answers while storage is down. */
export interface StorageClientOptions {
  probe?: boolean;
}

/** Timeout of one probe request. */
const PROBE_TIMEOUT_MS = 5_000;

/** A client for table `name`. */
export function createTableClient(
  config: GatewayConfig,
  name: string,
  options: StorageClientOptions = {},
): TableClient {
  const storage = config.storage;
  const retryOptions = options.probe ? { retryOptions: { maxRetries: 0 } } : {};
  if (storage.kind === 'connectionString') {
    // Azurite speaks plain HTTP on loopback; production connection strings use https and ignore this.
    return TableClient.fromConnectionString(storage.connectionString, name, {
      allowInsecureConnection: true,
      ...retryOptions,
    });
  }
  return new TableClient(
    storage.tableUrl,
    name,
    azureIdentityCredential(storage.managedIdentityClientId),
    retryOptions,
  );
}

/** A client for queue `name`. */
export function createQueueClient(
  config: GatewayConfig,
  name: string,
  options: StorageClientOptions = {},
): QueueClient {
  const storage = config.storage;
  const pipeline = options.probe ? { retryOptions: { maxTries: 1, tryTimeoutInMs: PROBE_TIMEOUT_MS } } : {};
  if (storage.kind === 'connectionString') return new QueueClient(storage.connectionString, name, pipeline);
  return new QueueClient(
    `${storage.queueUrl.replace(/\/$/, '')}/${name}`,
    azureIdentityCredential(storage.managedIdentityClientId),
    pipeline,
  );
}

/** A client for blob container `name`. */
export function createBlobContainerClient(config: GatewayConfig, name: string): ContainerClient {
  const storage = config.storage;
  if (storage.kind === 'connectionString') return new ContainerClient(storage.connectionString, name);
  return new ContainerClient(
    `${storage.blobUrl.replace(/\/$/, '')}/${name}`,
    azureIdentityCredential(storage.managedIdentityClientId),
  );
}
