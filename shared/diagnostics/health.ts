/**
 * The cheap liveness answer behind `GET /api/health`: whether the configuration is valid (naming bad settings,
 * never their values) and whether table and queue storage answer (probed at most every few seconds). No Graph or
 * Key Vault call.
 */
import type { HttpResponseInit } from '@azure/functions';
import type { GatewayConfig } from '../platform/config';
import { configurationProblem } from '../platform/configGate';
import { APP_VERSION } from '../platform/packageInfo';
import { problem, problemResponse } from '../platform/problems/problem';
import { CachedStorageProbe, probeStorage } from './storageProbe';

const STARTED = Date.now();

/** How long (ms) a storage probe result is reused: health may be polled every second by a load balancer. */
export const HEALTH_STORAGE_CACHE_MS = 5_000;

let storageProbe: CachedStorageProbe | undefined;

/**
 * Answers 200 with status, version, uptime and storage state, or 503 with a problem document listing invalid
 * settings or the storage service that fails. `configure` is called only once the settings are valid.
 */
export async function healthResponse(configure: () => GatewayConfig): Promise<HttpResponseInit> {
  const invalid = configurationProblem();
  if (invalid) return problemResponse(invalid);
  const config = configure();
  const probeConfig = config;
  storageProbe ??= new CachedStorageProbe(() => probeStorage(probeConfig), HEALTH_STORAGE_CACHE_MS);
  const storage = await storageProbe.check();
  const failed = storage.filter((s) => s.status === 'failed');
  const states = Object.fromEntries(storage.map((s) => [s.service, s.status]));
  if (failed.length > 0) {
    return problemResponse(
      problem(
        503,
        'storage-unavailable',
        'The gateway cannot use its storage account',
        failed.map((s) => s.detail).join(' '),
        { storage: states },
      ),
      { 'retry-after': String(Math.ceil(HEALTH_STORAGE_CACHE_MS / 1000)) },
    );
  }
  return {
    status: 200,
    headers: { 'cache-control': 'no-store' },
    jsonBody: {
      status: 'ok',
      version: APP_VERSION,
      cloud: config.cloudName,
      uptimeSeconds: Math.round((Date.now() - STARTED) / 1000),
      storage: states,
    },
  };
}
