/**
 * Processing (issue 18): table operations and CPU per sent mail. One functions host (the package that ships, in its
 * own process) on its own Azurite, whose table endpoint the host reaches through a counting proxy in this process, so
 * every table request of every process is counted at the storage side, by table and verb. Mails are posted with a
 * few callers; the run ends when the `mail-events` queue (read straight from Azurite, not through the proxy) holds a
 * `mail.sent` for each. CPU is utime + stime from `/proc/<pid>/stat` of every process this benchmark started (the
 * host and its workers, Azurite's three services); this process (the Graph emulator, the proxy, the callers) is not
 * counted. Three runs: a high rate (nothing waits for the pacer); Exchange's 30 per minute from one mailbox with
 * mails posted at once (the first 30 go at once, the rest wait for the sliding minute and come back); and 30 per
 * minute with a mail posted every 2.1 s (each goes when it comes).
 *
 * Baseline, in the same run: the raw storage work of a sent mail's 5 table operations (a 1 KB entity inserted, read,
 * and replaced 3 times with If-Match) done with the same SDK from this process, for the same number of mails: the
 * storage's own CPU (Azurite) and this process's, the floor of what 5 operations can cost.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { MAIL_EVENTS_QUEUE } from '../../shared/events/eventPublisher';
import { azuriteConnectionString, startAzurite, type RunningAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import { readTestCa } from '../emulators/testCa';
import { appRoot } from '../../shared/platform/packageInfo';
import { startFunctionsHost } from '../support/functionsHost';

/** One run's figures. */
export interface ProcessingRunResult {
  name: string;
  mails: number;
  seconds: number;
  /** Table requests per sent mail by `table verb`, the accept's insert of the record left out. */
  opsPerMail: Record<string, number>;
  /** The table requests of the mail's own tables (outbox, mailboxpacing, publishedEvents) per sent mail. */
  mailOpsPerMail: number;
  /** All table requests per sent mail, those of the host's timers (e.g. the watch's `subscriptions`) too. */
  totalOpsPerMail: number;
  /** CPU ms per sent mail, accept and processing: the host's processes, Azurite's. */
  cpuMsPerMail: { host: number; azurite: number };
}

/** The baseline's figures: 5 raw table operations per mail. */
export interface ProcessingBaseline {
  mails: number;
  cpuMsPerMail: { client: number; azurite: number };
}

