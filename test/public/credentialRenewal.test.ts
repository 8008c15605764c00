/**
 * Key Vault's default certificate policy renews a certificate on its own, 90 days before expiry: the new version
 * is one the app registration does not know. The gateway must keep sending with the previous version and say what
 * to fix, instead of switching to the new version and failing every send.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { AppCredential } from '../../shared/identity/appCredential';
import { KeyVaultCredentialSource } from '../../shared/identity/keyVaultCredentialSource';
import { createCertificate } from '../emulators/testCa';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

let env: TestCloud;
let host: FunctionsHostProcess | undefined;
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** What Key Vault's auto-renewal does: a new version of the certificate, not registered on the app. */
function autoRenew(): { version: string; thumbprint: string } {
  const renewed = createCertificate({ commonName: 'mail-gateway', notAfter: new Date(Date.now() + 365 * 86_400_000) });
  const { version } = env.cloud.keyVault.importCertificate(env.cloud.credentialName, renewed);
  const thumbprint = new X509Certificate(renewed.certPem).fingerprint256.replace(/:/g, '');
  return { version, thumbprint };
}

describe('a Key Vault version the app registration does not know', () => {
  it('keeps sending with the previous version, and diagnostics and the log name the new one and the fix', async () => {
    const registered = env.cloud.rotateCredential('certificate-pem');
    const renewed = autoRenew();
    // The instance starts after the renewal: its first Key Vault read finds the unregistered version.
    host = await startFunctionsHost(env.settings);
    const tokensBefore = env.cloud.entra.tokenRequests.length;

    const subject = `renewal-${randomUUID()}`;
    const gateway = gatewayClient(host);
    const res = await gateway.send(
      { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'x' },
      { wait: 30 },
    );
    expect(res.status).toBe(200);
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(1);
    const attempts = env.cloud.entra.tokenRequests.slice(tokensBefore);
    expect(attempts.map((a) => [a.status, a.errorCode])).toEqual([
      [401, 700027],
      [200, undefined],
    ]);

    const diagnostics = await gateway.diagnostics<{ checks: { name: string; status: string; detail: string }[] }>();
    const report = diagnostics.body;
    const keyVault = report.checks.find((c) => c.name === 'keyVault');
    expect(keyVault).toMatchObject({
      status: 'warning',
      version: registered.version,
      rejectedVersion: renewed.version,
    });
    expect(keyVault?.detail).toContain(renewed.version);
    expect(keyVault?.detail).toMatch(/AADSTS700027/);
    expect(keyVault?.detail).toMatch(/register the new certificate .*on the app registration.*or disable version/);
    expect(keyVault?.detail).toContain(renewed.thumbprint);
    expect(host.output()).toMatch(
      new RegExp(
        `rejects the newest Key Vault version ${renewed.version}.*using the previous version ${registered.version}`,
      ),
    );
    await host.stop();
    host = undefined;
  });

  it('moves to the new version once it is registered, at the next refresh', async () => {
    let now = Date.now();
    const registered = env.cloud.rotateCredential('certificate-pem');
    const warnings: string[] = [];
    const credential = new AppCredential(
      env.config,
      new KeyVaultCredentialSource(env.config),
      () => now,
      (m) => warnings.push(m),
    );
    await credential.getToken(GRAPH_SCOPE);
    expect((await credential.status()).version).toBe(registered.version);

    const renewed = createCertificate({
      commonName: 'mail-gateway',
      notAfter: new Date(Date.now() + 365 * 86_400_000),
    });
    const { version } = env.cloud.keyVault.importCertificate(env.cloud.credentialName, renewed);
    now += env.config.credentialRefreshMs + 1;
    await expect(credential.getToken('https://vault.azure.net/.default')).resolves.toHaveProperty('token');
    expect(await credential.status()).toMatchObject({ version: registered.version, rejected: { version } });
    expect(warnings.join('\n')).toContain(version);

    env.cloud.tenant.addCertificate(env.cloud.app, renewed.certPem);
    now += env.config.credentialRefreshMs + 1;
    await expect(credential.getToken(GRAPH_SCOPE)).resolves.toHaveProperty('token');
    const status = await credential.status();
    expect(status.version).toBe(version);
    expect(status.rejected).toBeUndefined();
  });

  it("still fails with Entra's reason when no version is registered", async () => {
    env.cloud.rotateCredential('certificate-pem');
    env.cloud.revokeAllBut({});
    await expect(
      new AppCredential(env.config, undefined, undefined, () => undefined).getToken(GRAPH_SCOPE),
    ).rejects.toThrow(/AADSTS700027/);
  });
});
