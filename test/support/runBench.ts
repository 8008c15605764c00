/**
 * `npm run bench`: starts the local cloud in a child process that trusts a fresh test CA (NODE_EXTRA_CA_CERTS is
 * read only at start), runs each benchmark and prints its figures next to the baseline measured in the same run.
 * `npm run bench -- package` runs only the deployment package benchmark (no cloud needed).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type GatewayConfig } from '../../shared/platform/config';
import { runMemoryBench, type MemoryBenchResult } from '../bench/memoryBench';
import { runPackageBench } from '../bench/packageBench';
import { stageFunctionPackage } from '../../tools/functionPackage';
import { runPacerBench } from '../bench/pacerBench';
import { runBurstBench } from '../bench/burstBench';
import { runProcessingBench } from '../bench/processingBench';
import { outboxBenchOptions, runOutboxBench } from '../bench/outboxBench';
import { acceptBenchOptions, runAcceptBench } from '../bench/acceptBench';
import { runTokenBench } from '../bench/tokenBench';
import { runPollBench } from '../bench/pollBench';
import { poll1000Options, runPoll1000Bench } from '../bench/poll1000Bench';
import { runReconcileBench } from '../bench/reconcileBench';
import { runWatchBench } from '../bench/watchBench';
import { percentile, runMessagesBench, type MessagesBenchResult } from '../bench/messagesBench';
import { freePort, startAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import { appRoot } from '../../shared/platform/packageInfo';
import { createTestCa, readTestCa, writeTestCa } from '../emulators/testCa';

async function packageBenchmark(): Promise<void> {
  const r = await runPackageBench(appRoot());
  console.log('Package benchmark: the staged deployment package against the repository build (dist/functions/*.js)');
  console.log(
    `  zipped package: ${(r.zipBytes / (1024 * 1024)).toFixed(2)} MB (${r.stagedFiles} staged files; goal < 5 MB)`,
  );
  console.log(
    `  cold load of all entry points (${r.functionsRegistered} functions, fresh process each, median of ${r.runs}): ` +
      `unbundled ${r.unbundledMedianMs.toFixed(0)} ms, bundled ${r.bundledMedianMs.toFixed(0)} ms, ` +
      `ratio ${r.ratio.toFixed(2)} (goal <= 0.60)\n`,
  );
}

const MB = 1024 * 1024;

/**
 * Prints the memory benchmark: per send, for its accept (POST until 202) and its processing (queue trigger until
 * sent), the host's settled RSS before, its peak growth and what stayed after; and the host's floor.
 */
function printMemory(result: MemoryBenchResult): void {
  const mb = (bytes: number): string => `${bytes < 0 ? '-' : '+'}${(Math.abs(bytes) / MB).toFixed(0)} MB`;
  console.log(
    `\nSend benchmark (e): memory of one ${result.attachmentBytes / MB} MB attachment in the functions host's process alone ` +
      `(emulators run elsewhere); request body ${(result.bodyBytes / MB).toFixed(1)} MB, peak from ${result.peakSource}; ` +
      `accept = POST until 202, processing = queue trigger until sent; ` +
      `host floor = the same body refused unread (415); goal: each phase's peak growth <= 2x the body`,
  );
  console.log(
    [
      'send',
      'phase     ',
      'HTTP',
      'seconds',
      'RSS before',
      'peak growth',
      'ratio to body',
      'residual after',
      'host floor',
    ].join('  '),
  );
  result.rounds.forEach(({ floor, accept, processing }, i) => {
    for (const [phase, sample] of [
      ['accept', accept],
      ['processing', processing],
    ] as const) {
      const growth = sample.peakBytes - sample.beforeBytes;
      console.log(
        [
          String(i + 1).padEnd(4),
          phase.padEnd(10),
          String(sample.status).padStart(4),
          sample.seconds.toFixed(2).padStart(7),
          `${(sample.beforeBytes / MB).toFixed(0)} MB`.padStart(10),
          mb(growth).padStart(11),
          (growth / result.bodyBytes).toFixed(2).padStart(13),
          mb(sample.afterBytes - sample.beforeBytes).padStart(14),
          phase === 'accept' ? `${mb(floor.peakBytes - floor.beforeBytes)} (${floor.status})`.padStart(10) : '',
        ].join('  '),
      );
    }
  });
}

