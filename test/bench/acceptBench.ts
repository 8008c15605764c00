/**
 * The accept alone, as issue 18 asks: what `POST /api/mail/send` costs until its 202, in CPU summed over every process
 * that does the work and in latency, at 256 concurrent callers on 4 functions host processes (the package that ships)
 * sharing one Azurite. Every mail carries a `sendAt` an hour ahead, so its queue message stays hidden and no
 * processing runs in the measured window: what is measured is the accept (read, validate, permission check, one
 * record insert and one queue message).
 *
 * Phases, each `BENCH_ACCEPT_MAILS` mails (default 3,000) posted round robin to the hosts, repeated
 * `BENCH_ACCEPT_ROUNDS` times (default 2) in this order:
 * - baseline: the same storage work straight from this process with the same SDKs, through the gateway's own client
 *   factories (so the same shared connection pool): one table insert of an entity copied from one the gateway wrote
 *   (same properties, same size) and one hidden queue message of the same encoding, per mail, 256 concurrent, into
 *   the same table and queue;
 * - gateway without `Idempotency-Key`;
 * - gateway with a fresh `Idempotency-Key` per mail;
 * - host floor: `GET /api/problems/{slug}` on the same hosts, as many requests and callers: a function invocation
 *   through the host and the `@azure/functions` library with a static answer (no storage, no body), what any
 *   function costs before it does its work.
 *
 * CPU is `utime + stime` from `/proc/<pid>/stat`, as deltas over each phase's window, for the 4 hosts (host and worker
 * are one process in the local host), Azurite's table, queue and blob processes, and this process. A gateway phase
 * counts hosts + Azurite (the callers, in this process, are shown apart and not counted); the baseline counts Azurite +
 * this process (which is the baseline's storage client). The hosts' CPU during the baseline window is shown as their
 * idle floor (queue polling). Each round first measures 5 s with no request (each process's idle CPU per second);
 * the net figure subtracts that rate times the phase's seconds from what the phase counts. Each phase starts with the
 * outbox queue emptied (the hidden messages of the earlier phases would make Azurite's scans dearer).
 *
 * `BENCH_ACCEPT_CPU_PROF=<dir>` starts the hosts with `--cpu-prof` (profiles written there when they stop).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { startAzurite, type RunningAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import { readTestCa } from '../emulators/testCa';
import { appRoot } from '../../shared/platform/packageInfo';
import { loadConfig } from '../../shared/platform/config';
import { createQueueClient, createTableClient } from '../../shared/platform/storage/storage';
import { OUTBOX_QUEUE, OUTBOX_TABLE } from '../../shared/outbox/store/outboxStore';
import { outboxMessage } from '../../shared/outbox/store/outboxMessages';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';

/** Sizes of the accept benchmark. */
export interface AcceptBenchOptions {
  mails: number;
  callers: number;
  hosts: number;
  mailboxes: number;
  rounds: number;
}

/** Default sizes (the 256 callers on 4 hosts); `BENCH_ACCEPT_MAILS` and `BENCH_ACCEPT_ROUNDS` override. */
export function acceptBenchOptions(env: NodeJS.ProcessEnv = process.env): AcceptBenchOptions {
  return {
    mails: Number(env.BENCH_ACCEPT_MAILS) || 3000,
    callers: 256,
    hosts: 4,
    mailboxes: 10,
    rounds: Number(env.BENCH_ACCEPT_ROUNDS) || 2,
  };
}

/** CPU ms of each group of processes over one phase. */
export interface PhaseCpu {
  hosts: number;
  azuriteTable: number;
  azuriteQueue: number;
  azuriteBlob: number;
  /** This process: the callers in a gateway phase, the storage client in the baseline. */
  bench: number;
}

/** Figures of one phase. */
export interface AcceptPhaseResult {
  round: number;
  phase: 'baseline' | 'host floor' | 'gateway' | 'gateway + Idempotency-Key';
  mails: number;
  accepted: number;
  refused: Record<string, number>;
  seconds: number;
  cpu: PhaseCpu;
  /** CPU ms per accepted mail of the processes this phase counts (see the module comment). */
  countedMsPerMail: number;
  /** The same less what those processes spend idle (the round's idle rate times the phase's seconds). */
  netMsPerMail: number;
  latency: { p50: number; p99: number; max: number };
}