/** Counts the table requests that pass through it, by table and verb. */
class CountingProxy {
  readonly counts = new Map<string, number>();
  private readonly server: Server;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(target: URL) {
    this.server = createServer((req, res) => {
      const key = `${tableOf(req.url ?? '')} ${req.method ?? '?'}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: this.agent,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  reset(): void {
    this.counts.clear();
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** `outbox`, `mailboxpacing`, `Tables`, ... from a Table service path such as `/devstoreaccount1/outbox(PartitionKey=...)`. */
function tableOf(path: string): string {
  const match = /^\/[^/]+\/([A-Za-z0-9$]+)/.exec(path);
  return match ? match[1] : path;
}

/** Every process: its parent and its CPU ms so far (utime + stime). */
function processTable(): Map<number, { ppid: number; cpuMs: number; cmdline: string }> {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const all = new Map<number, { ppid: number; cpuMs: number; cmdline: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the name: state(0) ppid(1) ... utime(11) stime(12)
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      all.set(Number(entry), {
        ppid: Number(fields[1]),
        cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond,
        cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '),
      });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

/** CPU ms so far of the host's processes (`hostPid` and its descendants) and of `azurite`'s three services. */
function cpuSplit(hostPid: number, azurite: RunningAzurite): { host: number; azurite: number } {
  const all = processTable();
  const ports = [azurite.queueUrl, azurite.tableUrl, azurite.blobUrl].map((u) => ` ${new URL(u).port}`);
  const underHost = new Set([hostPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, info] of all) {
      if (underHost.has(info.ppid) && !underHost.has(pid)) {
        underHost.add(pid);
        grew = true;
      }
    }
  }
  let host = 0;
  let storage = 0;
  for (const [pid, info] of all) {
    if (underHost.has(pid)) host += info.cpuMs;
    else if (info.ppid === process.pid && ports.some((p) => info.cmdline.includes(`Port${p} `))) storage += info.cpuMs;
  }
  return { host, azurite: storage };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the high-rate and the 30-per-minute runs, then the baseline; each on the same Azurite. */
export async function runProcessingBench(
  caDir: string,
  sizes: { highRateMails: number; paceMails: number } = { highRateMails: 300, paceMails: 60 },
): Promise<{ runs: ProcessingRunResult[]; baseline: ProcessingBaseline }> {
  process.env.TEST_CA_DIR ??= caDir;
  const cloud = await LocalCloud.start({
    ca: readTestCa(caDir),
    credential: 'certificate-pem',
    users: ['fast1', 'fast2', 'fast3', 'fast4', 'paced', 'steady', 'warmup', 'someone'],
    graph: { latencyMs: { min: 20, max: 60 }, limits: { messagesPerMinute: 100_000 } },
  });
  const runs: ProcessingRunResult[] = [];
  try {
    runs.push(
      await oneRun(cloud, {
        name: 'high rate (6,000/min, 4 mailboxes)',
        rate: 6_000,
        mailboxes: ['fast1', 'fast2', 'fast3', 'fast4'],
        mails: sizes.highRateMails,
      }),
    );
    runs.push(
      await oneRun(cloud, {
        name: `30/min, ${sizes.paceMails} posted at once (one mailbox)`,
        rate: 30,
        mailboxes: ['paced'],
        mails: sizes.paceMails,
      }),
    );
    runs.push(
      await oneRun(cloud, {
        name: '30/min, one posted every 2.1 s (one mailbox)',
        rate: 30,
        mailboxes: ['steady'],
        mails: 30,
        everyMs: 2_100,
      }),
    );
    const azurite = await startAzurite({ projectRoot: appRoot() });
    try {
      return { runs, baseline: await baseline(azurite, sizes.highRateMails) };
    } finally {
      await azurite.stop();
    }
  } finally {
    await cloud.close();
  }
}

async function oneRun(
  cloud: LocalCloud,
  run: { name: string; rate: number; mailboxes: string[]; mails: number; everyMs?: number },
): Promise<ProcessingRunResult> {
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const proxy = new CountingProxy(new URL(azurite.tableUrl));
  const proxyPort = await proxy.listen();
  const ports = (url: string) => Number(new URL(url).port);
  const connectionString = azuriteConnectionString(ports(azurite.queueUrl), proxyPort, ports(azurite.blobUrl));
  const domain = cloud.tenant.domain;
  const host = await startFunctionsHost({
    ...cloud.settings(),
    ALLOWED_SENDERS: `*@${domain}`,
    AzureWebJobsStorage: connectionString,
    MAILBOX_MESSAGES_PER_MINUTE: String(run.rate),
    SANDBOX_HOST_LOG_LEVEL: 'warning',
  });
  const events = new QueueClient(azurite.connectionString, MAIL_EVENTS_QUEUE);
  let sent = 0;
  const drain = async () => {
    await events.createIfNotExists();
    for (;;) {
      const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
      if (receivedMessageItems.length === 0) return;
      for (const m of receivedMessageItems) {
        const event = JSON.parse(Buffer.from(m.messageText, 'base64').toString()) as { type: string };
        if (event.type === 'mail.sent') sent++;
        await events.deleteMessage(m.messageId, m.popReceipt);
      }
    }
  };
  const post = async (from: string, subject: string) => {
    const res = await fetch(`${host.url}/api/mail/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-functions-key': host.functionKey },
      body: JSON.stringify({ from, to: [`someone@${domain}`], subject, text: 'processing benchmark' }),
    });
    await res.arrayBuffer();
    if (res.status !== 202) throw new Error(`accept answered ${res.status}`);
  };
  try {
    // A warm-up mail from another mailbox: token, tables and queues exist before counting starts.
    await post(`warmup@${domain}`, 'warm-up');
    for (const deadline = Date.now() + 60_000; sent < 1; await sleep(100)) {
      if (Date.now() > deadline) throw new Error('the warm-up mail was not sent');
      await drain();
    }
    await sleep(1_000);
    sent = 0;
    proxy.reset();
    const cpuBefore = cpuSplit(host.pid, azurite);
    const started = Date.now();
    let next = 0;
    const caller = async () => {
      while (next < run.mails) {
        const i = next++;
        await post(`${run.mailboxes[i % run.mailboxes.length]}@${domain}`, `processing-${i}`);
      }
    };
    if (run.everyMs === undefined) await Promise.all(Array.from({ length: 8 }, caller));
    else {
      for (let i = 0; i < run.mails; i++) {
        await post(`${run.mailboxes[i % run.mailboxes.length]}@${domain}`, `processing-${i}`);
        await sleep(run.everyMs);
      }
    }
    const deadline = Date.now() + 15 * 60_000;
    while (sent < run.mails) {
      if (Date.now() > deadline) throw new Error(`only ${sent} of ${run.mails} mails were sent`);
      await sleep(250);
      await drain();
    }
    const seconds = (Date.now() - started) / 1000;
    // Whatever follows the last event (a release written after the publish) is counted too.
    await sleep(1_500);
    const cpuAfter = cpuSplit(host.pid, azurite);
    const opsPerMail: Record<string, number> = {};
    let total = 0;
    let mailOps = 0;
    for (const [key, n] of [...proxy.counts].sort()) {
      // The accept's insert of the record (one per mail) is the accept's, not the processing's.
      const count = key === 'outbox POST' ? n - run.mails : n;
      if (count === 0) continue;
      opsPerMail[key] = count / run.mails;
      total += count;
      if (/^(outbox|mailboxpacing|publishedEvents) /.test(key)) mailOps += count;
    }
    return {
      name: run.name,
      mails: run.mails,
      seconds,
      opsPerMail,
      mailOpsPerMail: mailOps / run.mails,
      totalOpsPerMail: total / run.mails,
      cpuMsPerMail: {
        host: (cpuAfter.host - cpuBefore.host) / run.mails,
        azurite: (cpuAfter.azurite - cpuBefore.azurite) / run.mails,
      },
    };
  } finally {
    await host.stop();
    await proxy.close();
    await azurite.stop();
  }
}

/** 5 table operations per mail with the same SDK: insert, read, 3 replaces with If-Match; 8 at a time. */
async function baseline(azurite: RunningAzurite, mails: number): Promise<ProcessingBaseline> {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'baseline', {
    allowInsecureConnection: true,
  });
  await table.createTable();
  const payload = 'x'.repeat(1_000);
  const one = async () => {
    const partitionKey = randomUUID();
    let { etag } = await table.createEntity({ partitionKey, rowKey: '', payload, status: 'queued' });
    const read = await table.getEntity(partitionKey, '');
    etag = read.etag;
    for (const status of ['sending', 'sent', 'sent']) {
      ({ etag } = await table.updateEntity({ partitionKey, rowKey: '', payload, status }, 'Replace', { etag }));
    }
  };
  await one();
  const cpuBefore = cpuSplit(-1, azurite);
  const clientBefore = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < mails) await one();
    }),
  );
  const client = process.cpuUsage(clientBefore);
  const cpuAfter = cpuSplit(-1, azurite);
  return {
    mails,
    cpuMsPerMail: {
      client: (client.user + client.system) / 1000 / mails,
      azurite: (cpuAfter.azurite - cpuBefore.azurite) / mails,
    },
  };
}
