import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUTBOX_QUEUE, OutboxStore } from '../../shared/outbox/store/outboxStore';
import { CLOUD_NAMES, CLOUDS } from '../../shared/platform/clouds';
import { ConfigError, loadConfig, SETTINGS } from '../../shared/platform/config';
import { createQueueClient } from '../../shared/platform/storage/storage';
import { MAX_DEQUEUE_COUNT } from '../../shared/platform/queues/queueTrigger';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const ROOT = join(__dirname, '..', '..');

const VALID: Record<string, string> = {
  ENTRA_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  ENTRA_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
  KEY_VAULT_URL: 'https://kv-mail.vault.azure.net/',
  APP_CREDENTIAL_NAME: 'mail-gateway-credential',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  ALLOWED_SENDERS: 'alerts@contoso.com',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('cloud table', () => {
  // Hosts as Microsoft documents them (docs/GRAPH-FACTS.md, "Clouds").
  it.each([
    ['global', 'https://login.microsoftonline.com', 'https://graph.microsoft.com', 'vault.azure.net'],
    ['gcc-high', 'https://login.microsoftonline.us', 'https://graph.microsoft.us', 'vault.usgovcloudapi.net'],
    ['dod', 'https://login.microsoftonline.us', 'https://dod-graph.microsoft.us', 'vault.usgovcloudapi.net'],
    ['china', 'https://login.chinacloudapi.cn', 'https://microsoftgraph.chinacloudapi.cn', 'vault.azure.cn'],
  ])('%s resolves to its documented hosts', (cloud, authority, graph, vaultSuffix) => {
    const config = loadConfig({ ...VALID, AZURE_CLOUD: cloud, KEY_VAULT_URL: `https://kv.${vaultSuffix}` });
    expect(config.cloudName).toBe(cloud);
    expect(config.endpoints).toEqual({
      authorityHost: authority,
      graphBaseUrl: graph,
      graphScope: `${graph}/.default`,
      keyVaultDnsSuffix: vaultSuffix,
    });
    expect(config.customAuthority).toBe(false);
    expect(config.keyVault.verifyChallengeResource).toBe(true);
  });

  it('covers exactly the documented clouds', () => {
    expect([...CLOUD_NAMES].sort()).toEqual(['china', 'dod', 'gcc-high', 'global']);
    expect(Object.keys(CLOUDS).sort()).toEqual([...CLOUD_NAMES].sort());
  });

  it('defaults to the global cloud', () => {
    expect(loadConfig(VALID).endpoints.graphBaseUrl).toBe('https://graph.microsoft.com');
  });

  it('fails clearly on an unknown cloud name', () => {
    expect(problemsOf({ ...VALID, AZURE_CLOUD: 'germany' })).toEqual([
      'AZURE_CLOUD is not a known cloud; use one of global, gcc-high, dod, china',
    ]);
  });
});

describe('required settings', () => {
  it.each(SETTINGS.filter((s) => s.required).map((s) => s.name))('a missing %s stops start-up naming it', (name) => {
    const env = { ...VALID };
    delete env[name];
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name} .*missing`));
  });

  it('reports every problem at once, and the error message lists them', () => {
    const err = (() => {
      try {
        return loadConfig({ AZURE_CLOUD: 'mars' });
      } catch (e) {
        return e as ConfigError;
      }
    })() as ConfigError;
    expect(err.problems.map((p) => p.split(' ')[0]).sort()).toEqual(
      [
        'ALLOWED_SENDERS',
        'APP_CREDENTIAL_NAME',
        'AZURE_CLOUD',
        'AzureWebJobsStorage',
        'ENTRA_CLIENT_ID',
        'ENTRA_TENANT_ID',
        'KEY_VAULT_URL',
      ].sort(),
    );
    expect(err.message).toContain('ENTRA_TENANT_ID is missing');
  });

  it('treats a blank value as missing', () => {
    expect(problemsOf({ ...VALID, ENTRA_CLIENT_ID: '   ' })).toEqual(['ENTRA_CLIENT_ID is missing']);
  });
});

describe('malformed settings', () => {
  it.each([
    ['ENTRA_TENANT_ID', 'common', /must name one tenant/],
    ['ENTRA_TENANT_ID', 'organizations', /must name one tenant/],
    ['ENTRA_TENANT_ID', 'not a tenant', /tenant GUID or domain/],
    ['ENTRA_CLIENT_ID', 'mail-gateway', /must be a GUID/],
    ['KEY_VAULT_URL', 'http://kv-mail.vault.azure.net', /https URL/],
    ['APP_CREDENTIAL_NAME', 'has spaces', /Key Vault object name/],
    ['MANAGED_IDENTITY_CLIENT_ID', 'abc', /must be a GUID/],
    ['CREDENTIAL_REFRESH_MINUTES', 'soon', /whole number/],
    ['CREDENTIAL_REFRESH_MINUTES', '0', /between 1 and 1440/],
    ['ENTRA_AUTHORITY_HOST', 'http://127.0.0.1:1234', /https URL/],
    ['GRAPH_BASE_URL', 'graph', /https URL/],
    ['GRAPH_SCOPE', 'https://graph.microsoft.com/Mail.Send', /\/\.default/],
    ['NODE_EXTRA_CA_CERTS', '/no/such/ca.pem', /does not exist/],
    ['ALLOWED_SENDERS', 'everyone', /addresses or \*@domain patterns/],
    ['ALLOWED_SENDERS', 'alerts@contoso.com, *', /addresses or \*@domain patterns/],
    ['MAX_SEND_REQUEST_MB', '500', /between 1 and 100 MB/],
    ['IDEMPOTENCY_TTL_HOURS', '-1', /whole number/],
    ['GRAPH_MAX_WAIT_SECONDS', 'forever', /whole number/],
    ['GRAPH_PERMISSION_CHECK', 'sometimes', /token or off/],
    ['WEBHOOK_BASE_URL', 'http://func-mail.azurewebsites.net', /https URL/],
    ['WEBHOOK_BASE_URL', 'https://func-mail.azurewebsites.net/api', /origin without a path/],
    ['ALLOWED_WATCH_MAILBOXES', 'support', /addresses or \*@domain patterns/],
    ['RENEWAL_SCHEDULE', 'hourly', /six-field NCRONTAB/],
    ['RENEWAL_SCHEDULE', '0 * * * *', /six-field NCRONTAB/],
    ['RENEWAL_WINDOW_HOURS', '200', /between 1 and 168 hours/],
    ['POLL_INTERVAL_SECONDS', '10', /between 15 and 3600 seconds/],
    ['EVENTS_WEBHOOK_URL', 'http://events.contoso.com/hook', /https URL/],
    ['EVENTS_SIGNING_SECRET', 'secret', /Standard Webhooks secret/],
    ['EVENTS_SIGNING_SECRET', `whsec_${Buffer.alloc(8).toString('base64')}`, /24 to 64 random bytes/],
    [
      'EVENTS_SIGNING_SECRET',
      '@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/events-signing-secret)',
      /unresolved Key Vault reference: give the app's identity Key Vault Secrets User/,
    ],
  ])('%s=%s is refused', (name, value, message) => {
    const problems = problemsOf({ ...VALID, [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0].startsWith(`${name} `)).toBe(true);
    expect(problems[0]).toMatch(message);
  });
});

describe('watch and events settings', () => {
  it('default to: nothing watched, hourly renewal, a 48-hour window, no events webhook', () => {
    const config = loadConfig(VALID);
    expect(config.watch).toEqual({
      webhookBaseUrl: undefined,
      allowedMailboxes: { addresses: new Set(), domains: new Set() },
      renewalSchedule: '0 0 * * * *',
      renewalWindowMs: 48 * 3_600_000,
      pollIntervalMs: 60_000,
      reconcileIntervalMs: 15 * 60_000,
    });
    expect(config.events.webhook).toBeUndefined();
  });

  it('are read as given', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const config = loadConfig({
      ...VALID,
      WEBHOOK_BASE_URL: 'https://func-mail.azurewebsites.net/',
      ALLOWED_WATCH_MAILBOXES: 'Support@Contoso.com, *@billing.contoso.com',
      RENEWAL_SCHEDULE: '0 */30 * * * *',
      RENEWAL_WINDOW_HOURS: '72',
      POLL_INTERVAL_SECONDS: '15',
      RECONCILE_INTERVAL_MINUTES: '5',
      EVENTS_WEBHOOK_URL: 'https://events.contoso.com/hook',
      EVENTS_SIGNING_SECRET: secret,
    });
    expect(config.watch).toEqual({
      webhookBaseUrl: 'https://func-mail.azurewebsites.net',
      allowedMailboxes: { addresses: new Set(['support@contoso.com']), domains: new Set(['billing.contoso.com']) },
      renewalSchedule: '0 */30 * * * *',
      renewalWindowMs: 72 * 3_600_000,
      pollIntervalMs: 15_000,
      reconcileIntervalMs: 5 * 60_000,
    });
    expect(config.events.webhook).toEqual({ url: 'https://events.contoso.com/hook', signingSecret: secret });
  });

  it('refuse an events webhook without its signing secret', () => {
    expect(problemsOf({ ...VALID, EVENTS_WEBHOOK_URL: 'https://events.contoso.com/hook' })).toEqual([
      'EVENTS_SIGNING_SECRET is missing: EVENTS_WEBHOOK_URL is set, and events are only sent signed',
    ]);
  });

  it('read the tenant external recipient budget: off by default, a number with its accepted domains', () => {
    expect(loadConfig(VALID).outbox.tenantExternal).toBeUndefined();
    expect(loadConfig({ ...VALID, TENANT_EXTERNAL_RECIPIENTS_PER_DAY: 'off' }).outbox.tenantExternal).toBeUndefined();
    const on = loadConfig({
      ...VALID,
      TENANT_EXTERNAL_RECIPIENTS_PER_DAY: '36599',
      TENANT_DOMAINS: 'Contoso.com, contoso.onmicrosoft.com',
    }).outbox.tenantExternal;
    expect(on).toEqual({ perDay: 36_599, domains: new Set(['contoso.com', 'contoso.onmicrosoft.com']) });
    expect(problemsOf({ ...VALID, TENANT_EXTERNAL_RECIPIENTS_PER_DAY: '36599' })).toEqual([
      'TENANT_DOMAINS is missing: TENANT_EXTERNAL_RECIPIENTS_PER_DAY is set, and without the accepted domains every recipient would count as external',
    ]);
    expect(problemsOf({ ...VALID, TENANT_EXTERNAL_RECIPIENTS_PER_DAY: '0', TENANT_DOMAINS: 'contoso.com' })).toEqual([
      'TENANT_EXTERNAL_RECIPIENTS_PER_DAY must be off or a whole number of recipients between 1 and 100000000',
    ]);
    expect(problemsOf({ ...VALID, TENANT_DOMAINS: 'contoso' })).toEqual([
      'TENANT_DOMAINS must be comma-separated domains, e.g. contoso.com,contoso.onmicrosoft.com',
    ]);
  });

  it("keep host.json's queue retry count equal to the one the notification processor poisons at", () => {
    const host = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as {
      extensions?: { queues?: { maxDequeueCount?: number } };
    };
    expect(host.extensions?.queues?.maxDequeueCount).toBe(MAX_DEQUEUE_COUNT);
  });
});

describe('endpoint overrides', () => {
  it('points every endpoint elsewhere through ordinary settings', () => {
    const config = loadConfig({
      ...VALID,
      ENTRA_AUTHORITY_HOST: 'https://127.0.0.1:4001/',
      GRAPH_BASE_URL: 'https://127.0.0.1:4002',
      KEY_VAULT_URL: 'https://127.0.0.1:4003',
    });
    expect(config.endpoints.authorityHost).toBe('https://127.0.0.1:4001');
    expect(config.endpoints.graphBaseUrl).toBe('https://127.0.0.1:4002');
    // The token audience stays the cloud's Graph: an emulator stands in for it at another address.
    expect(config.endpoints.graphScope).toBe('https://graph.microsoft.com/.default');
    expect(config.customAuthority).toBe(true);
    expect(config.keyVault).toEqual({
      url: 'https://127.0.0.1:4003',
      credentialName: 'mail-gateway-credential',
      verifyChallengeResource: false,
    });
  });

  it('takes a Graph scope override', () => {
    expect(loadConfig({ ...VALID, GRAPH_SCOPE: 'https://graph.example/.default' }).endpoints.graphScope).toBe(
      'https://graph.example/.default',
    );
  });
});

describe('sender policy and send limits', () => {
  it('splits ALLOWED_SENDERS into addresses and domains, case-insensitively', () => {
    const config = loadConfig({ ...VALID, ALLOWED_SENDERS: 'Alerts@Contoso.com, *@Billing.Contoso.com' });
    expect([...config.allowedSenders.addresses]).toEqual(['alerts@contoso.com']);
    expect([...config.allowedSenders.domains]).toEqual(['billing.contoso.com']);
  });

  it('has documented defaults', () => {
    const config = loadConfig(VALID);
    expect(config.maxSendRequestBytes).toBe(50 * 1024 * 1024);
    expect(config.idempotencyTtlMs).toBe(24 * 3_600_000);
    expect(config.graphMaxWaitSeconds).toBe(30);
    expect(config.graphPermissionCheck).toBe('token');
  });
});

describe('storage settings', () => {
  it('accepts a connection string', () => {
    expect(loadConfig(VALID).storage).toEqual({
      kind: 'connectionString',
      connectionString: 'UseDevelopmentStorage=true',
    });
  });

  it('accepts identity-based properties, defaulting the client id to the managed identity', () => {
    const env = { ...VALID, MANAGED_IDENTITY_CLIENT_ID: '99999999-2222-3333-4444-555555555555' };
    delete (env as Record<string, string | undefined>).AzureWebJobsStorage;
    expect(loadConfig({ ...env, AzureWebJobsStorage__accountName: 'stmail' }).storage).toEqual({
      kind: 'identity',
      tableUrl: 'https://stmail.table.core.windows.net',
      queueUrl: 'https://stmail.queue.core.windows.net',
      blobUrl: 'https://stmail.blob.core.windows.net',
      managedIdentityClientId: '99999999-2222-3333-4444-555555555555',
    });
  });
});

describe('the settings list is documented everywhere', () => {
  const appSettings = SETTINGS.filter((s) => s.source === 'app').map((s) => s.name);
  const family = (name: string) => name.split('__')[0];
  const hostOnly = new Set(['FUNCTIONS_WORKER_RUNTIME']);

  it("local.settings.sample.json holds exactly the app settings (plus the host's own), with valid values", () => {
    const sample = JSON.parse(readFileSync(join(ROOT, 'local.settings.sample.json'), 'utf8')) as {
      Values: Record<string, string>;
    };
    const names = Object.keys(sample.Values)
      .filter((n) => !hostOnly.has(n))
      .map(family);
    expect([...new Set(names)].sort()).toEqual([...appSettings].sort());
    expect(() => loadConfig(sample.Values)).not.toThrow();
  });

  it('the Function App in infra/ sets exactly the app settings (plus platform-monitoring ones)', () => {
    const bicep = readFileSync(join(ROOT, 'infra', 'main.bicep'), 'utf8');
    const block = /^var appSettings = \{([\s\S]*?)^\}/m.exec(bicep);
    expect(block).not.toBeNull();
    const names = [...block![1].matchAll(/^\s*'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:/gm)].map((m) => m[1]);
    const monitoring = new Set(['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING']);
    expect([...new Set(names.filter((n) => !monitoring.has(n)).map(family))].sort()).toEqual([...appSettings].sort());
    for (const platform of SETTINGS.filter((s) => s.source === 'platform')) expect(names).not.toContain(platform.name);
  });

  it('the README documents every setting', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const setting of SETTINGS) expect(readme).toContain(`\`${setting.name}\``);
  });
});

