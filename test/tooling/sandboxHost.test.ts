/**
 * The local Functions host (test/sandbox/host): registration capture through the `@azure/functions-core` shim,
 * HTTP routing/auth/responses over real sockets, NCRONTAB timers, and storage-queue triggers against Azurite.
 *
 * Fixture functions are TypeScript under fixtures/hostFunctions; they are transpiled into .test-run/ so the host
 * loads plain compiled JavaScript through Node's own loader, exactly as it loads dist/functions in `npm start`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueueServiceClient } from '@azure/storage-queue';
import {
  compileRoute,
  type HostLogLevel,
  LocalFunctionsHost,
  type LocalHostOptions,
  parseNcrontab,
  splitPath,
} from '../sandbox/host';
import { readHostSettings } from '../sandbox/host/projectConfig';
import { buildFixtureProject } from '../support/fixtureProject';

jest.setTimeout(60_000);

const REPO_ROOT = path.resolve(__dirname, '../..');
const FIXTURE_SOURCES = path.join(__dirname, 'fixtures', 'hostFunctions', 'functions');
const FUNCTION_KEY = 'fixture-function-key-3f9a';
const MASTER_KEY = 'fixture-master-key-77c1';
/** Azurite's documented well-known development account key (public, not a secret). */
const AZURITE_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** Log lines captured from a host. */
class LogCapture {
  readonly lines: { level: HostLogLevel; message: string }[] = [];
  readonly logger = (level: HostLogLevel, message: string): void => {
    this.lines.push({ level, message });
  };

  matching(pattern: RegExp): string[] {
    return this.lines.filter((l) => pattern.test(l.message)).map((l) => l.message);
  }

