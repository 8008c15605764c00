/**
 * `npm start`: the whole product on one machine with no Azure account and no Core Tools. Makes a fresh test CA,
 * starts Azurite and the local cloud (Entra ID, managed identity, Key Vault, Graph), then runs the app's functions
 * in the local Functions host as a child process that trusts the CA (NODE_EXTRA_CA_CERTS is read only at start).
 *
 * The functions run from the deployment package `npm run deploy` ships (tools/functionPackage.ts), staged in
 * `.sandbox/<PORT>/package`. Each sandbox works in its own folder `.sandbox/<PORT>/`, locked with its pid
 * (sandboxDir.ts), so a second sandbox on other ports leaves the first's CA and package alone. When PORT or
 * HTTPS_PORT is taken, or the folder belongs to a running sandbox, it stops at once and touches nothing.
 *
 * Environment: PORT (default 7071), HTTPS_PORT (default 7443: the same functions over HTTPS, which Graph's webhooks
 * call), SANDBOX_FUNCTION_KEY / SANDBOX_MASTER_KEY (default random), SANDBOX_GRAPH_LATENCY_MS (e.g. `50-150`, default
 * `20-80`), SANDBOX_DOMAIN (default contoso.com), SANDBOX_DIR (the folder holding each sandbox's `<PORT>` folder, default
 * `.sandbox`), SANDBOX_PACKAGE_DIR (run an already staged package instead of staging one, as the tests do).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { appRoot } from '../../shared/platform/packageInfo';
import { stageFunctionPackage } from '../../tools/functionPackage';
import { startAzurite, type RunningAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import { createTestCa, writeTestCa } from '../emulators/testCa';
import { startEventsReceiver, type EventsReceiver } from './eventsReceiver';
import { isPortFree } from './portCheck';
import { claimSandboxDir, SandboxDirInUseError, type SandboxDirClaim } from './sandboxDir';
import { wiredSettingsIn } from './wiredSettings';

function latency(spec: string | undefined): { min: number; max: number } {
  const match = /^(\d+)(?:-(\d+))?$/.exec(spec ?? '20-80');
  if (!match) throw new Error(`SANDBOX_GRAPH_LATENCY_MS must look like 50-150, not '${spec}'`);
  const min = Number(match[1]);
  return { min, max: Math.max(min, Number(match[2] ?? match[1])) };
}

/**
 * `SANDBOX_WEBHOOK`: `on` (default) gives the functions a webhook base Graph's emulator can call; `off` leaves
 * WEBHOOK_BASE_URL unset, as on a Function App Graph cannot reach, so that every watched mailbox is polled.
 */
function webhookSwitch(spec: string | undefined): boolean {
  const value = (spec ?? '').trim().toLowerCase();
  if (value === '' || value === 'on') return true;
  if (value === 'off') return false;
  throw new Error(`SANDBOX_WEBHOOK must be on or off, not '${spec}'`);
}

async function waitForHealth(url: string, host: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (host.exitCode !== null) throw new Error(`the functions host exited with code ${host.exitCode}`);
    let invalid: { type?: string; detail?: string } | undefined;
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
      if (res.status === 503) invalid = (await res.json()) as { type?: string; detail?: string };
    } catch {
      // not listening yet
    }
    // A setting from the environment (e.g. ALLOWED_SENDERS) is malformed: waiting will not fix it.
    if (invalid?.type?.endsWith('/configuration-invalid')) throw new Error(invalid.detail);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s`);
}

/**
 * The CA file the functions trust: the sandbox's CA, plus the CAs of a NODE_EXTRA_CA_CERTS set in the environment
 * (e.g. a corporate proxy's), so that setting is honoured rather than replaced.
 */
function trustBundle(caPath: string, extra: string | undefined): string {
  if (!extra?.trim() || !existsSync(extra)) return caPath;
  const bundle = join(dirname(caPath), 'trusted.pem');
  writeFileSync(bundle, `${readFileSync(caPath, 'utf8')}\n${readFileSync(extra, 'utf8')}`);
  return bundle;
}

/** A node one-liner that prints one field of the JSON on its stdin (no jq needed). */
const JSON_FIELD = (field: string) => `node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).${field}'`;

/** One `export` line setting each variable, each value single-quoted for POSIX shells (paths may hold spaces). */
function shellExports(vars: Record<string, string>): string {
  const quote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  return `export ${Object.entries(vars)
    .map(([name, value]) => `${name}=${quote(value)}`)
    .join(' ')}`;
}

/** The first mail the banner suggests: text plus a small attachment. */
function firstMail(domain: string): string {
  return JSON.stringify({
    from: `alerts@${domain}`,
    to: [`someone@${domain}`],
    subject: 'Hello from the mail gateway',
    text: 'It works.',
    attachments: [
      {
        name: 'hello.txt',
        contentType: 'text/plain',
        contentBase64: Buffer.from('Hello, attachment!\n').toString('base64'),
      },
    ],
  });
}

