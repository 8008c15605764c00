/**
 * The HTTP answer of `GET /api/diagnostics`: the report as JSON, 200 when nothing failed, 503 otherwise (with
 * `Retry-After` when storage failed: that is an outage to wait out, not a setting to fix).
 */
import type { HttpResponseInit } from '@azure/functions';
import type { AppCredential } from '../identity/appCredential';
import type { GatewayConfig } from '../platform/config';
import { runDiagnostics } from './diagnostics';
import { STORAGE_RETRY_AFTER_SECONDS } from '../platform/storage/storageErrors';

/** Runs the diagnostics with the process's configuration and token helper. */
export async function diagnosticsResponse(config: GatewayConfig, credential: AppCredential): Promise<HttpResponseInit> {
  const report = await runDiagnostics(config, credential);
  const storageFailed = report.checks.some((c) => c.name.endsWith('Storage') && c.status === 'failed');
  return {
    status: report.status === 'failed' ? 503 : 200,
    headers: {
      'cache-control': 'no-store',
      ...(storageFailed ? { 'retry-after': String(STORAGE_RETRY_AFTER_SECONDS) } : {}),
    },
    jsonBody: report,
  };
}
