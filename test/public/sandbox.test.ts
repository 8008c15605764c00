import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../emulators/azurite';

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

describe('npm start (the sandbox, built by npm test)', () => {
  let sandbox: ChildProcess;
  let base: string;
  let banner: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    sandbox = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'start.js')], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), SANDBOX_FUNCTION_KEY: FUNCTION_KEY, SANDBOX_MASTER_KEY: MASTER_KEY },
    });
    banner = await waitForOutput(sandbox, /Ctrl\+C stops everything/);
  });

  afterAll(async () => {
    if (sandbox.exitCode === null) {
      const exited = new Promise((r) => sandbox.once('exit', r));
      sandbox.kill('SIGINT');
      await exited;
    }
  });

  it('prints the URLs, the keys and a first curl', () => {
    expect(banner).toContain(`curl ${base}/api/health`);
    expect(banner).toContain(FUNCTION_KEY);
    expect(banner).toMatch(/Graph\s+https:\/\/127\.0\.0\.1:\d+\/v1\.0/);
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
      'tableStorage:ok',
      'queueStorage:ok',
    ]);
    expect(report.checks[2].roles).toEqual(expect.arrayContaining(['Mail.Send', 'Mail.ReadWrite']));
  });

  it('stops cleanly on Ctrl+C', async () => {
    const exited = new Promise<number | null>((r) => sandbox.once('exit', (code) => r(code)));
    sandbox.kill('SIGINT');
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/api/health`)).rejects.toThrow();
  });
});

describe('the functions host with a bad configuration', () => {
  it('stops at start-up naming the missing setting', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(await freePort()),
      SANDBOX_FUNCTION_KEY: FUNCTION_KEY,
      SANDBOX_MASTER_KEY: MASTER_KEY,
    };
    for (const name of [
      'ENTRA_TENANT_ID',
      'ENTRA_CLIENT_ID',
      'KEY_VAULT_URL',
      'APP_CREDENTIAL_NAME',
      'AzureWebJobsStorage',
    ])
      delete env[name];
    env.ENTRA_TENANT_ID = 'contoso.onmicrosoft.com';
    env.KEY_VAULT_URL = 'https://kv.vault.azure.net';
    env.APP_CREDENTIAL_NAME = 'cred';
    env.AzureWebJobsStorage = 'UseDevelopmentStorage=true';
    const host = spawn(process.execPath, [join(ROOT, 'dist', 'test', 'sandbox', 'host', 'main.js')], {
      cwd: ROOT,
      env,
    });
    let output = '';
    host.stdout.on('data', (d: Buffer) => (output += d.toString()));
    host.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((r) => host.once('exit', r));
    expect(code).not.toBe(0);
    expect(output).toContain('ENTRA_CLIENT_ID is missing');
  });
});
