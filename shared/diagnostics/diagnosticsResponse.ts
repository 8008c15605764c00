/** The HTTP answer of `GET /api/diagnostics`: the report as JSON, 200 when nothing failed, 503 otherwise. */
import type { HttpResponseInit } from '@azure/functions';
import { getConfig } from '../platform/config';
import { runDiagnostics } from './diagnostics';
import { getAppCredential } from '../platform/runtime';

/** Runs the diagnostics with the process's configuration and token helper. */
export async function diagnosticsResponse(): Promise<HttpResponseInit> {
  const report = await runDiagnostics(getConfig(), getAppCredential());
  return { status: report.status === 'failed' ? 503 : 200, headers: { 'cache-control': 'no-store' }, jsonBody: report };
}
