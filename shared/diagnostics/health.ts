/**
 * The cheap liveness answer behind `GET /api/health`: no Graph, Key Vault or storage call, only whether the
 * configuration is valid (naming bad settings, never their values).
 */
import type { HttpResponseInit } from '@azure/functions';
import { ConfigError, getConfig } from '../platform/config';
import { APP_VERSION } from '../platform/packageInfo';
import { problem, problemResponse } from '../platform/problem';

const STARTED = Date.now();

/** Answers 200 with status, version and uptime, or 503 with a problem document listing invalid settings. */
export function healthResponse(): HttpResponseInit {
  try {
    const config = getConfig();
    return {
      status: 200,
      headers: { 'cache-control': 'no-store' },
      jsonBody: {
        status: 'ok',
        version: APP_VERSION,
        cloud: config.cloudName,
        uptimeSeconds: Math.round((Date.now() - STARTED) / 1000),
      },
    };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return problemResponse(
      problem(503, 'configuration-invalid', 'The gateway is not configured', err.problems.join('; '), {
        settings: err.problems,
      }),
    );
  }
}
