import { AppCredential } from '../../shared/identity/appCredential';
import { runDiagnostics } from '../../shared/diagnostics/diagnostics';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { createCertificate } from '../emulators/testCa';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
beforeAll(async () => {
  env = await startTestCloud();
});
afterAll(() => env.close());
afterEach(() => {
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
  env.cloud.identity.keyVaultSecretsUser = true;
});

const run = () => runDiagnostics(env.config, new AppCredential(env.config));
const check = (report: Awaited<ReturnType<typeof run>>, name: string) => report.checks.find((c) => c.name === name);

describe('diagnostics', () => {
  it('reports a correctly wired deployment as ok, with the token explained', async () => {
    const report = await run();
    expect(report.status).toBe('ok');
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ['keyVault', 'ok'],
      ['credentialExpiry', 'ok'],
      ['token', 'ok'],
      ['permissions', 'ok'],
      ['watchPermission', 'skipped'],
      ['tableStorage', 'ok'],
      ['queueStorage', 'ok'],
    ]);
    expect(check(report, 'token')).toMatchObject({
      appId: env.cloud.app.clientId,
      tenantId: env.cloud.tenant.tenantId,
      identityType: 'app',
    });
    expect(JSON.stringify(report)).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT anywhere
  });

  it('names the missing admin consent', async () => {
    env.cloud.app.graphRoles = new Set(['User.Read.All']);
    const report = await run();
    expect(report.status).toBe('failed');
    expect(check(report, 'permissions')).toMatchObject({
      status: 'failed',
      missing: ['Mail.Send', 'Mail.ReadWrite'],
      detail: expect.stringMatching(/^admin consent not granted for Mail\.Send, Mail\.ReadWrite/) as unknown,
    });
  });

  it('only warns about missing roles when GRAPH_PERMISSION_CHECK=off (Exchange RBAC for Applications)', async () => {
    env.cloud.app.graphRoles = new Set(['User.Read.All']);
    const report = await runDiagnostics({ ...env.config, graphPermissionCheck: 'off' }, new AppCredential(env.config));
    expect(report.status).toBe('warning');
    expect(check(report, 'permissions')).toMatchObject({ status: 'warning', missing: ['Mail.Send', 'Mail.ReadWrite'] });
  });

  describe('watching', () => {
    const watching = () => ({
      ...env.config,
      watch: {
        ...env.config.watch,
        webhookBaseUrl: 'https://func-mail.azurewebsites.net',
        allowedMailboxes: { addresses: new Set(['support@contoso.com']), domains: new Set<string>() },
      },
    });

    it('names the least-privileged permission watching uses when it is granted', async () => {
      const report = await runDiagnostics(watching(), new AppCredential(env.config));
      expect(check(report, 'watchPermission')).toMatchObject({
        status: 'ok',
        permission: 'Mail.ReadBasic.All',
        detail: expect.stringContaining('https://func-mail.azurewebsites.net/api/graph/notifications') as unknown,
      });
    });

    it('names Mail.ReadBasic.All as the missing consent', async () => {
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'User.Read.All']);
      const report = await runDiagnostics(watching(), new AppCredential(env.config));
      // Mail.ReadWrite reads too, so only a token with none of the read permissions fails.
      expect(check(report, 'watchPermission')?.status).toBe('ok');
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'User.Read.All']);
      const denied = await runDiagnostics(watching(), new AppCredential(env.config));
      expect(check(denied, 'watchPermission')).toMatchObject({
        status: 'failed',
        detail: expect.stringMatching(/^admin consent not granted for Mail\.ReadBasic\.All/) as unknown,
      });
    });

    it('fails when WEBHOOK_BASE_URL is missing', async () => {
      const config = watching();
      const report = await runDiagnostics(
        { ...config, watch: { ...config.watch, webhookBaseUrl: undefined } },
        new AppCredential(env.config),
      );
      expect(check(report, 'watchPermission')).toMatchObject({
        status: 'failed',
        detail: expect.stringContaining('WEBHOOK_BASE_URL') as unknown,
      });
    });
  });

  it('says Key Vault cannot be read and skips what depends on it', async () => {
    env.cloud.identity.keyVaultSecretsUser = false;
    const report = await run();
    expect(report.checks.map((c) => c.status)).toEqual([
      'failed',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
      'ok',
      'ok',
    ]);
    expect(check(report, 'keyVault')?.detail).toMatch(/Key Vault Secrets User/);
  });

  it('warns 30 days ahead of the certificate expiring', async () => {
    const soon = createCertificate({ commonName: 'mail-gateway', notAfter: new Date(Date.now() + 12 * 86_400_000) });
    env.cloud.tenant.addCertificate(env.cloud.app, soon.certPem);
    env.cloud.keyVault.importCertificate(env.cloud.credentialName, soon);
    const report = await run();
    expect(report.status).toBe('warning');
    expect(check(report, 'credentialExpiry')).toMatchObject({
      status: 'warning',
      daysLeft: 11,
      detail: expect.stringMatching(/rotate it now/) as unknown,
    });
  });
});