const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system) of process `pid` so far, ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond) * 1000;
}

function snapshot(hosts: FunctionsHostProcess[], azurite: RunningAzurite): PhaseCpu {
  const [queue, table, blob] = azurite.pids;
  return {
    hosts: hosts.reduce((sum, h) => sum + cpuMs(h.pid), 0),
    azuriteTable: cpuMs(table),
    azuriteQueue: cpuMs(queue),
    azuriteBlob: cpuMs(blob),
    bench: cpuMs(process.pid),
  };
}

function delta(before: PhaseCpu, after: PhaseCpu): PhaseCpu {
  return {
    hosts: after.hosts - before.hosts,
    azuriteTable: after.azuriteTable - before.azuriteTable,
    azuriteQueue: after.azuriteQueue - before.azuriteQueue,
    azuriteBlob: after.azuriteBlob - before.azuriteBlob,
    bench: after.bench - before.bench,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `count` jobs with `concurrency` at once; returns each finished job's latency (ms) and the wall time (s). */
async function drive(
  count: number,
  concurrency: number,
  job: (i: number) => Promise<string | undefined>,
): Promise<{ latencies: number[]; refused: Record<string, number>; seconds: number }> {
  const latencies: number[] = [];
  const refused: Record<string, number> = {};
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        const failure = await job(i).catch((err: unknown) => (err instanceof Error ? err.name : 'error'));
        if (failure === undefined) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        else refused[failure] = (refused[failure] ?? 0) + 1;
      }
    }),
  );
  return { latencies, refused, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** Runs the phases and returns their figures in the order run. */
export async function runAcceptBench(caDir: string, options: AcceptBenchOptions): Promise<AcceptPhaseResult[]> {
  process.env.TEST_CA_DIR ??= caDir;
  const senders = Array.from({ length: options.mailboxes }, (_, i) => `sender${i}`);
  const cloud = await LocalCloud.start({ ca: readTestCa(caDir), credential: 'certificate-pem', users: senders });
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const hosts: FunctionsHostProcess[] = [];
  try {
    const domain = cloud.tenant.domain;
    const settings: Record<string, string> = {
      ...cloud.settings(),
      ALLOWED_SENDERS: `*@${domain}`,
      AzureWebJobsStorage: azurite.connectionString,
      SANDBOX_HOST_LOG_LEVEL: process.env.BENCH_ACCEPT_HOST_LOG ?? 'warning',
    };
    const profileDir = process.env.BENCH_ACCEPT_CPU_PROF;
    const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    for (let i = 0; i < options.hosts; i++) hosts.push(await startFunctionsHost(settings, { nodeArgs }));
    const mailboxes = senders.map((s) => `${s}@${domain}`);
    // An hour ahead: each queue message stays hidden, so nothing is processed while the accepts are measured.
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const post = async (tag: string, i: number, keyed: boolean): Promise<string | undefined> => {
      const host = hosts[i % hosts.length];
      const res = await fetch(`${host.url}/api/mail/send`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-functions-key': host.functionKey,
          ...(keyed ? { 'idempotency-key': `${tag}-${i}` } : {}),
        },
        body: JSON.stringify({
          from: mailboxes[i % mailboxes.length],
          to: [`someone@${domain}`],
          subject: `${tag}-${i}`,
          text: 'accept benchmark',
          sendAt,
        }),
      });
      const body = await res.text();
      if (res.status === 202) return undefined;
      // Refusals counted by what they say (e.g. which storage call ran out of time), without the mail's details.
      const problem = (() => {
        try {
          return JSON.parse(body) as { detail?: string };
        } catch {
          return {};
        }
      })();
      return `HTTP ${res.status}: ${(problem.detail ?? body).slice(0, 90)}`;
    };

    // Warm-up, not measured: each host's token, table and queue checks, JIT; both kinds of request.
    const warm = await drive(options.hosts * 32, 64, (i) => post(`accept-warm-${Date.now()}`, i, i % 2 === 1));
    if (Object.keys(warm.refused).length > 0) throw new Error(`warm-up refused: ${JSON.stringify(warm.refused)}`);

    // The baseline's entity: one the gateway wrote without a key, its properties as stored (types kept).
    const reader = TableClient.fromConnectionString(azurite.connectionString, OUTBOX_TABLE, {
      allowInsecureConnection: true,
    });
    let template: Record<string, unknown> | undefined;
    for await (const entity of reader.listEntities()) {
      if (!('idempotencyHash' in entity)) {
        template = entity;
        break;
      }
    }
    if (!template) throw new Error('the warm-up stored no outbox record');
    // Without what the service sets itself (ETag, timestamp, keys): the rest is the record's own properties.
    const properties = Object.fromEntries(
      Object.entries(template).filter(([name]) => !['etag', 'timestamp', 'partitionKey', 'rowKey'].includes(name)),
    );
    const config = loadConfig({ ...process.env, ...settings });
    const table = createTableClient(config, OUTBOX_TABLE);
    const queue = createQueueClient(config, OUTBOX_QUEUE);
    const baselineJob = async (): Promise<undefined> => {
      const id = randomUUID();
      await table.createEntity({ ...properties, partitionKey: id, rowKey: '' });
      await queue.sendMessage(outboxMessage.encode({ id }), { visibilityTimeout: 3600 });
      return undefined;
    };

    const results: AcceptPhaseResult[] = [];
    const countedMs = (phase: AcceptPhaseResult['phase'], cpu: PhaseCpu): number =>
      cpu.azuriteTable + cpu.azuriteQueue + cpu.azuriteBlob + (phase === 'baseline' ? cpu.bench : cpu.hosts);
    // What the processes spend per second with no request: the hosts' queue polling (every 2 s per queue at most,
    // host.json) and timers, and Azurite answering the polls (it scans a queue's messages on each receive).
    let idlePerSecond: PhaseCpu = snapshot(hosts, azurite);
    const measureIdle = async (): Promise<void> => {
      const before = snapshot(hosts, azurite);
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 5000));
      const cpu = delta(before, snapshot(hosts, azurite));
      const seconds = (Date.now() - started) / 1000;
      idlePerSecond = {
        hosts: cpu.hosts / seconds,
        azuriteTable: cpu.azuriteTable / seconds,
        azuriteQueue: cpu.azuriteQueue / seconds,
        azuriteBlob: cpu.azuriteBlob / seconds,
        bench: cpu.bench / seconds,
      };
    };
    const measure = async (
      round: number,
      phase: AcceptPhaseResult['phase'],
      job: (i: number) => Promise<string | undefined>,
    ): Promise<void> => {
      // Each phase starts from an empty queue: Azurite's receive scans every message, hidden ones too, so the hidden
      // messages of earlier phases would make every poll of this one dearer (Azure Storage does not scan).
      await queue.clearMessages();
      const before = snapshot(hosts, azurite);
      const run = await drive(options.mails, options.callers, job);
      const cpu = delta(before, snapshot(hosts, azurite));
      const counted = countedMs(phase, cpu);
      const idle = countedMs(phase, idlePerSecond) * run.seconds;
      const sorted = [...run.latencies].sort((a, b) => a - b);
      results.push({
        round,
        phase,
        mails: options.mails,
        accepted: run.latencies.length,
        refused: run.refused,
        seconds: run.seconds,
        cpu,
        countedMsPerMail: counted / Math.max(1, run.latencies.length),
        netMsPerMail: (counted - idle) / Math.max(1, run.latencies.length),
        latency: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN },
      });
      console.error(`  (accept) round ${round} ${phase}: ${run.latencies.length} in ${run.seconds.toFixed(1)} s`);
    };
    for (let round = 1; round <= options.rounds; round++) {
      const tag = `accept-${round}-${Date.now()}`;
      await queue.clearMessages();
      await measureIdle();
      await measure(round, 'baseline', baselineJob);
      await measure(round, 'gateway', (i) => post(`${tag}-plain`, i, false));
      await measure(round, 'gateway + Idempotency-Key', (i) => post(`${tag}-keyed`, i, true));
      await measure(round, 'host floor', async (i) => {
        const res = await fetch(`${hosts[i % hosts.length].url}/api/problems/message-not-found`);
        await res.arrayBuffer();
        return res.status === 200 ? undefined : `HTTP ${res.status}`;
      });
    }
    return results;
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
    await azurite.stop();
    await cloud.close();
  }
}
