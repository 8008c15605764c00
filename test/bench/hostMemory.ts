/**
 * The functions host's memory, measured in its own process: it runs as a child process with the memory probe
 * preloaded (`hostMemoryProbe.ts`), and its resident memory is read from `/proc/<pid>/status`: `VmRSS` before and
 * after a phase, and the kernel's own peak `VmHWM` (reset through `/proc/<pid>/clear_refs` before each phase, so
 * nothing between samples is missed), with 10 ms samples of `VmRSS` as a cross-check. Before and after each phase
 * the host collects garbage on request, so that the figures compare memory the process still holds rather than when
 * V8 last collected.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appRoot } from '../../shared/platform/packageInfo';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { PROBE_PID_PREFIX, PROBE_SETTLED_PREFIX } from './hostMemoryProtocol';

const SAMPLE_EVERY_MS = 10;

/** One measured phase. */
export interface MemorySample {
  /** HTTP status of the phase's request (or of the last status read). */
  status: number;
  seconds: number;
  /** Resident bytes of the host, settled, before the phase. */
  beforeBytes: number;
  /** Highest resident bytes of the host during the phase. */
  peakBytes: number;
  /** Resident bytes of the host, settled, after the phase. */
  afterBytes: number;
  /** CPU time (user + system) the host spent during the phase, ms (clock ticks, usually 10 ms). */
  cpuMs: number;
}

const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system) of process `pid` so far, ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond) * 1000;
}

/** `VmRSS` and `VmHWM` of `pid` in bytes. */
export function residentMemory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]) * 1024;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** Resets the kernel's peak RSS of `pid` to its current RSS; false where the kernel does not allow it. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Asks the host to collect garbage and waits until it says memory settled (the probe counts rounds from 1). */
export async function settle(host: FunctionsHostProcess, pid: number, round: number): Promise<void> {
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  while (!host.output().includes(`${PROBE_SETTLED_PREFIX}${round}\n`)) {
    if (Date.now() > deadline) throw new Error('the host did not report settled memory');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A functions host with the memory probe, and a meter of its phases. */
export interface ProbedHost {
  host: FunctionsHostProcess;
  pid: number;
  /** Runs `phase` between two settled points of the host and measures its memory. */
  measure: <T>(phase: () => Promise<{ status: number; value: T }>) => Promise<[MemorySample, T]>;
  /** How peaks were measured: the kernel's VmHWM after a reset, or only the 10 ms samples. */
  peakSource: () => 'VmHWM' | 'samples';
}

/**
 * Starts a functions host (settings as its environment) with the memory probe preloaded; `nodeArgs` go to Node before
 * the script (e.g. `--cpu-prof`).
 */
export async function startProbedHost(
  settings: Record<string, string>,
  options: { nodeArgs?: string[] } = {},
): Promise<ProbedHost> {
  const probe = join(appRoot(), 'dist', 'test', 'bench', 'hostMemoryProbe.js');
  const host = await startFunctionsHost(
    {
      ...settings,
      NODE_OPTIONS: `--expose-gc --require ${JSON.stringify(probe)}`,
      SANDBOX_HOST_LOG_LEVEL: 'information',
    },
    options,
  );
  const pidLine = host
    .output()
    .split('\n')
    .find((line) => line.startsWith(PROBE_PID_PREFIX));
  if (!pidLine) {
    await host.stop();
    throw new Error(`the host did not load the memory probe:\n${host.output()}`);
  }
  const pid = Number(pidLine.slice(PROBE_PID_PREFIX.length));
  let round = 0;
  let source: 'VmHWM' | 'samples' = 'VmHWM';
  const measure = async <T>(phase: () => Promise<{ status: number; value: T }>): Promise<[MemorySample, T]> => {
    await settle(host, pid, ++round);
    const beforeBytes = residentMemory(pid).rss;
    if (!resetPeak(pid)) source = 'samples';
    let sampled = beforeBytes;
    const sampler = setInterval(() => (sampled = Math.max(sampled, residentMemory(pid).rss)), SAMPLE_EVERY_MS);
    const cpuBefore = cpuMs(pid);
    const started = process.hrtime.bigint();
    const { status, value } = await phase().finally(() => clearInterval(sampler));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuSpent = cpuMs(pid) - cpuBefore;
    const now = residentMemory(pid);
    const peakBytes = Math.max(sampled, now.rss, source === 'VmHWM' ? now.hwm : 0);
    await settle(host, pid, ++round);
    return [{ status, seconds, beforeBytes, peakBytes, afterBytes: residentMemory(pid).rss, cpuMs: cpuSpent }, value];
  };
  return { host, pid, measure, peakSource: () => source };
}
