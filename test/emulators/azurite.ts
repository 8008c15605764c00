/**
 * Starts Azurite, the official Azure Storage emulator, for tables, queues and blobs: in memory, telemetry off, on free
 * loopback ports, and gives the connection string the SDKs and the Functions host use. The queue service runs with
 * `lokiBatchFix` loaded first (Azurite's queue store otherwise re-sorts every message on every request).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft). */
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A running Azurite. */
export interface RunningAzurite {
  queueUrl: string;
  tableUrl: string;
  blobUrl: string;
  /** Connection string with explicit endpoints (the value of `AzureWebJobsStorage`). */
  connectionString: string;
  /** Process ids of Azurite's queue, table and blob services (benchmarks read their CPU time from `/proc`). */
  pids: number[];
  /**
   * Freezes every Azurite process (SIGSTOP): connections are still accepted by the kernel, but nothing answers, as
   * with a storage account that hangs. Only for an Azurite a test started for itself.
   */
  freeze(): void;
  /** Lets frozen processes run again (SIGCONT); they answer what arrived meanwhile. */
  thaw(): void;
  stop(): Promise<void>;
}

/**
 * A free TCP port on 127.0.0.1 below Linux's ephemeral range (32768-60999), for a process that binds it seconds later
 * (a sandbox, whose PORT is picked by the test and bound after staging and starting its emulators). A port from
 * {@link freePort} is ephemeral: meanwhile the system may hand it to any other test's `listen(0)` or outgoing
 * connection, and the sandbox then fails with "already in use". A random port below that range is only taken by
 * another explicit pick.
 */
export async function freePortBelowEphemeral(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return freePort();
}

/** Finds a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Builds the connection string for Azurite's queue and table endpoints, and its blob endpoint when `blobPort` is
 * given (tests that point the gateway at a storage that is down pass closed ports).
 */
export function azuriteConnectionString(queuePort: number, tablePort: number, blobPort?: number): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};` +
    `QueueEndpoint=http://127.0.0.1:${queuePort}/${ACCOUNT};TableEndpoint=http://127.0.0.1:${tablePort}/${ACCOUNT};` +
    (blobPort === undefined ? '' : `BlobEndpoint=http://127.0.0.1:${blobPort}/${ACCOUNT};`)
  );
}

/** Starts Azurite's queue, table and blob services; resolves once all accept connections. */
export async function startAzurite(options: {
  projectRoot: string;
  queuePort?: number;
  tablePort?: number;
  blobPort?: number;
}): Promise<RunningAzurite> {
  const queuePort = options.queuePort ?? (await freePort());
  const tablePort = options.tablePort ?? (await freePort());
  const blobPort = options.blobPort ?? (await freePort());
  const cli = join(options.projectRoot, 'node_modules', 'azurite', 'dist', 'src');
  const lokiFix = join(options.projectRoot, 'dist', 'test', 'emulators', 'lokiBatchFix.js');
  if (!existsSync(lokiFix)) throw new Error(`${lokiFix} is missing: run \`npm run build\` first`);
  const common = ['--silent', '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck'];
  const children: ChildProcess[] = [
    spawn(
      process.execPath,
      [
        '--require',
        lokiFix,
        join(cli, 'queue', 'main.js'),
        ...common,
        '--queueHost',
        '127.0.0.1',
        '--queuePort',
        String(queuePort),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOKI_BATCH_FIX: '1' } },
    ),
    spawn(
      process.execPath,
      [join(cli, 'table', 'main.js'), ...common, '--tableHost', '127.0.0.1', '--tablePort', String(tablePort)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
    spawn(
      process.execPath,
      [join(cli, 'blob', 'main.js'), ...common, '--blobHost', '127.0.0.1', '--blobPort', String(blobPort)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  ];
  const stderr: string[] = [];
  for (const child of children) child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  const signal = (name: NodeJS.Signals) => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  const stop = async () => {
    // A stopped process only acts on SIGTERM once it runs again.
    signal('SIGCONT');
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    await Promise.all([
      waitForPort(queuePort, children[0]),
      waitForPort(tablePort, children[1]),
      waitForPort(blobPort, children[2]),
    ]);
  } catch (err) {
    await stop();
    throw new Error(`Azurite did not start: ${(err as Error).message}\n${stderr.join('')}`);
  }
  return {
    queueUrl: `http://127.0.0.1:${queuePort}/${ACCOUNT}`,
    tableUrl: `http://127.0.0.1:${tablePort}/${ACCOUNT}`,
    blobUrl: `http://127.0.0.1:${blobPort}/${ACCOUNT}`,
    connectionString: azuriteConnectionString(queuePort, tablePort, blobPort),
    pids: children.map((child) => child.pid ?? -1),
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    stop,
  };
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`process exited with code ${child.exitCode}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`port ${port} not answering after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
