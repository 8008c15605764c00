/**
 * What the watch, poll and reconciliation benchmarks share: the local functions host in the benchmark's own process
 * (the run's settings in `process.env`), with its key, and percentile figures.
 */
import { appRoot } from '../../shared/platform/packageInfo';
import { freePort } from '../emulators/azurite';
import { issueServerCertificate } from '../emulators/testCa';
import { LocalFunctionsHost } from '../sandbox/host';
import type { BenchContext } from './benchContext';

/** The function key of the benchmarks' hosts. */
export const BENCH_FUNCTION_KEY = 'bench-function-key';

/** Latency figures in milliseconds. */
export interface Percentiles {
  p50: number;
  p99: number;
  samples: number;
}

/** p50 and p99 (nearest rank below) of `values`. */
export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { p50: at(50), p99: at(99), samples: sorted.length };
}

/**
 * Starts the local functions host on a free port, serving HTTPS on `httpsPort` (what WEBHOOK_BASE_URL names), its
 * timers on their schedules or not, and printing its errors (and its warnings when `warnings`, or everything with
 * BENCH_DEBUG set).
 */
export async function startBenchHost(
  ctx: BenchContext,
  options: { httpsPort: number; timers: boolean; warnings: boolean },
): Promise<LocalFunctionsHost> {
  const shown = new Set(['error', 'critical', ...(options.warnings ? ['warning'] : [])]);
  return LocalFunctionsHost.start({
    projectRoot: appRoot(),
    port: await freePort(),
    https: { port: options.httpsPort, ...issueServerCertificate(ctx.cloud.ca) },
    functionKey: BENCH_FUNCTION_KEY,
    masterKey: 'bench-master-key',
    enableTimers: options.timers,
    appSettings: { ...process.env },
    logger: (level, message) => {
      if (shown.has(level) || process.env.BENCH_DEBUG) console.error(`  host: ${message}`);
    },
    minQueuePollIntervalMs: 20,
    maxQueuePollIntervalMs: 200,
  });
}