// `npm run bench -- watch send` runs only the named groups (package, token, burst, send, accept, watch, ...); no names runs
// them all (send includes burst).
const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const wanted = (group: string) => only.length === 0 || only.includes(group);

async function benchmarks(caDir: string): Promise<void> {
  if (wanted('package')) await packageBenchmark();
  if (only.length > 0 && only.every((g) => g === 'package')) return;
  // One object the Graph emulator reads its latency from, so each benchmark sets the latency it needs.
  const latency = { min: 0, max: 0 };
  const cloud = await LocalCloud.start({
    ca: readTestCa(caDir),
    credential: 'certificate-pem',
    graph: { latencyMs: latency },
  });
  // One Azurite and one set of settings for the whole run: the in-process hosts share the app's cached config.
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const webhookPort = await freePort();
  Object.assign(process.env, cloud.settings(), {
    AzureWebJobsStorage: azurite.connectionString,
    ALLOWED_WATCH_MAILBOXES: `*@${cloud.tenant.domain}`,
    ALLOWED_READ_MAILBOXES: `*@${cloud.tenant.domain}`,
    WEBHOOK_BASE_URL: `https://127.0.0.1:${webhookPort}`,
  });
  const config = loadConfig(process.env);
  try {
    if (wanted('token')) await tokenSection(cloud, config);
    if (wanted('send') || wanted('burst')) await burstSection(caDir);
    if (wanted('send')) await sendSection(caDir);
    if (wanted('processing')) await processingSection(caDir);
    if (wanted('accept')) await acceptSection(caDir);
    if (wanted('memory')) printMemory(await runMemoryBench({ cloud, config }, caDir));
    if (wanted('pacer')) await runPacerBench();
    if (wanted('watch')) await watchSection(cloud, config, latency, webhookPort);
    if (wanted('poll')) await pollSection(cloud, config, latency);
    if (wanted('poll1000')) await poll1000Section(caDir, cloud, latency);
    if (wanted('reconcile')) await reconcileSection(cloud, config, latency);
    if (wanted('messages')) printMessages(await runMessagesBench({ cloud, config }, caDir));
  } finally {
    await cloud.close();
    await azurite.stop();
  }
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/** Prints the message API benchmark: (a) download, (b) GET overhead, (c) reply with an attachment. */
function printMessages(r: MessagesBenchResult): void {
  const mb = (bytes: number): string => `${bytes < 0 ? '-' : '+'}${(Math.abs(bytes) / MB).toFixed(0)} MB`;
  console.log(
    `\nMessages benchmark (a): a ${r.attachmentBytes / MB} MB attachment through GET .../attachments/{id}, host RSS alone ` +
      `(peak from ${r.peakSource}), each download between two settled states of the host; baseline: the same $value ` +
      `read straight from the emulator; goal: peak growth <= 16 MB`,
  );
  console.log(
    [
      'round',
      'HTTP',
      'direct s',
      'gateway s',
      'throughput ratio',
      'peak growth',
      'residual',
      'bytes intact',
      'direct CPU ms (emulator + caller)',
      'gateway: host CPU ms',
    ].join('  '),
  );
  r.downloads.forEach((d, i) => {
    const g = d.gateway;
    console.log(
      [
        String(i + 1).padEnd(5),
        String(g.status).padStart(4),
        d.directSeconds.toFixed(2).padStart(8),
        g.seconds.toFixed(2).padStart(9),
        (d.directSeconds / g.seconds).toFixed(2).padStart(16),
        mb(g.peakBytes - g.beforeBytes).padStart(11),
        mb(g.afterBytes - g.beforeBytes).padStart(8),
        String(d.intact).padStart(12),
        d.directCpuMs.toFixed(0).padStart(33),
        g.cpuMs.toFixed(0).padStart(20),
      ].join('  '),
    );
  });
  const ratios = r.throughput.map((t) => t.directSeconds / t.gatewaySeconds);
  console.log(
    `Messages benchmark (a) throughput: ${r.throughput.length} rounds back to back on a second, fresh host that is ` +
      `never settled (settling, as the memory rounds above do before each download, slows the downloads after it); ` +
      `goal ratio >= 0.8`,
  );
  console.log(['round', 'direct s', 'gateway s', 'throughput ratio', 'host CPU ms', 'bytes intact'].join('  '));
  r.throughput.forEach((t, i) => {
    console.log(
      [
        String(i + 1).padEnd(5),
        t.directSeconds.toFixed(2).padStart(8),
        t.gatewaySeconds.toFixed(2).padStart(9),
        (t.directSeconds / t.gatewaySeconds).toFixed(2).padStart(16),
        t.hostCpuMs.toFixed(0).padStart(11),
        String(t.intact).padStart(12),
      ].join('  '),
    );
  });
  console.log(
    `  throughput ratio median ${percentile(ratios, 50).toFixed(2)}, lowest ${Math.min(...ratios).toFixed(2)}, all ` +
      `rounds together ${(sum(r.throughput.map((t) => t.directSeconds)) / sum(r.throughput.map((t) => t.gatewaySeconds))).toFixed(2)}; ` +
      `host CPU median ${percentile(
        r.throughput.map((t) => t.hostCpuMs),
        50,
      ).toFixed(0)} ms per download`,
  );
  const ms = (values: number[], p: number) => percentile(values, p).toFixed(1);
  console.log(
    `Messages benchmark (b): GET of a message (body=text), ${r.get.requests} sequential requests; the gateway's own time = ` +
      `the caller's latency - the time its Graph requests took in the emulator's log; goal p99 < 10 ms`,
  );
  console.log(
    `  caller p50 ${ms(r.get.callerMs, 50)} ms, p99 ${ms(r.get.callerMs, 99)} ms; Graph p50 ${ms(r.get.graphMs, 50)} ms, ` +
      `p99 ${ms(r.get.graphMs, 99)} ms; gateway's own p50 ${ms(r.get.ownMs, 50)} ms, p99 ${ms(r.get.ownMs, 99)} ms; ` +
      `host CPU ${r.get.hostCpuMsPerRequest.toFixed(2)} ms per request`,
  );
  console.log(
    `  the function alone (the host's logged invocation duration, whole ms, - Graph's): invocation p50 ` +
      `${ms(r.get.invocationMs, 50)} ms, p99 ${ms(r.get.invocationMs, 99)} ms; own p50 ${ms(r.get.invocationOwnMs, 50)} ms, ` +
      `p99 ${ms(r.get.invocationOwnMs, 99)} ms`,
  );
  console.log(
    `  floor (GET /api/problems/{slug} on the same host: no Graph, no storage): p50 ${ms(r.floorMs, 50)} ms, ` +
      `p99 ${ms(r.floorMs, 99)} ms; host CPU ${r.floorCpuMsPerRequest.toFixed(2)} ms per request`,
  );
  const s = r.reply.sample;
  console.log(
    `Messages benchmark (c): reply with a 10 MB attachment (request body ${(r.reply.bodyBytes / MB).toFixed(1)} MB), accept until ` +
      `${r.reply.outcome}: ${s.seconds.toFixed(2)} s; host peak growth ${mb(s.peakBytes - s.beforeBytes)} ` +
      `(${((s.peakBytes - s.beforeBytes) / r.reply.bodyBytes).toFixed(2)}x the body; goal <= 2x), residual ${mb(s.afterBytes - s.beforeBytes)}\n`,
  );
}

async function tokenSection(cloud: LocalCloud, config: GatewayConfig): Promise<void> {
  console.log('Token benchmark: Entra token requests and Key Vault reads per 1,000 Graph calls');
  console.log('client'.padEnd(52), 'token requests', 'Key Vault reads', 'ms/token');
  for (const r of await runTokenBench({ cloud, config })) {
    console.log(
      r.name.padEnd(52),
      String(r.tokenRequests).padStart(14),
      String(r.keyVaultReads).padStart(15),
      r.msPerToken.toFixed(3).padStart(8),
    );
  }
}

async function burstSection(caDir: string) {
  const r = await runBurstBench(caDir);
  console.log(
    `\nBurst: ${r.mails} mails posted at once to a quiet mailbox, ${r.messagesPerMinute} messages per minute, one host, ` +
      'Graph latency 20-60 ms; ms from the posts to Graph accepting the n-th mail:',
  );
  console.log(
    Object.entries(r.arrivalMs)
      .map(([n, ms]) => `${n}: ${ms.toFixed(0)}`)
      .join('  ') + `;  busiest 60 s: ${r.busiestMinute};  429s: ${r.throttled429}`,
  );
}

async function processingSection(caDir: string) {
  const { runs, baseline } = await runProcessingBench(caDir);
  console.log(
    "\nProcessing: table operations (counted at a proxy in front of Azurite's table endpoint, all processes) and CPU " +
      "(/proc/<pid>/stat of the host and Azurite) per sent mail, one host, Graph latency 20-60 ms; the accept's " +
      'insert of the record is left out of the operations, its CPU is in; goal <= 5 operations',
  );
  for (const r of runs) {
    const breakdown = Object.entries(r.opsPerMail)
      .map(([key, n]) => `${key} ${n.toFixed(2)}`)
      .join(', ');
    console.log(
      `  ${r.name}: ${r.mails} mails in ${r.seconds.toFixed(0)} s; ${r.mailOpsPerMail.toFixed(2)} table operations per ` +
        `sent mail on its tables, ${r.totalOpsPerMail.toFixed(2)} with the timers' (${breakdown}); CPU ms per mail: host ${r.cpuMsPerMail.host.toFixed(1)}, Azurite ` +
        `${r.cpuMsPerMail.azurite.toFixed(1)}, together ${(r.cpuMsPerMail.host + r.cpuMsPerMail.azurite).toFixed(1)}`,
    );
  }
  const b = baseline.cpuMsPerMail;
  console.log(
    `  baseline, the raw storage work of 5 table operations (insert, read, 3 replaces with If-Match, 1 KB) with the same ` +
      `SDK, ${baseline.mails} mails: CPU ms per mail: client ${b.client.toFixed(1)}, Azurite ${b.azurite.toFixed(1)}, ` +
      `together ${(b.client + b.azurite).toFixed(1)}`,
  );
}

async function sendSection(caDir: string) {
  const options = outboxBenchOptions();
  console.log(
    `\nSend benchmark: ${options.mails.toLocaleString('en')} mails from ${options.mailboxes} mailboxes, ${options.callers} concurrent callers, ` +
      `${options.hosts} host processes, one Azurite, Graph latency 20-60 ms; rate scaled to ${options.messagesPerMinute} messages ` +
      `per minute per mailbox (hosts and the emulator's Exchange alike)`,
  );
  const runs = await runOutboxBench(caDir, options);
  const header = [
    'run'.padEnd(48),
    'accept p50/p99 ms',
    'seconds',
    'busiest 60 s',
    'sustained ratio',
    'after accept',
    '429s',
    'dups',
    'NDRs',
    'held / longest s',
    'lost',
    'tokens/1000',
  ];
  console.log(header.join('  '));
  for (const r of runs) {
    console.log(
      [
        r.name.padEnd(48),
        `${r.accept.p50.toFixed(0)} / ${r.accept.p99.toFixed(0)}`.padStart(17),
        r.seconds.toFixed(0).padStart(7),
        `${r.busiestMinute.min}-${r.busiestMinute.max}`.padStart(12),
        `${r.sustainedRatio.min.toFixed(3)} (mean ${r.sustainedRatio.mean.toFixed(3)})`.padStart(15),
        `${r.afterAcceptRatio.min.toFixed(3)} (mean ${r.afterAcceptRatio.mean.toFixed(3)})`.padStart(12),
        String(r.throttled429).padStart(4),
        String(r.duplicates).padStart(4),
        String(r.ndrs).padStart(4),
        `${r.heldInOutbox} / ${r.longestHoldSeconds.toFixed(0)}`.padStart(16),
        String(r.lost).padStart(4),
        r.tokenRequestsPer1000.toFixed(1).padStart(11),
      ].join('  '),
    );
    const memory = r.hostMemoryMb.map((m) => `${m.startedMb.toFixed(0)}->${m.peakMb.toFixed(0)}`).join(', ');
    console.log(
      `    statuses ${JSON.stringify(r.statuses)}; mail.sent events ${r.sentEvents}; refused ${r.accept.refused}` +
        (r.killed ? `; host 4 killed after ${r.killed.afterSent} sends` : '') +
        `; (d) host RSS MB started->peak: ${memory}`,
    );
  }
}

/** The accept alone: CPU per accepted mail and latency, against the same storage work done directly. */
async function acceptSection(caDir: string) {
  const options = acceptBenchOptions();
  console.log(
    `\nAccept benchmark: ${options.mails.toLocaleString('en')} mails per phase, ${options.callers} concurrent callers, ` +
      `${options.hosts} host processes round robin, one Azurite; sendAt 1 h ahead (nothing processed in the window). ` +
      'CPU ms per accepted mail counted: gateway = hosts + Azurite; baseline = Azurite + its own client process ' +
      '(one table insert + one hidden queue message per mail, same SDKs and entity). The callers (this process) are ' +
      'shown apart, not counted.',
  );
  const results = await runAcceptBench(caDir, options);
  console.log(
    [
      'round',
      'phase'.padEnd(25),
      'mails/s',
      'CPU ms/mail',
      'ratio',
      'net ms/mail',
      'net ratio',
      'hosts',
      'Az table',
      'Az queue',
      'own/callers',
      'p50 ms',
      'p99 ms',
      'max ms',
      'p99/p50',
      'callers/rate s',
      'refused',
    ].join('  '),
  );
  for (const r of results) {
    const baseline = results.find((b) => b.round === r.round && b.phase === 'baseline');
    const per = (ms: number) => (ms / Math.max(1, r.accepted)).toFixed(2);
    console.log(
      [
        String(r.round).padEnd(5),
        r.phase.padEnd(25),
        (r.accepted / r.seconds).toFixed(0).padStart(7),
        r.countedMsPerMail.toFixed(2).padStart(11),
        (r.phase === 'host floor' || !baseline
          ? '-'
          : (r.countedMsPerMail / baseline.countedMsPerMail).toFixed(2)
        ).padStart(5),
        r.netMsPerMail.toFixed(2).padStart(11),
        (r.phase === 'host floor' || !baseline ? '-' : (r.netMsPerMail / baseline.netMsPerMail).toFixed(2)).padStart(9),
        (r.phase === 'baseline' ? `(${per(r.cpu.hosts)})` : per(r.cpu.hosts)).padStart(5),
        per(r.cpu.azuriteTable).padStart(8),
        per(r.cpu.azuriteQueue).padStart(8),
        per(r.cpu.bench).padStart(11),
        r.latency.p50.toFixed(0).padStart(6),
        r.latency.p99.toFixed(0).padStart(6),
        r.latency.max.toFixed(0).padStart(6),
        (r.latency.p99 / r.latency.p50).toFixed(1).padStart(7),
        (options.callers / (r.accepted / r.seconds)).toFixed(2).padStart(14),
        (Object.keys(r.refused).length ? JSON.stringify(r.refused) : '0').padStart(7),
      ].join('  '),
    );
  }
  console.log(
    "  ratio = CPU ms/mail / the same round's baseline (goal <= 1.3); net = less the same processes' idle CPU (5 s " +
      "without requests before each round) times the phase's seconds; hosts in the baseline row, in parentheses: their " +
      'idle floor (queue polling), not counted; host floor = GET /api/problems/{slug}, per request; goal p99 <= 3x p50; ' +
      "callers/rate = the wait Little's law gives for 256 in flight at the measured rate (a p50 near it is queueing)",
  );
}

/** Poll mode at the run's POLL_INTERVAL_SECONDS (`POLL_INTERVAL_SECONDS=15 npm run bench -- poll`). */
async function pollSection(cloud: LocalCloud, config: GatewayConfig, latency: { min: number; max: number }) {
  latency.min = 5;
  latency.max = 15;
  const windowSeconds = Number(process.env.BENCH_POLL_WINDOW_SECONDS ?? 300);
  console.log(
    `\nPoll benchmark (20 mailboxes by poll, 1 by push, POLL_INTERVAL_SECONDS=${config.watch.pollIntervalMs / 1000}, ${windowSeconds} s window, Graph latency 5-15 ms)`,
  );
  const r = await runPollBench({ cloud, config }, windowSeconds);
  console.log(
    `(d) delivery -> event by polling every ${r.intervalSeconds} s: ${r.delivered} of ${r.mails} mails, p50 ${(r.latency.p50 / 1000).toFixed(1)} s, p99 ${(r.latency.p99 / 1000).toFixed(1)} s (goal p99 <= ${r.intervalSeconds + 2} s)`,
  );
  console.log(
    `(e) Graph requests per mailbox per hour over ${r.windowSeconds.toFixed(0)} s: polled ${r.pollRequestsPerMailboxHour.toFixed(0)}, pushed ${r.pushRequestsPerMailboxHour.toFixed(0)} (same mail rate)`,
  );
}

/** 1,000 mailboxes polled every 60 s by 4 host processes (`npm run bench -- poll1000`). */
async function poll1000Section(caDir: string, cloud: LocalCloud, latency: { min: number; max: number }) {
  latency.min = 5;
  latency.max = 15;
  process.env.TEST_CA_DIR ??= caDir;
  const options = poll1000Options();
  console.log(
    `\nPoll at scale: ${options.mailboxes.toLocaleString('en')} mailboxes by poll, POLL_INTERVAL_SECONDS=${options.intervalSeconds}, ` +
      `${options.hosts} host processes, one Azurite, Graph latency 5-15 ms, ${options.mailsPerSecond} mail/s to random mailboxes, ` +
      `${options.windowSeconds} s window after one interval of warm-up`,
  );
  const r = await runPoll1000Bench(cloud, options);
  const s = (n: number | undefined) => (n ?? Number.NaN).toFixed(1);
  console.log(
    `(g) Graph requests per cycle ${r.graphRequestsPerCycle.toFixed(0)} (${(r.graphRequestsPerCycle / options.mailboxes).toFixed(3)} per mailbox; ` +
      `delta ${r.deltaRequestsPerCycle.toFixed(0)}), HTTP requests per cycle ${r.httpRequestsPerCycle.toFixed(0)}, 429s ${r.throttled}; ` +
      `${r.cycles.toFixed(1)} cycles in ${r.windowSeconds.toFixed(0)} s`,
  );
  console.log(
    `(h) gaps between a mailbox's reads: p50 ${s(r.gaps.p50)} s, p99 ${s(r.gaps.p99)} s (${r.gaps.samples} gaps); each mailbox's longest ` +
      `(window edges included) p50 ${s(r.maxGap.p50)} s, p99 ${s(r.maxGap.p99)} s, max ${s(r.maxGap.max)} s; ` +
      `read late (gap > ${options.intervalSeconds + r.slackSeconds} s): ${r.behind}, never read: ${r.neverRead}; ` +
      `a cycle skipped (gap >= 1.5 intervals): ${r.skipped}; read twice within half an interval: ${r.extraReads}; host warnings ${r.hostWarnings}`,
  );
  for (const line of r.hostWarningSamples) console.log(`    host: ${line}`);
  console.log(
    `(i) share of each cycle with a poll request in flight: ${r.busyShare.map((v) => `${(v * 100).toFixed(0)} %`).join(', ')}; ` +
      `first to last poll request: ${r.spreadSeconds.map((v) => `${v.toFixed(0)} s`).join(', ')}; ` +
      `hosts' CPU per cycle ${s(r.cpuSecondsPerCycle)} s together (${((r.cpuSecondsPerCycle / options.intervalSeconds) * 100).toFixed(1)} % of one core)`,
  );
  console.log(
    `(j) mails -> events: ${r.evented} of ${r.mails}, delivery -> event p50 ${s(r.latency.p50 / 1000)} s, p99 ${s(r.latency.p99 / 1000)} s`,
  );
  console.log(
    `    baseline: one process reading all ${r.sequential.reads} folders once, in a row, with the same poll reader: ` +
      `${s(r.sequential.seconds)} s (${((r.sequential.seconds / options.intervalSeconds) * 100).toFixed(0)} % of a cycle), CPU ${s(r.sequential.cpuSeconds)} s`,
  );
  const { single, batched } = r.batching;
  console.log(
    `(k) batching the delta GETs, the same ${single.ok} GETs: one by one (16 at a time) ${single.httpRequests} HTTP requests, ` +
      `${s(single.seconds)} s, CPU ${s(single.cpuSeconds)} s; in $batches of 20 (4 at a time) ${batched.httpRequests} HTTP requests ` +
      `(${batched.ok} items 200), ${s(batched.seconds)} s, CPU ${s(batched.cpuSeconds)} s (client and emulator in one process); ` +
      `CPU saved per cycle ${s(single.cpuSeconds - batched.cpuSeconds)} s against the hosts' ${s(r.cpuSecondsPerCycle)} s`,
  );
}

/** Push with dropped notifications (`RECONCILE_INTERVAL_MINUTES=1 npm run bench -- reconcile`). */
async function reconcileSection(cloud: LocalCloud, config: GatewayConfig, latency: { min: number; max: number }) {
  latency.min = 5;
  latency.max = 15;
  const windowSeconds = Number(process.env.BENCH_RECONCILE_WINDOW_SECONDS ?? 120);
  console.log(
    `\nReconciliation benchmark (10 mailboxes by push, 5 mails/s for ${windowSeconds} s, ~5 % of notifications dropped silently, RECONCILE_INTERVAL_MINUTES=${config.watch.reconcileIntervalMs / 60_000})`,
  );
  const r = await runReconcileBench({ cloud, config }, windowSeconds);
  console.log(
    `(f) mails that reached an event: ${r.evented} of ${r.mails} (${((r.evented / r.mails) * 100).toFixed(1)} %); ${r.dropped} notifications dropped, their delay to event p50 ${(r.reconciledDelay.p50 / 1000).toFixed(1)} s, p99 ${(r.reconciledDelay.p99 / 1000).toFixed(1)} s (goal p99 <= ${r.intervalMinutes * 60} s)`,
  );
}

async function watchSection(
  cloud: LocalCloud,
  config: GatewayConfig,
  latency: { min: number; max: number },
  webhookPort: number,
) {
  console.log('\nWatch benchmarks (Azurite queue and tables, Graph latency 5-15 ms; renewal 10-30 ms)');
  const watch = await runWatchBench({ cloud, config }, latency, webhookPort);
  for (const a of watch.ack) {
    console.log(
      `(a) webhook acknowledgement, ${String(a.itemsPerPost).padStart(3)} notification(s) per POST (${a.latency.samples} POSTs): p50 ${a.latency.p50.toFixed(1)} ms, p99 ${a.latency.p99.toFixed(1)} ms = ${((a.latency.p99 / 3000) * 100).toFixed(1)} % of Graph's 3 s budget`,
    );
  }
  console.log(
    ['(b) renewal client'.padEnd(48), 'subs', 'HTTP requests', 'Graph operations', 'seconds', 'renewed'].join('  '),
  );
  for (const r of watch.renewal) {
    console.log(
      [
        `    ${r.client}`.padEnd(48),
        String(r.subscriptions).padStart(4),
        String(r.httpRequests).padStart(13),
        String(r.graphOperations).padStart(16),
        r.seconds.toFixed(1).padStart(7),
        String(r.renewed).padStart(7),
      ].join('  '),
    );
  }
  const [perPatch, batched] = watch.renewal;
  console.log(
    `    ratio gateway / baseline: HTTP requests ${(batched.httpRequests / perPatch.httpRequests).toFixed(3)}, wall time ${(batched.seconds / perPatch.seconds).toFixed(2)}`,
  );
  console.log(
    `(c) end to end, mail delivered into a watched Inbox -> event on mail-events (${watch.endToEnd.samples} mails, 20/s): p50 ${watch.endToEnd.p50.toFixed(0)} ms, p99 ${watch.endToEnd.p99.toFixed(0)} ms`,
  );
}

if (process.env.BENCH_CA_DIR) {
  benchmarks(process.env.BENCH_CA_DIR).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  const dir = mkdtempSync(join(tmpdir(), 'mail-gateway-bench-'));
  const caPath = writeTestCa(createTestCa(), dir);
  // Benchmarks that run the functions host in its own process run the package that ships, as the tests do.
  const packageDir = join(dir, 'package');
  stageFunctionPackage(appRoot(), packageDir).then(
    () => runChild(dir, caPath, packageDir),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

function runChild(dir: string, caPath: string, packageDir: string): void {
  const child = spawnSync(process.execPath, [__filename], {
    stdio: 'inherit',
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: caPath,
      BENCH_CA_DIR: dir,
      BENCH_ONLY: process.argv.slice(2).join(','),
      TEST_PACKAGE_DIR: packageDir,
    },
  });
  rmSync(dir, { recursive: true, force: true });
  process.exit(child.status ?? 1);
}
