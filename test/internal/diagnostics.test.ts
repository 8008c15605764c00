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
      ['featurePermissions', 'ok'],
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
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.Read', 'User.Read.All']);
      const report = await runDiagnostics(watching(), new AppCredential(env.config));
      // Mail.Read is a read scope too, so it serves watching.
      expect(check(report, 'watchPermission')?.status).toBe('ok');
      // Mail.ReadWrite is not a read scope: Graph refuses a subscription made with it alone.
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'User.Read.All']);
      const denied = await runDiagnostics(watching(), new AppCredential(env.config));
      expect(check(denied, 'watchPermission')).toMatchObject({
        status: 'failed',
        detail: expect.stringMatching(/^admin consent not granted for Mail\.ReadBasic\.All/) as unknown,
      });
    });

    it('without WEBHOOK_BASE_URL, says mailboxes are watched by polling (which needs no webhook)', async () => {
      const config = watching();
      const report = await runDiagnostics(
        { ...config, watch: { ...config.watch, webhookBaseUrl: undefined } },
        new AppCredential(env.config),
      );
      expect(check(report, 'watchPermission')).toMatchObject({
        status: 'ok',
        detail: expect.stringContaining('WEBHOOK_BASE_URL is not set: mailboxes are watched by polling') as unknown,
      });
    });
  });

  describe('per feature', () => {
    const policy = (...addresses: string[]) => ({ addresses: new Set(addresses), domains: new Set<string>() });
    const everything = () => ({
      ...env.config,
      watch: {
        ...env.config.watch,
        webhookBaseUrl: 'https://func-mail.azurewebsites.net',
        allowedMailboxes: policy('support@contoso.com'),
      },
      messages: { ...env.config.messages, allowedMailboxes: policy('support@contoso.com') },
      outbox: { ...env.config.outbox, bounceTracking: true },
    });
    const features = (report: Awaited<ReturnType<typeof run>>) =>
      (check(report, 'featurePermissions')?.features as Array<Record<string, unknown>>).map((f) => [
        f.feature,
        f.status,
        f.permission,
        f.grant ?? null,
      ]);

    it('reports what each feature needs, and features that are off as off', async () => {
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'User.Read.All']);
      const report = await run();
      expect(check(report, 'featurePermissions')?.status).toBe('ok');
      expect(features(report)).toEqual([
        ['send', 'ok', 'Mail.Send', null],
        ['largeAttachments', 'ok', 'Mail.ReadWrite', null],
        ['watch', 'off', 'Mail.ReadBasic.All', null],
        ['read', 'off', 'Mail.Read', null],
        ['contentEvents', 'off', 'Mail.Read', null],
        ['actions', 'off', 'Mail.ReadWrite', null],
        ['bounceTracking', 'off', 'Mail.Read', null],
      ]);
    });

    it('names what to grant for each feature that is on and lacks its permission', async () => {
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'User.Read.All']);
      const report = await runDiagnostics(everything(), new AppCredential(env.config));
      const found = check(report, 'featurePermissions')!;
      expect(found.status).toBe('failed');
      expect(features(report)).toEqual([
        ['send', 'ok', 'Mail.Send', null],
        ['largeAttachments', 'missing', 'Mail.ReadWrite', 'Mail.ReadWrite'],
        ['watch', 'missing', 'Mail.ReadBasic.All', 'Mail.ReadBasic.All'],
        ['read', 'missing', 'Mail.Read', 'Mail.Read'],
        ['contentEvents', 'missing', 'Mail.Read', 'Mail.Read'],
        ['actions', 'missing', 'Mail.ReadWrite', 'Mail.ReadWrite'],
        ['bounceTracking', 'missing', 'Mail.Read', 'Mail.Read'],
      ]);
      expect(found.detail).toMatch(/^admin consent not granted for Mail\.ReadWrite, Mail\.ReadBasic\.All, Mail\.Read,/);

      // Mail.ReadWrite reads whole messages, so it serves reading; watching still needs a read scope.
      // Bounce tracking needs Mail.Read itself: its subscription needs a read scope, its reports' bodies more than basic.
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'Mail.ReadBasic.All', 'User.Read.All']);
      const noBounces = await runDiagnostics(everything(), new AppCredential(env.config));
      expect(features(noBounces)).toContainEqual(['bounceTracking', 'missing', 'Mail.Read', 'Mail.Read']);
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'Mail.Read', 'User.Read.All']);
      const granted = await runDiagnostics(everything(), new AppCredential(env.config));
      expect(check(granted, 'featurePermissions')?.status).toBe('ok');
      expect(features(granted).map(([feature, status]) => [feature, status])).toEqual([
        ['send', 'ok'],
        ['largeAttachments', 'ok'],
        ['watch', 'ok'],
        ['read', 'ok'],
        ['contentEvents', 'ok'],
        ['actions', 'ok'],
        ['bounceTracking', 'ok'],
      ]);
    });

    it('does not fail for content in events alone (asked for per mailbox), and only warns when Exchange decides', async () => {
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadWrite', 'Mail.ReadBasic.All', 'User.Read.All']);
      const watchingOnly = { ...everything(), messages: env.config.messages, outbox: env.config.outbox };
      const report = await runDiagnostics(watchingOnly, new AppCredential(env.config));
      expect(check(report, 'featurePermissions')?.status).toBe('ok');
      expect(features(report)).toContainEqual(['contentEvents', 'ok', 'Mail.Read', null]);
      env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadBasic.All', 'User.Read.All']);
      const noRead = await runDiagnostics(watchingOnly, new AppCredential(env.config));
      expect(check(noRead, 'featurePermissions')?.status).toBe('failed'); // largeAttachments lacks Mail.ReadWrite
      expect(features(noRead)).toContainEqual(['contentEvents', 'missing', 'Mail.Read', 'Mail.Read']);
      const off = await runDiagnostics({ ...watchingOnly, graphPermissionCheck: 'off' }, new AppCredential(env.config));
      expect(check(off, 'featurePermissions')?.status).toBe('warning');
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