  /** Resolves with the matching lines once at least `count` exist. */
  async waitFor(pattern: RegExp, count = 1, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.matching(pattern);
      if (found.length >= count) return found;
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${count} log line(s) matching ${String(pattern)}; got ${found.length}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The fixture project, plus a file the `main` glob does not match. */
function buildHostFixtureProject(): string {
  const root = buildFixtureProject('sandboxHost', FIXTURE_SOURCES, {
    version: '2.0',
    extensions: { http: { routePrefix: 'api' }, queues: { maxDequeueCount: 3 } },
  });
  // A non-matching file proves the glob is honoured rather than the whole folder being loaded.
  writeFileSync(path.join(root, 'dist', 'functions', 'notes.txt'), 'not a function file');
  return root;
}

let projectRoot: string;

beforeAll(() => {
  projectRoot = buildHostFixtureProject();
});

afterAll(() => {
  rmSync(projectRoot, { recursive: true, force: true });
});

function hostOptions(logs: LogCapture, overrides: Partial<LocalHostOptions>): LocalHostOptions {
  return {
    projectRoot,
    port: 0,
    functionKey: FUNCTION_KEY,
    masterKey: MASTER_KEY,
    logger: logs.logger,
    appSettings: { FIXTURE_SCHEDULE: '0 0 0 1 1 *', FIXTURE_QUEUE: 'fixture-work', FIXTURE_FAIL_QUEUE: 'fixture-fail' },
    ...overrides,
  };
}

describe('NCRONTAB evaluator', () => {
  const next = (expression: string, after: string): string =>
    parseNcrontab(expression).next(new Date(after)).toISOString();

  it('finds the next occurrence for common schedules', () => {
    expect(next('*/15 * * * * *', '2024-01-01T00:00:07Z')).toBe('2024-01-01T00:00:15.000Z');
    expect(next('0 */5 * * * *', '2024-01-01T00:03:10Z')).toBe('2024-01-01T00:05:00.000Z');
    expect(next('0 30 9 * * 1-5', '2024-01-05T10:00:00Z')).toBe('2024-01-08T09:30:00.000Z');
    expect(next('0 0 0 1 JAN *', '2024-06-01T00:00:00Z')).toBe('2025-01-01T00:00:00.000Z');
    expect(next('0 0 12 29 2 *', '2023-03-01T00:00:00Z')).toBe('2024-02-29T12:00:00.000Z');
    expect(next('5/20 * * * * *', '2024-01-01T00:00:26Z')).toBe('2024-01-01T00:00:45.000Z');
    expect(next('0 0 8-12/2 * * *', '2024-01-01T08:00:00Z')).toBe('2024-01-01T10:00:00.000Z');
    expect(next('0 0 0 * * SUN,sat', '2024-01-01T00:00:00Z')).toBe('2024-01-06T00:00:00.000Z');
    expect(next('0 15,45 * * * *', '2024-12-31T23:50:00Z')).toBe('2025-01-01T00:15:00.000Z');
  });

  it('requires both day-of-month and day-of-week, as NCrontab does', () => {
    // Friday the 13th: January 2024 has none, September 2024 does.
    expect(next('0 0 0 13 * 5', '2024-01-01T00:00:00Z')).toBe('2024-09-13T00:00:00.000Z');
  });

  it('is strictly after the given instant and ignores milliseconds', () => {
    expect(next('0 * * * * *', '2024-01-01T00:01:00Z')).toBe('2024-01-01T00:02:00.000Z');
    expect(next('* * * * * *', '2024-01-01T00:00:00.999Z')).toBe('2024-01-01T00:00:01.000Z');
  });

  it('rejects malformed or impossible expressions', () => {
    expect(() => parseNcrontab('0 * * * *')).toThrow(/6 fields/);
    expect(() => parseNcrontab('61 * * * * *')).toThrow(/second/);
    expect(() => parseNcrontab('*/0 * * * * *')).toThrow(/step/);
    expect(() => parseNcrontab('0 0 0 * * 7')).toThrow(/day-of-week/);
    expect(() => parseNcrontab('0 0 0 5-1 * *')).toThrow(/descending/);
    expect(() => parseNcrontab('0 0 0 30 2 *')).toThrow(/never/);
  });
});

describe('host.json queue settings', () => {
  const settingsOf = (queues: Record<string, unknown>) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'host-json-'));
    try {
      writeFileSync(path.join(dir, 'host.json'), JSON.stringify({ version: '2.0', extensions: { queues } }));
      return readHostSettings(dir).queues;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("fetches a new batch at half the batch size by default, as the Storage extension does, or at host.json's newBatchThreshold", () => {
    expect(settingsOf({})).toMatchObject({ batchSize: 16, newBatchThreshold: 8 });
    expect(settingsOf({ batchSize: 9 })).toMatchObject({ batchSize: 9, newBatchThreshold: 4 });
    expect(settingsOf({ batchSize: 32, newBatchThreshold: 0 })).toMatchObject({ batchSize: 32, newBatchThreshold: 0 });
    expect(() => settingsOf({ newBatchThreshold: -1 })).toThrow(/newBatchThreshold/);
  });
});

describe('route templates', () => {
  it('matches parameters, optional segments, constraints and catch-alls', () => {
    const segments = (p: string): string[] => splitPath(p) ?? [];
    expect(compileRoute('mailboxes/{mailbox?}').match(segments('/mailboxes'))).toEqual({});
    expect(compileRoute('mailboxes/{mailbox?}').match(segments('/Mailboxes/a%40b.com/'))).toEqual({
      mailbox: 'a@b.com',
    });
    expect(compileRoute('items/{id:int}').match(segments('/items/x'))).toBeUndefined();
    expect(compileRoute('files/{*path}').match(segments('/files/a/b.txt'))).toEqual({ path: 'a/b.txt' });
    expect(compileRoute('v{version:int}/{name}.{ext}').match(segments('/v2/report.pdf'))).toEqual({
      version: '2',
      name: 'report',
      ext: 'pdf',
    });
    expect(compileRoute('page/{n:int=1}').match(segments('/page'))).toEqual({ n: '1' });
  });
});

describe('local Functions host: HTTP and timers', () => {
  const logs = new LogCapture();
  let host: LocalFunctionsHost;
  const call = (pathAndQuery: string, init?: RequestInit): Promise<Response> =>
    fetch(`${host.url}${pathAndQuery}`, init);

  beforeAll(async () => {
    host = await LocalFunctionsHost.start(
      hostOptions(logs, {
        enableQueues: false,
        maxRequestBodyBytes: 64 * 1024,
        appSettings: {
          FIXTURE_SCHEDULE: '*/1 * * * * *',
          FIXTURE_QUEUE: 'fixture-work',
          FIXTURE_FAIL_QUEUE: 'fixture-fail',
        },
      }),
    );
  });

  afterAll(async () => {
    await host?.stop();
  });

  it('captures registrations exactly as the app made them', () => {
    const byName = new Map(host.functions.map((f) => [f.name, f]));
    expect(byName.get('health')).toMatchObject({
      triggerType: 'http',
      route: 'health',
      methods: ['GET'],
      authLevel: 'anonymous',
    });
    expect(byName.get('defaults')).toMatchObject({ route: 'defaults', methods: ['GET', 'POST'] });
    expect(byName.get('item')).toMatchObject({ route: 'items/{id:int}' });
    expect(byName.get('adminOnly')).toMatchObject({ authLevel: 'admin' });
    expect(byName.get('tick')).toMatchObject({
      triggerType: 'timer',
      schedule: '*/1 * * * * *',
      scheduleTemplate: '%FIXTURE_SCHEDULE%',
      runOnStartup: false,
    });
    expect(byName.get('work')).toMatchObject({
      triggerType: 'queue',
      queueName: 'fixture-work',
      connection: 'AzureWebJobsStorage',
    });
    expect(host.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(host.describeFunctions()).toContain(`GET ${host.url}/api/health [anonymous]`);
  });

  it('routes by template, parameters and precedence', async () => {
    const health = await call('/api/health');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await call('/api/HEALTH/')).status).toBe(200);

    expect(await (await call('/api/items/42')).json()).toEqual({ id: '42' });
    expect(await (await call('/api/items/special')).text()).toBe('special');
    expect(await (await call('/api/mailboxes')).json()).toEqual({ mailbox: null });
    expect(await (await call('/api/mailboxes/alice%40contoso.com')).json()).toEqual({ mailbox: 'alice@contoso.com' });

    for (const missing of ['/api/items/abc', '/api/nope', '/health', '/api/mailboxes/a/b']) {
      const res = await call(missing);
      expect([missing, res.status]).toEqual([missing, 404]);
      expect(await res.text()).toBe('');
    }
  });

  it('enforces registered methods: another method is an empty 404 without Allow, as in Azure', async () => {
    const wrong = await call('/api/health', { method: 'POST' });
    expect(wrong.status).toBe(404);
    expect(wrong.headers.get('allow')).toBeNull();
    expect(await wrong.text()).toBe('');
    expect((await call('/api/mailboxes/x', { method: 'PUT' })).status).toBe(200);
    expect(await (await call('/api/defaults', { method: 'POST' })).text()).toBe('defaults via POST');
    expect(await (await call('/api/defaults')).text()).toBe('defaults via GET');
    expect((await call('/api/defaults', { method: 'DELETE' })).status).toBe(404);
  });

  it('answers a wrong method on a keyed function 404 before looking at keys, so it reveals nothing', async () => {
    // echo is POST-only at the function level: GET with no key, a wrong key and the right key all get the same 404.
    for (const query of ['', '?code=wrong', `?code=${FUNCTION_KEY}`]) {
      const res = await call(`/api/echo${query}`);
      expect([query, res.status, res.headers.get('allow')]).toEqual([query, 404, null]);
    }
  });

  it('logs a client that disconnects mid-body as one information line, without a stack', async () => {
    const before = logs.lines.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(new URL(host.url).port), '127.0.0.1', () => {
        socket.write(
          `POST /api/echo?code=${FUNCTION_KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"partial":',
          () => setTimeout(() => socket.destroy(), 100),
        );
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    const lines = await logs.waitFor(/Client disconnected before sending the whole POST \/api\/echo request body/);
    expect(lines).toHaveLength(1);
    const since = logs.lines.slice(before);
    expect(since.filter((l) => /disconnected/.test(l.message)).map((l) => l.level)).toEqual(['information']);
    expect(since.filter((l) => /Unhandled error|aborted|\n\s+at /.test(l.message))).toEqual([]);
    expect(since.filter((l) => l.level === 'error' || l.level === 'warning')).toEqual([]);
    expect((await call('/api/health')).status).toBe(200);
  });

  it('enforces auth levels with header and query keys', async () => {
    const post = (query: string, headers: Record<string, string> = {}): Promise<Response> =>
      call(`/api/echo${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{}',
      });

    const anonymous = await post('');
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toBe('');
    expect((await post('', { 'x-functions-key': 'wrong' })).status).toBe(401);
    expect((await post('?code=wrong')).status).toBe(401);
    expect((await post('', { 'x-functions-key': FUNCTION_KEY })).status).toBe(200);
    expect((await post(`?code=${FUNCTION_KEY}`)).status).toBe(200);
    expect((await post('', { 'x-functions-key': MASTER_KEY })).status).toBe(200);

    expect((await call('/api/adminOnly')).status).toBe(401);
    expect((await call('/api/adminOnly', { headers: { 'x-functions-key': FUNCTION_KEY } })).status).toBe(401);
    expect((await call(`/api/adminOnly?code=${FUNCTION_KEY}`)).status).toBe(401);
    const admin = await call('/api/adminOnly', { headers: { 'x-functions-key': MASTER_KEY } });
    expect(admin.status).toBe(200);
    expect(await admin.text()).toBe('admin ok');
    expect((await call(`/api/adminOnly?code=${MASTER_KEY}`)).status).toBe(200);
  });

  it('round-trips a JSON body with route and query parameters', async () => {
    const sent = { subject: 'Hello', to: ['a@contoso.com'], nested: { n: 1, ok: true } };
    const res = await call(`/api/echo/bob?tag=a&tag=b&code=${FUNCTION_KEY}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sent),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({
      body: sent,
      params: { name: 'bob' },
      tags: ['a', 'b'],
      method: 'POST',
      contentType: 'application/json',
    });
    expect(logs.matching(/^\[echo\] echo called$/).length).toBeGreaterThan(0);
  });

  it('answers 500 with a generic body when a handler throws, logging the error', async () => {
    const res = await call('/api/boom');
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('{"error":"Internal server error"}');
    const logged = logs.lines.filter((l) => l.level === 'error' && l.message.includes('kaboom: secret detail'));
    expect(logged[0]?.message).toMatch(/^\[boom\] Error: kaboom: secret detail\n\s+at /);
  });

  it('writes HttpResponse objects, byte and stream bodies, cookies and empty results', async () => {
    const rich = await call('/api/rich');
    expect(rich.status).toBe(201);
    expect(rich.headers.get('x-custom')).toBe('yes');
    expect(rich.headers.getSetCookie()).toEqual(['session=abc; Path=/; HttpOnly']);
    expect(await rich.text()).toBe('hi');

    const streamed = await call('/api/streamed');
    expect(streamed.headers.get('content-type')).toBe('text/plain');
    expect(await streamed.text()).toBe('streamed');

    const empty = await call('/api/empty', { method: 'DELETE' });
    expect(empty.status).toBe(204);
    expect(await empty.text()).toBe('');
  });

  it('runs appStart and invocation hooks registered by the app', async () => {
    expect(await (await call('/api/hooked')).json()).toEqual({
      hooked: true,
      appStarted: true,
      original: { jsonBody: { fromHandler: true } },
    });
  });

  it('rejects bodies over the size limit with 413', async () => {
    const res = await call(`/api/echo?code=${FUNCTION_KEY}`, { method: 'POST', body: 'x'.repeat(100 * 1024) });
    expect(res.status).toBe(413);
  });

  it('runs a timer on demand and on its %SETTING% schedule', async () => {
    const before = logs.matching(/^\[tick\] tick /).length;
    await host.runTimer('tick');
    const ticks = logs.matching(/^\[tick\] tick /);
    expect(ticks.length).toBeGreaterThan(before);
    expect(JSON.parse(ticks[ticks.length - 1].replace('[tick] tick ', ''))).toMatchObject({
      isPastDue: false,
      schedule: { adjustForDST: false },
    });
    // The every-second schedule fires on its own within a few seconds.
    await logs.waitFor(/^Executed 'Functions\.tick' \(Succeeded/, 3, 8_000);
    expect(logs.matching(/^Executing 'Functions\.tick' \(Reason='Timer fired at/).length).toBeGreaterThan(0);

    await expect(host.runTimer('health')).rejects.toThrow(/No timer function named "health"/);
    await expect(host.runTimer('nope')).rejects.toThrow(/nope/);
  });

  it('runs non-HTTP functions through the admin API with the master key only', async () => {
    const invoke = (key: string): Promise<Response> =>
      call('/admin/functions/tick', { method: 'POST', headers: { 'x-functions-key': key }, body: '{}' });
    expect((await invoke(FUNCTION_KEY)).status).toBe(401);
    expect((await invoke(MASTER_KEY)).status).toBe(202);
    expect(
      (await call('/admin/functions/health', { method: 'POST', headers: { 'x-functions-key': MASTER_KEY } })).status,
    ).toBe(404);
  });

  it('never logs key values', () => {
    const all = logs.lines.map((l) => l.message).join('\n');
    expect(all).not.toContain(FUNCTION_KEY);
    expect(all).not.toContain(MASTER_KEY);
  });
});

describe('local Functions host: startup errors', () => {
  it('names an unresolvable %SETTING%', async () => {
    const logs = new LogCapture();
    await expect(
      LocalFunctionsHost.start(
        hostOptions(logs, {
          appSettings: { FIXTURE_QUEUE: 'fixture-work', FIXTURE_FAIL_QUEUE: 'fixture-fail' },
          enableQueues: false,
        }),
      ),
    ).rejects.toThrow(/FIXTURE_SCHEDULE/);
  });

  it('names a missing storage connection setting when queues are enabled', async () => {
    const logs = new LogCapture();
    await expect(LocalFunctionsHost.start(hostOptions(logs, {}))).rejects.toThrow(/AzureWebJobsStorage/);
  });

  it('reports a main glob that matches nothing', async () => {
    const empty = path.join(projectRoot, 'empty-project');
    mkdirSync(empty, { recursive: true });
    writeFileSync(path.join(empty, 'package.json'), JSON.stringify({ main: 'dist/functions/*.js' }));
    await expect(
      LocalFunctionsHost.start(hostOptions(new LogCapture(), { projectRoot: empty, enableQueues: false })),
    ).rejects.toThrow(/No files match/);
  });
});

/** Starts Azurite's queue service on a free port (port 0) and reads the chosen port from its banner. */
async function startAzurite(): Promise<{ port: number; child: ChildProcess }> {
  const script = path.join(REPO_ROOT, 'node_modules', 'azurite', 'dist', 'src', 'queue', 'main.js');
  const child = spawn(
    process.execPath,
    [
      script,
      '--silent',
      '--inMemoryPersistence',
      '--disableTelemetry',
      '--skipApiVersionCheck',
      '--queueHost',
      '127.0.0.1',
      '--queuePort',
      '0',
    ],
    { cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start: ${output}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const match = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ port: Number(match[1]), child });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${String(code)}: ${output}`));
    });
  });
}