describe('the functions host with bad settings (a deployment an operator must be able to diagnose)', () => {
  let env: TestCloud;
  let host: FunctionsHostProcess | undefined;
  // Values that must never be shown: a malformed client id and a sender policy that is not one.
  const BAD_CLIENT_ID = 'mail-gateway-client-7f3a';
  const BAD_SENDERS = 'everyone-at-contoso';

  beforeAll(async () => {
    // Storage of its own: no other test file's host may consume this file's outbox message.
    env = await startTestCloud({ privateStorage: true });
  });
  afterAll(async () => {
    await host?.stop();
    await env?.close();
  });

  it('runs; health and every HTTP function answer 503 naming the settings; queued mail waits untouched until they are fixed', async () => {
    // A mail accepted before the bad deployment, waiting on the outbox queue.
    const outbox = OutboxStore.fromConfig(env.config);
    const id = randomUUID();
    const subject = `Waits for its settings ${id}`;
    await outbox.accept(
      {
        id,
        mailbox: 'alerts@contoso.com',
        recipients: 1,
        internetMessageId: `<${id.replace(/-/g, '')}.outbox@contoso.com>`,
        saveToSentItems: true,
      },
      Buffer.from(
        JSON.stringify({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'hi' }),
        'utf8',
      ),
    );

    host = await startFunctionsHost({ ...env.settings, ENTRA_CLIENT_ID: BAD_CLIENT_ID, ALLOWED_SENDERS: BAD_SENDERS });
    const gateway = gatewayClient(host);
    const expectInvalid = (res: GatewayAnswer, what: string) => {
      const text = res.text;
      expect({ what, status: res.status, type: res.headers.get('content-type') }).toEqual({
        what,
        status: 503,
        type: 'application/problem+json',
      });
      const body = JSON.parse(text) as { type: string; settings: string[]; detail: string };
      expect(body.type).toMatch(/\/configuration-invalid$/);
      expect(body.settings).toEqual(['ENTRA_CLIENT_ID', 'ALLOWED_SENDERS']);
      expect(body.detail).toMatch(/ENTRA_CLIENT_ID must be a GUID/);
      expect(text).not.toContain(BAD_CLIENT_ID);
      expect(text).not.toContain(BAD_SENDERS);
    };
    expectInvalid(await gateway.health(), 'health');
    const calls: [string, () => Promise<GatewayAnswer>][] = [
      [
        'send',
        () => gateway.send({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject: 'x', text: 'x' }),
      ],
      ['status', () => gateway.status(id)],
      ['list', () => gateway.mailboxes()],
      ['watch', () => gateway.watch('support@contoso.com')],
      ['notifications', () => gateway.request('POST', '/api/graph/notifications', '{"value":[]}')],
      ['lifecycle', () => gateway.request('POST', '/api/graph/lifecycle', '{"value":[]}')],
      ['diagnostics', () => gateway.diagnostics()],
    ];
    for (const [what, call] of calls) expectInvalid(await call(), what);
    // Keys are still enforced first, as the host does it.
    expect((await gateway.status(id, { key: null })).status).toBe(401);

    // The operator's log names the settings, not their values; the queue and timer functions are not registered.
    const output = host.output();
    expect(output).toMatch(/Invalid configuration[^\n]*\n\s+- ENTRA_CLIENT_ID must be a GUID/);
    expect(output).not.toContain(BAD_CLIENT_ID);
    expect(output).not.toContain(BAD_SENDERS);
    expect(output).toMatch(/\/api\/mail\/send \[function\]/);
    expect(output).not.toMatch(/queueTrigger|timerTrigger/);

    // Several of the host's poll intervals (at most 2 s) later, nobody has read the mail's message: not retried,
    // not poisoned, not sent.
    await new Promise((r) => setTimeout(r, 6_000));
    const queue = createQueueClient(env.config, OUTBOX_QUEUE);
    const peeked = await queue.peekMessages({ numberOfMessages: 32 });
    expect(peeked.peekedMessageItems.map((m) => m.dequeueCount)).toEqual([0]);
    expect(await createQueueClient(env.config, `${OUTBOX_QUEUE}-poison`).exists()).toBe(false);
    expect((await outbox.get(id))?.record.status).toBe('queued');
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(0);

    // Settings fixed (Azure restarts the app): the mail is sent, once.
    await host.stop();
    host = await startFunctionsHost(env.settings);
    for (let i = 0; i < 150 && (await outbox.get(id))?.record.status !== 'sent'; i++) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await outbox.get(id))?.record.status).toBe('sent');
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(1);
    expect((await gatewayClient(host).health()).status).toBe(200);
  }, 120_000);
});
