import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortBelowEphemeral } from '../emulators/azurite';
import { wiredSettingsIn } from '../sandbox/wiredSettings';

const ROOT = join(__dirname, '..', '..');
const FUNCTION_KEY = 'sandbox-function-key-for-tests';
const MASTER_KEY = 'sandbox-master-key-for-tests';

function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 45_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!pattern.test(output)) reject(new Error(`exited with ${code} before ${String(pattern)}:\n${output}`));
    });
  });
}

/** Stops a sandbox as Ctrl+C does and resolves its exit code. */
async function interrupt(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  return exited;
}

/** GET over HTTPS trusting only `ca`: what `curl --cacert <ca>` does. */
function getWithCa(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/**
 * The environment of a sandbox started by a test: its ports, and a folder of the test's own in place of the
 * developer's `.sandbox` (the sandbox works in its `<PORT>` folder under it).
 */
function sandboxEnv(dir: string, port: number, httpsPort: number): NodeJS.ProcessEnv {
  // Without the settings the sandbox wires itself, which it refuses from the environment: another test file run
  // earlier in this jest worker may have left its local cloud's settings in process.env.
  const inherited = { ...process.env };
  for (const name of wiredSettingsIn(inherited)) delete inherited[name];
  return {
    ...inherited,
    PORT: String(port),
    HTTPS_PORT: String(httpsPort),
    SANDBOX_DIR: dir,
    // The package npm test staged once: the bundle `npm run deploy` ships.
    SANDBOX_PACKAGE_DIR: process.env.TEST_PACKAGE_DIR,
    SANDBOX_FUNCTION_KEY: FUNCTION_KEY,
    SANDBOX_MASTER_KEY: MASTER_KEY,
    // A policy of the developer's own, which the sandbox must honour (its default also allows billing@); support@
    // answers mail in the README's helpdesk loop.
    ALLOWED_SENDERS: 'alerts@contoso.com,support@contoso.com',
  };
}

/** The README's sandbox-command blocks with `marker` (`<!-- sandbox-command<marker> -->`), in order. */
function readmeBlocks(marker = ''): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [
    ...readme.matchAll(new RegExp(`<!-- sandbox-command${marker} -->\\n\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``, 'g')),
  ].map((m) => m[1]);
}

/**
 * Runs `blocks` in bash after the banner's `exportLine`. Unset variables are errors (set -u), and an HTTP error fails
 * the command (--fail-with-body); each answer's status is recorded on stderr, so the test sees every command's
 * outcome, in order.
 */
async function runBlocks(
  exportLine: string,
  blocks: string[],
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const script = [
    'set -euo pipefail',
    // Each answer on a line of its own on stdout, its status on stderr.
    `curl() { command curl -sS --fail-with-body -w '%{stderr}::status %{http_code}\\n%{stdout}\\n' "$@"; }`,
    exportLine,
    ...blocks.flatMap((block, i) => [`echo "::block ${i + 1}" >&2`, block]),
    'echo "::done" >&2',
  ].join('\n');
  const bash = spawn('bash', ['-c', script], { cwd: tmpdir(), env: { PATH: process.env.PATH } });
  let stdout = '';
  let stderr = '';
  bash.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  bash.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => bash.once('exit', r));
  return { code, stderr, stdout };
}

/** Only the exported variables: a literal address would reach whatever listens on 7071, not the sandbox. */
function expectOnlyExportedAddresses(blocks: string[]): void {
  for (const block of blocks) {
    const commands = block.split('\n').filter((line) => !line.trimStart().startsWith('#'));
    expect(commands.join('\n')).not.toMatch(/127\.0\.0\.1|<[a-z -]+>|\.sandbox\//);
  }
}

/** The `::block`/status lines of a run, in order. */
function statusesOf(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('::'))
    .map((line) => line.replace('::status ', ''));
}

describe('npm start (the sandbox, built by npm test)', () => {
  let sandbox: ChildProcess;
  let base: string;
  let banner: string;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
    port = await freePortBelowEphemeral();
    base = `http://127.0.0.1:${port}`;
    sandbox = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], {
      cwd: ROOT,
      env: sandboxEnv(dir, port, await freePortBelowEphemeral()),
    });
    banner = await waitForOutput(sandbox, /Ctrl\+C stops everything/);
  });

  afterAll(async () => {
    if (sandbox.exitCode === null) {
      const exited = new Promise((r) => sandbox.once('exit', r));
      sandbox.kill('SIGINT');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the URLs, the keys, an export line for the shell and a first curl', () => {
    const ca = join(dir, String(port), 'ca', 'ca.pem');
    expect(banner).toMatch(
      new RegExp(
        `^  export GW=${base} KEY=${FUNCTION_KEY} MASTER_KEY=${MASTER_KEY} ` +
          `GRAPH=https://127\\.0\\.0\\.1:\\d+ CA=${ca} EVENTS=https://127\\.0\\.0\\.1:\\d+/events$`,
        'm',
      ),
    );
    expect(banner).toContain('curl "$GW/api/health"');
    expect(banner).toMatch(/Graph\s+https:\/\/127\.0\.0\.1:\d+ {2}\(API under \/v1\.0/);
  });

  it("runs every sandbox command of the README as printed, with the banner's export line", async () => {
    const exportLine = /^ {2}(export .+)$/m.exec(banner)![1];
    const blocks = readmeBlocks();
    expect(blocks).toHaveLength(9);
    expectOnlyExportedAddresses(blocks);
    const { code, stderr, stdout } = await runBlocks(exportLine, blocks);
    expect({ code, stderr, stdout }).toMatchObject({ code: 0, stderr: expect.stringContaining('::done') as unknown });
    expect(statusesOf(stderr)).toEqual([
      '::block 1',
      '200', // health
      '200', // diagnostics
      '::block 2',
      '200', // alerts@'s inbox
      '::block 3',
      '202', // send
      '200', // its status
      '::block 4',
      '202', // send with an attachment
      '200', // someone@'s inbox
      '::block 5',
      '201', // watch support@
      '202', // mail it
      '200', // the events received
      '::block 6',
      '200', // drop notifications
      '200', // stop dropping
      '200', // missed lifecycle event
      '::block 7',
      '201', // watch it@ by polling
      '202', // mail it
      '200', // show it
      '::block 8',
      '200', // drop support@'s notifications
      '202', // mail it
      '200', // stop dropping
      '200', // show support@
      '::block 9',
      '200', // watch support@ again, with content
      '200', // mail it a file, waiting for it to be sent
      '200', // the events received
      '200', // list: the newest message
      '200', // read it
      '200', // its attachment
      '200', // reply with a file, waiting for it to be sent
      '200', // alerts@'s inbox
      '200', // mark read and complete
      '200', // move to Archive
      '::done',
    ]);
    // The mail status command answered with the id the send gave ID, and SUB reached Graph's emulator.
    expect(stdout).toMatch(/"status":"(queued|sending|sent)"/);
  }, 60_000);

  it("keeps its CA in its own folder and runs the staged bundle, not the repository's build", () => {
    expect(banner).toContain(`Test CA       ${join(dir, String(port), 'ca', 'ca.pem')}`);
    expect(existsSync(join(dir, String(port), 'ca', 'ca.pem'))).toBe(true);
    expect(readFileSync(join(dir, String(port), 'sandbox.pid'), 'utf8').trim()).toBe(String(sandbox.pid));
    const packageDir = process.env.TEST_PACKAGE_DIR!;
    expect(banner).toContain(`Local Functions host for ${packageDir} is listening`);
    expect(banner).toContain(`Package       ${packageDir}`);
  });

  it('honours ALLOWED_SENDERS from the environment, and says so in the banner', async () => {
    expect(banner).toContain('Senders       ALLOWED_SENDERS=alerts@contoso.com,support@contoso.com\n');
    const res = await fetch(`${base}/api/mail/send`, {
      method: 'POST',
      headers: { 'x-functions-key': FUNCTION_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'billing@contoso.com', to: ['someone@contoso.com'], subject: 'x', text: 'x' }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ type: expect.stringMatching(/sender-not-allowed$/) as unknown });
  });

  it('serves /api/health anonymously', async () => {
    const res = await fetch(`${base}/api/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', cloud: 'global' });
  });

  it('enforces the admin level of /api/diagnostics as Azure does', async () => {
    expect((await fetch(`${base}/api/diagnostics`)).status).toBe(401);
    expect((await fetch(`${base}/api/diagnostics`, { headers: { 'x-functions-key': FUNCTION_KEY } })).status).toBe(401);
  });

  it('runs the token helper end to end: managed identity, Key Vault, Entra, with every check ok', async () => {
    const res = await fetch(`${base}/api/diagnostics?code=${MASTER_KEY}`);
    const report = (await res.json()) as {
      status: string;
      checks: { name: string; status: string; roles?: string[] }[];
    };
    expect(res.status).toBe(200);
    expect(report.checks.map((c) => `${c.name}:${c.status}`)).toEqual([
      'keyVault:ok',
      'credentialExpiry:ok',
      'token:ok',
      'permissions:ok',
      'watchPermission:ok',
      'featurePermissions:ok',
      'tableStorage:ok',
      'queueStorage:ok',
    ]);
    expect(report.checks[2].roles).toEqual(expect.arrayContaining(['Mail.Send', 'Mail.ReadWrite']));
  });

  it("lets a second sandbox on other ports run beside it, which leaves this one's CA and emulators alone", async () => {
    const caPath = join(dir, String(port), 'ca', 'ca.pem');
    const ca = readFileSync(caPath);
    const graph = /Graph\s+(https:\/\/127\.0\.0\.1:\d+)/.exec(banner)![1];
    const inbox = `${graph}/_emulator/mailboxes/someone@contoso.com/inbox`;
    expect((await getWithCa(inbox, ca)).status).toBe(200);

    const secondPort = await freePortBelowEphemeral();
    const second = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], {
      cwd: ROOT,
      env: sandboxEnv(dir, secondPort, await freePortBelowEphemeral()),
    });
    try {
      const secondBanner = await waitForOutput(second, /Ctrl\+C stops everything/);
      expect(secondBanner).toContain(`Test CA       ${join(dir, String(secondPort), 'ca', 'ca.pem')}`);
      expect(readFileSync(caPath).equals(ca)).toBe(true);
      expect((await getWithCa(inbox, ca)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${secondPort}/api/health`)).status).toBe(200);
    } finally {
      expect(await interrupt(second)).toBe(0);
    }
    // Its Ctrl+C released its own folder's lock, not this one's.
    expect(existsSync(join(dir, String(secondPort), 'sandbox.pid'))).toBe(false);
    expect(readFileSync(join(dir, String(port), 'sandbox.pid'), 'utf8').trim()).toBe(String(sandbox.pid));
    expect(readFileSync(caPath).equals(ca)).toBe(true);
    expect((await getWithCa(inbox, ca)).status).toBe(200);
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
  }, 90_000);

  it('stops cleanly on Ctrl+C', async () => {
    const exited = new Promise<number | null>((r) => sandbox.once('exit', (code) => r(code)));
    sandbox.kill('SIGINT');
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/api/health`)).rejects.toThrow();
    expect(existsSync(join(dir, String(port), 'sandbox.pid'))).toBe(false);
  });
});

describe('npm start with SANDBOX_WEBHOOK=off (WEBHOOK_BASE_URL unset)', () => {
  let sandbox: ChildProcess;
  let banner: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
    const port = await freePortBelowEphemeral();
    sandbox = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], {
      cwd: ROOT,
      env: {
        ...sandboxEnv(dir, port, await freePortBelowEphemeral()),
        SANDBOX_WEBHOOK: 'off',
        POLL_INTERVAL_SECONDS: '15',
      },
    });
    banner = await waitForOutput(sandbox, /Ctrl\+C stops everything/);
  });

  afterAll(async () => {
    await interrupt(sandbox);
    rmSync(dir, { recursive: true, force: true });
  });

  it("watches by polling and runs the README's webhook-off commands as printed", async () => {
    expect(banner).toContain('Webhooks      off (SANDBOX_WEBHOOK=off): WEBHOOK_BASE_URL is unset');
    const exportLine = /^ {2}(export .+)$/m.exec(banner)![1];
    const blocks = readmeBlocks(' webhook-off');
    expect(blocks).toHaveLength(1);
    expectOnlyExportedAddresses(blocks);
    const { code, stderr, stdout } = await runBlocks(exportLine, blocks);
    expect({ code, stderr, stdout }).toMatchObject({ code: 0, stderr: expect.stringContaining('::done') as unknown });
    expect(statusesOf(stderr)).toEqual([
      '::block 1',
      '201', // watch support@: polled, no subscription
      '202', // mail it
      '200', // its event, waited for
      '200', // show support@
      '::done',
    ]);
    expect(stdout).toContain('"modeReason":"WEBHOOK_BASE_URL is not set"');
    expect(stdout).toContain('"subscriptionId":null');
    // The event arrived by polling, and only one for the mail.
    const events = JSON.parse(stdout.split('\n').find((line) => line.startsWith('{"value":'))!) as {
      value: { event: { type: string; data: { subject: string; mailbox: string } } }[];
    };
    expect(events.value.map((e) => [e.event.type, e.event.data.mailbox, e.event.data.subject])).toEqual([
      ['mail.received', 'support@contoso.com', 'No webhook, still watched'],
    ]);
  }, 90_000);
});

describe('npm start on a busy port', () => {
  let blocker: Server;
  let dir: string;

  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    dir = mkdtempSync(join(tmpdir(), 'sandbox-busy-'));
  });
  afterAll(async () => {
    await new Promise((resolve) => blocker.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['PORT', 'HTTPS_PORT'])(
    'stops at once naming the %s it cannot have, prints no banner and leaves the running CA alone',
    async (busy) => {
      const taken = (blocker.address() as { port: number }).port;
      const free = await freePortBelowEphemeral();
      const port = busy === 'PORT' ? taken : free;
      // What a running sandbox keeps in its folder: this start must not replace it.
      mkdirSync(join(dir, String(port), 'ca'), { recursive: true });
      writeFileSync(join(dir, String(port), 'ca', 'ca.pem'), 'the running sandbox CA');
      const env = sandboxEnv(dir, port, busy === 'PORT' ? free : taken);
      const second = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], { cwd: ROOT, env });
      let output = '';
      second.stdout.on('data', (d: Buffer) => (output += d.toString()));
      second.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((r) => second.once('exit', r));
      expect(code).toBe(1);
      expect(output).toContain(`port ${taken} on 127.0.0.1 (${busy}) is already in use`);
      expect(output).not.toContain('Sandbox ready');
      expect(output).not.toMatch(/Function key|Master key/);
      expect(readFileSync(join(dir, String(port), 'ca', 'ca.pem'), 'utf8')).toBe('the running sandbox CA');
      expect(readdirSync(join(dir, String(port)))).toEqual(['ca']);
    },
  );

  it('stops at once when its folder belongs to a sandbox still starting (its lock names a live pid)', async () => {
    // A sandbox stages its package before its host binds PORT, so the port check alone cannot see it yet.
    const port = await freePortBelowEphemeral();
    const folder = join(dir, String(port));
    mkdirSync(join(folder, 'ca'), { recursive: true });
    writeFileSync(join(folder, 'ca', 'ca.pem'), 'the starting sandbox CA');
    writeFileSync(join(folder, 'sandbox.pid'), `${process.pid}\n`);
    const second = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], {
      cwd: ROOT,
      env: sandboxEnv(dir, port, await freePortBelowEphemeral()),
    });
    let output = '';
    const onData = (d: Buffer) => {
      output += d.toString();
      // Had it taken the folder, stop it rather than leave a sandbox running after the test.
      if (output.includes('Ctrl+C stops everything')) second.kill('SIGINT');
    };
    second.stdout.on('data', onData);
    second.stderr.on('data', onData);
    const code = await new Promise<number | null>((r) => second.once('exit', r));
    expect(code).toBe(1);
    expect(output).toContain(`${folder} belongs to a running sandbox (pid ${process.pid})`);
    expect(output).not.toContain('Sandbox ready');
    expect(readFileSync(join(folder, 'ca', 'ca.pem'), 'utf8')).toBe('the starting sandbox CA');
    expect(readFileSync(join(folder, 'sandbox.pid'), 'utf8')).toBe(`${process.pid}\n`);
    expect(readdirSync(folder).sort()).toEqual(['ca', 'sandbox.pid']);
  });
});

/** Runs `npm start`'s script with `env` until it exits: its exit code and everything it printed. */
async function startToExit(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], { cwd: ROOT, env });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  return { code, output };
}

describe('npm start with a malformed setting of its own in the environment', () => {
  it('stops at once, naming the setting, without its value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-bad-setting-'));
    try {
      const env = {
        ...sandboxEnv(dir, await freePortBelowEphemeral(), await freePortBelowEphemeral()),
        ALLOWED_SENDERS: 'everyone-here',
      };
      const { code, output } = await startToExit(env);
      expect(code).toBe(1);
      expect(output).toMatch(/The sandbox could not start: Fix these app settings[^\n]*: ALLOWED_SENDERS must be/);
      expect(output).not.toContain('Sandbox ready');
      expect(output).not.toMatch(/did not answer 200/);
      expect(output).not.toContain('everyone-here');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('npm start with SANDBOX_WEBHOOK neither on nor off', () => {
  it('stops at once, naming it, and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-bad-webhook-'));
    try {
      const env = {
        ...sandboxEnv(dir, await freePortBelowEphemeral(), await freePortBelowEphemeral()),
        SANDBOX_WEBHOOK: 'maybe',
      };
      const { code, output } = await startToExit(env);
      expect(code).toBe(1);
      expect(output).toContain("The sandbox cannot start: SANDBOX_WEBHOOK must be on or off, not 'maybe'.");
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm start with a setting the sandbox wires itself', () => {
  it('refuses to start, naming each such setting, and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-wired-'));
    try {
      const port = await freePortBelowEphemeral();
      const env = {
        ...sandboxEnv(dir, port, await freePortBelowEphemeral()),
        ENTRA_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
        AzureWebJobsStorage__accountName: 'stmail',
      };
      const child = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], { cwd: ROOT, env });
      let output = '';
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes('Ctrl+C stops everything')) child.kill('SIGINT');
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code).toBe(1);
      expect(output).toContain(
        'The sandbox cannot start: AzureWebJobsStorage__accountName, ENTRA_CLIENT_ID are set in the environment',
      );
      expect(output).not.toContain('Sandbox ready');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