async function main(): Promise<void> {
  const root = appRoot();
  const port = Number(process.env.PORT ?? 7071);
  const httpsPort = Number(process.env.HTTPS_PORT ?? 7443);
  const functionKey = process.env.SANDBOX_FUNCTION_KEY || randomBytes(24).toString('base64url');
  const masterKey = process.env.SANDBOX_MASTER_KEY || randomBytes(24).toString('base64url');
  // Before anything is written: a second sandbox must not replace the running one's CA, package or banner.
  const wired = wiredSettingsIn(process.env);
  if (wired.length > 0) {
    console.error(
      `The sandbox cannot start: ${wired.join(', ')} ${wired.length === 1 ? 'is' : 'are'} set in the environment, ` +
        `but the sandbox sets ${wired.length === 1 ? 'it' : 'them'} to its local cloud and Azurite. Unset ` +
        `${wired.length === 1 ? 'it' : 'them'} (e.g. env -u ${wired[0]} npm start). Nothing was changed.`,
    );
    process.exit(1);
  }
  let webhook: boolean;
  try {
    webhook = webhookSwitch(process.env.SANDBOX_WEBHOOK);
  } catch (err) {
    console.error(`The sandbox cannot start: ${(err as Error).message}. Nothing was changed.`);
    process.exit(1);
  }
  for (const [name, value] of [
    ['PORT', port],
    ['HTTPS_PORT', httpsPort],
  ] as const) {
    if (!(await isPortFree(value))) {
      console.error(
        `The sandbox cannot start: port ${value} on 127.0.0.1 (${name}) is already in use, perhaps by another ` +
          `sandbox. Stop that one, or set ${name} to a free port. Nothing was changed.`,
      );
      process.exit(1);
    }
  }
  // Its own folder per PORT, so the default sandbox's paths are predictable and a second one never shares them.
  let claim: SandboxDirClaim;
  try {
    claim = claimSandboxDir(join(resolve(process.env.SANDBOX_DIR || join(root, '.sandbox')), String(port)));
  } catch (err) {
    if (!(err instanceof SandboxDirInUseError)) throw err;
    console.error(`The sandbox cannot start: ${err.message} Nothing was changed.`);
    process.exit(1);
  }
  const sandboxDir = claim.dir;
  const ca = createTestCa();
  const caPath = writeTestCa(ca, join(sandboxDir, 'ca'));

  let azurite: RunningAzurite | undefined;
  let cloud: LocalCloud | undefined;
  let receiver: EventsReceiver | undefined;
  let host: ChildProcess | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (host && host.exitCode === null) {
      const exited = new Promise((r) => host!.once('exit', r));
      host.kill('SIGTERM');
      await exited;
    }
    await cloud?.close();
    await receiver?.close();
    await azurite?.stop();
    claim.release();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const packageDir = process.env.SANDBOX_PACKAGE_DIR
      ? resolve(process.env.SANDBOX_PACKAGE_DIR)
      : (await stageFunctionPackage(root, join(sandboxDir, 'package'))).dir;
    azurite = await startAzurite({ projectRoot: root });
    cloud = await LocalCloud.start({
      ca,
      domain: process.env.SANDBOX_DOMAIN || 'contoso.com',
      graph: { latencyMs: latency(process.env.SANDBOX_GRAPH_LATENCY_MS) },
    });
    const signingSecret = `whsec_${randomBytes(32).toString('base64')}`;
    receiver = await startEventsReceiver(ca, signingSecret);
    const domain = cloud.tenant.domain;
    const cloudSettings = cloud.settings();
    const hostEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...cloudSettings,
      // Policies are the developer's to try: a value from the environment wins over the sandbox's default.
      ALLOWED_SENDERS: process.env.ALLOWED_SENDERS?.trim() || cloudSettings.ALLOWED_SENDERS,
      ALLOWED_WATCH_MAILBOXES: process.env.ALLOWED_WATCH_MAILBOXES?.trim() || `*@${domain}`,
      ALLOWED_READ_MAILBOXES: process.env.ALLOWED_READ_MAILBOXES?.trim() || `*@${domain}`,
      AzureWebJobsStorage: azurite.connectionString,
      NODE_EXTRA_CA_CERTS: trustBundle(caPath, process.env.NODE_EXTRA_CA_CERTS),
      ...(webhook ? { WEBHOOK_BASE_URL: `https://127.0.0.1:${httpsPort}` } : {}),
      EVENTS_WEBHOOK_URL: receiver.url,
      EVENTS_SIGNING_SECRET: signingSecret,
      PORT: String(port),
      HTTPS_PORT: String(httpsPort),
      SANDBOX_CA_DIR: join(sandboxDir, 'ca'),
      SANDBOX_PROJECT_ROOT: packageDir,
      SANDBOX_FUNCTION_KEY: functionKey,
      SANDBOX_MASTER_KEY: masterKey,
    };
    host = spawn(process.execPath, [join(root, 'dist', 'test', 'sandbox', 'host', 'main.js')], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: hostEnv,
    });
    host.on('exit', (code) => {
      if (!stopping) {
        console.error(`The functions host stopped (exit code ${code ?? 'none'}); stopping the sandbox.`);
        void stop(code || 1);
      }
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForHealth(`${base}/api/health`, host);

    const users = [...cloud.tenant.users.values()].map((u) => u.mail);
    const senders = (hostEnv.ALLOWED_SENDERS ?? '').split(',').map((s) => s.trim());
    const exports = shellExports({
      GW: base,
      KEY: functionKey,
      MASTER_KEY: masterKey,
      GRAPH: cloud.graph.url,
      CA: caPath,
      EVENTS: receiver.url,
    });
    console.log(
      [
        '',
        'Sandbox ready: the mail gateway on the local cloud (no Azure account needed).',
        '',
        webhook
          ? `  Functions     ${base}/api/...  and https://127.0.0.1:${httpsPort}/api/... (what Graph's webhooks call)`
          : `  Functions     ${base}/api/...  and https://127.0.0.1:${httpsPort}/api/...`,
        ...(webhook
          ? []
          : [
              `  Webhooks      off (SANDBOX_WEBHOOK=off): WEBHOOK_BASE_URL is unset, so watched mailboxes are polled ` +
                `every ${process.env.POLL_INTERVAL_SECONDS?.trim() || '60'} s (POLL_INTERVAL_SECONDS)`,
            ]),
        `  Function key  ${functionKey}   (x-functions-key header or ?code=; set SANDBOX_FUNCTION_KEY to choose)`,
        `  Master key    ${masterKey}   (admin functions; set SANDBOX_MASTER_KEY to choose)`,
        `  Entra ID      ${cloud.entra.url}  tenant ${cloud.tenant.tenantId}, app ${cloud.app.clientId}`,
        `  Key Vault     ${cloud.keyVault.url}  credential '${cloud.credentialName}' (certificate)`,
        `  Graph         ${cloud.graph.url}  (API under /v1.0, inspection under /_emulator) mailboxes: ${users.join(', ')}`,
        `  Storage       Azurite ${azurite.queueUrl} (queues), ${azurite.tableUrl} (tables)`,
        `  Events        queue 'mail-events', and the signed webhook ${receiver.url} (this console prints each one)`,
        `  Test CA       ${caPath}`,
        `  Package       ${packageDir}  (the bundle \`npm run deploy\` publishes)`,
        `  Senders       ALLOWED_SENDERS=${senders.join(',')}`,
        '',
        "Paste this into your shell first; the commands below and the README's sandbox commands use it:",
        '',
        `  ${exports}`,
        '',
        'Try:',
        '  curl "$GW/api/health"',
        '',
        `  # send a mail with an attachment as alerts@ (if ALLOWED_SENDERS allows it)`,
        '  curl -i -X POST "$GW/api/mail/send" -H "x-functions-key: $KEY" -H "content-type: application/json" \\',
        `    -d '${firstMail(domain)}'`,
        '',
        "  # see it arrive in the recipient's emulated Inbox",
        `  curl --cacert "$CA" "$GRAPH/_emulator/mailboxes/someone@${domain}/inbox"`,
        '',
        `  # watch support@ (ALLOWED_WATCH_MAILBOXES=${hostEnv.ALLOWED_WATCH_MAILBOXES}); SUB = its subscription id` +
          (webhook ? '' : ' (null: polled)'),
        `  SUB=$(curl -sS -X PUT -H "x-functions-key: $KEY" "$GW/api/mailboxes/support@${domain}" | ${JSON_FIELD('subscriptionId')})`,
        '',
        '  # mail it: a mail.received event appears in this console and in the list of received events',
        '  curl -X POST "$GW/api/mail/send" -H "x-functions-key: $KEY" -H "content-type: application/json" \\',
        `    -d '{"from":"alerts@${domain}","to":["support@${domain}"],"subject":"Watch me","text":"hi"}'`,
        '  curl --cacert "$CA" "$EVENTS"',
        '',
        ...(webhook
          ? [
              '  # lose notifications, then have Graph say so: the gateway catches up with delta',
              '  curl --cacert "$CA" -X POST "$GRAPH/_emulator/subscriptions/$SUB/drop-notifications?on=true"',
              '  #   ... send support@ a mail or two (as above): no event ...',
              '  curl --cacert "$CA" -X POST "$GRAPH/_emulator/subscriptions/$SUB/drop-notifications?on=false"',
              '  curl --cacert "$CA" -X POST "$GRAPH/_emulator/subscriptions/$SUB/lifecycle?event=missed"',
              '',
            ]
          : []),
        `  # is everything wired right? (admin)`,
        '  curl -H "x-functions-key: $MASTER_KEY" "$GW/api/diagnostics"',
        '',
        'Ctrl+C stops everything.',
        '',
      ].join('\n'),
    );
  } catch (err) {
    console.error(`The sandbox could not start: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

void main();
