/**
 * Table, queue and blob container clients for the gateway's storage account, from the `AzureWebJobsStorage` setting family: a
 * connection string (Azurite, or keys where allowed) or identity-based URLs with the managed identity. Every client
 * bounds each call's time (storageDeadline.ts), so a storage account that stops answering makes a request answer
 * 503 instead of hanging, and every client of the process shares one bounded keep-alive pool (connectionPools.ts).
 */
import { TableClient } from '@azure/data-tables';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import {
  newPipeline as newQueuePipeline,
  QueueClient,
  type RequestPolicyFactory,
  type StoragePipelineOptions,
  type WebResource,
} from '@azure/storage-queue';
import { ContainerClient, newPipeline as newBlobPipeline } from '@azure/storage-blob';
import { azureIdentityCredential } from '../azureIdentity';
import type { GatewayConfig } from '../config';
import { storageAgent } from '../http/connectionPools';
import { storageDeadlineFactory, storageDeadlinePolicy } from './storageDeadline';

/** Client options; `probe` makes one quick attempt (no retries) so a health check answers while storage is down. */
export interface StorageClientOptions {
  probe?: boolean;
}

/** Timeout of one probe request. */
const PROBE_TIMEOUT_MS = 5_000;

/** Sends a table request over the process's storage pool (the SDK's HTTP client uses a request's own agent). */
const sharedAgentPolicy: PipelinePolicy = {
  name: 'sharedStorageAgent',
  sendRequest: (request, next) => {
    request.agent ??= storageAgent(request.url);
    return next(request);
  },
};

/** The same for the queue and blob SDKs' request policies (they pass a request's `agent` to the HTTP client). */
const sharedAgentFactory: RequestPolicyFactory = {
  create: (nextPolicy) => ({
    sendRequest: (webResource: WebResource) => {
      webResource.agent ??= storageAgent(webResource.url);
      return nextPolicy.sendRequest(webResource);
    },
  }),
};

/** A client for table `name`. */
export function createTableClient(
  config: GatewayConfig,
  name: string,
  options: StorageClientOptions = {},
): TableClient {
  const storage = config.storage;
  const clientOptions = {
    ...(options.probe ? { retryOptions: { maxRetries: 0 } } : {}),
    additionalPolicies: [
      { policy: storageDeadlinePolicy({ service: 'table', resource: name }), position: 'perCall' as const },
      { policy: sharedAgentPolicy, position: 'perCall' as const },
    ],
  };
  if (storage.kind === 'connectionString') {
    // Azurite speaks plain HTTP on loopback; production connection strings use https and ignore this.
    return TableClient.fromConnectionString(storage.connectionString, name, {
      allowInsecureConnection: true,
      ...clientOptions,
    });
  }
  return new TableClient(
    storage.tableUrl,
    name,
    azureIdentityCredential(storage.managedIdentityClientId),
    clientOptions,
  );
}

/** A queue client built only to read what the SDK parsed from a connection string (its `credential` is protected). */
class ParsedQueueConnection extends QueueClient {
  parsed() {
    return { url: this.url, credential: this.credential };
  }
}

/** A client for queue `name`. */
export function createQueueClient(
  config: GatewayConfig,
  name: string,
  options: StorageClientOptions = {},
): QueueClient {
  const storage = config.storage;
  const pipelineOptions: StoragePipelineOptions = options.probe
    ? { retryOptions: { maxTries: 1, tryTimeoutInMs: PROBE_TIMEOUT_MS } }
    : {};
  // The connection string is parsed by the SDK itself (a throwaway client gives its URL and key).
  const { url, credential } =
    storage.kind === 'connectionString'
      ? new ParsedQueueConnection(storage.connectionString, name).parsed()
      : {
          url: `${storage.queueUrl.replace(/\/$/, '')}/${name}`,
          credential: azureIdentityCredential(storage.managedIdentityClientId),
        };
  const pipeline = newQueuePipeline(credential, pipelineOptions);
  pipeline.factories.push(storageDeadlineFactory({ service: 'queue', resource: name }), sharedAgentFactory);
  return new QueueClient(url, pipeline);
}

/** A client for blob container `name`. */
export function createBlobContainerClient(config: GatewayConfig, name: string): ContainerClient {
  const storage = config.storage;
  const { url, credential } =
    storage.kind === 'connectionString'
      ? new ContainerClient(storage.connectionString, name)
      : {
          url: `${storage.blobUrl.replace(/\/$/, '')}/${name}`,
          credential: azureIdentityCredential(storage.managedIdentityClientId),
        };
  const pipeline = newBlobPipeline(credential);
  pipeline.factories.push(storageDeadlineFactory({ service: 'blob', resource: name }), sharedAgentFactory);
  return new ContainerClient(url, pipeline);
}