describe('local Functions host: queue triggers (Azurite)', () => {
  const logs = new LogCapture();
  // Unique names keep runs apart when `npm test` shares one Azurite across test files.
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  const workQueue = `fixture-work-${suffix}`;
  const failQueue = `fixture-fail-${suffix}`;
  let azurite: { port: number; child: ChildProcess } | undefined;
  let host: LocalFunctionsHost;
  let service: QueueServiceClient;

  const encode = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  const workLines = (): { message: unknown; metadata: Record<string, unknown> }[] =>
    logs
      .matching(/^\[work\] work /)
      .map((l) => JSON.parse(l.replace('[work] work ', '')) as { message: unknown; metadata: Record<string, unknown> });
  const waitForWork = async (predicate: (message: unknown) => boolean): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const found = workLines().find((l) => predicate(l.message));
      if (found) return found.metadata;
      if (Date.now() > deadline) throw new Error('The work function never received the message');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const peekAll = async (queueName: string): Promise<string[]> => {
    const peeked = await service.getQueueClient(queueName).peekMessages({ numberOfMessages: 32 });
    return peeked.peekedMessageItems.map((m) => m.messageText);
  };

  beforeAll(async () => {
    let connection = process.env.TEST_AZURITE_CONNECTION_STRING;
    if (!connection) {
      azurite = await startAzurite();
      connection =
        `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_ACCOUNT_KEY};` +
        `QueueEndpoint=http://127.0.0.1:${azurite.port}/devstoreaccount1;`;
    }
    service = QueueServiceClient.fromConnectionString(connection);
    for (const name of [workQueue, failQueue]) await service.getQueueClient(name).createIfNotExists();
    host = await LocalFunctionsHost.start(
      hostOptions(logs, {
        enableTimers: false,
        appSettings: {
          AzureWebJobsStorage: connection,
          FIXTURE_SCHEDULE: '0 0 0 1 1 *',
          // Upper case on purpose: the Storage extension lower-cases queue names.
          FIXTURE_QUEUE: workQueue.toUpperCase(),
          FIXTURE_FAIL_QUEUE: failQueue,
        },
      }),
    );
  });

  afterAll(async () => {
    await host?.stop();
    for (const name of [workQueue, failQueue, `${workQueue}-poison`, `${failQueue}-poison`]) {
      await service?.getQueueClient(name).deleteIfExists();
    }
    if (azurite) {
      const exited = once(azurite.child, 'exit');
      azurite.child.kill('SIGTERM');
      await exited;
    }
  });

  it('delivers a base64 JSON message as the parsed object with trigger metadata, then deletes it', async () => {
    const sent = await service.getQueueClient(workQueue).sendMessage(encode(JSON.stringify({ hello: 'world', n: 1 })));
    const metadata = await waitForWork((m) => typeof m === 'object' && m !== null && 'hello' in m);
    expect(workLines().find((l) => l.metadata.id === sent.messageId)?.message).toEqual({ hello: 'world', n: 1 });
    expect(metadata).toMatchObject({ id: sent.messageId, dequeueCount: 1, queueTrigger: '{"hello":"world","n":1}' });
    for (const field of ['insertionTime', 'expirationTime', 'nextVisibleTime']) {
      expect(new Date(String(metadata[field])).toISOString()).toBe(metadata[field]);
    }
    expect(typeof metadata.popReceipt).toBe('string');
    await logs.waitFor(/^Executed 'Functions\.work' \(Succeeded/);
    // Deleted after success: nothing left to peek once the invocation finished.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await peekAll(workQueue)).toEqual([]);
  });

  it('delivers non-JSON text as a string', async () => {
    await service.getQueueClient(workQueue).sendMessage(encode('just text'));
    await waitForWork((m) => m === 'just text');
  });

  it('writes queue output bindings that the queue trigger then receives', async () => {
    const res = await fetch(`${host.url}/api/enqueue`, { method: 'POST', body: JSON.stringify({ via: 'output' }) });
    expect(res.status).toBe(202);
    await waitForWork((m) => typeof m === 'object' && m !== null && 'via' in m);
  });

  it('moves a message that keeps failing to the poison queue after maxDequeueCount attempts', async () => {
    const text = encode(JSON.stringify({ doomed: true }));
    await service.getQueueClient(failQueue).sendMessage(text);
    const deadline = Date.now() + 30_000;
    let poisoned: string[] = [];
    while (poisoned.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      poisoned = await peekAll(`${failQueue}-poison`).catch(() => []);
    }
    expect(poisoned).toEqual([text]);
    // host.json sets maxDequeueCount to 3.
    expect(logs.matching(/^\[failing\] failing attempt/)).toEqual([
      '[failing] failing attempt 1',
      '[failing] failing attempt 2',
      '[failing] failing attempt 3',
    ]);
    expect(await peekAll(failQueue)).toEqual([]);
  });

  it('poisons a message that is not valid base64 without invoking the function', async () => {
    await service.getQueueClient(workQueue).sendMessage('not base64!');
    const deadline = Date.now() + 15_000;
    let poisoned: string[] = [];
    while (poisoned.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      poisoned = await peekAll(`${workQueue}-poison`).catch(() => []);
    }
    expect(poisoned).toEqual(['not base64!']);
  });
});
