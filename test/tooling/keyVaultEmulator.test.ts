import { KeyVaultEmulator } from '../emulators/keyVault';
import { EmulatedTenant } from '../emulators/tenant';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { testCa } from '../support/testEnv';

describe('Key Vault emulator', () => {
  const tenant = new EmulatedTenant();
  const issuer = new TokenIssuer();
  const reader = tenant.addManagedIdentity();
  const outsider = tenant.addManagedIdentity({ keyVaultSecretsUser: false });
  let vault: KeyVaultEmulator;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ tenant, issuer, ca: testCa(), authorityHost: 'https://login.example' });
  });
  afterAll(() => vault.close());

  function token(oid: string, aud = 'https://vault.azure.net'): string {
    const now = Math.floor(Date.now() / 1000);
    return issuer.sign({
      aud,
      tid: tenant.tenantId,
      oid,
      appid: oid,
      idtyp: 'app',
      iat: now,
      nbf: now,
      exp: now + 3600,
    });
  }

  async function get(
    path: string,
    bearer?: string,
  ): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
    const res = await fetch(`${vault.url}${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  }

  it('challenges an anonymous request with the authority and resource', async () => {
    const answer = await get('/secrets/x?api-version=7.6');
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe(
      `Bearer authorization="https://login.example/${tenant.tenantId}", resource="https://vault.azure.net"`,
    );
  });

  it('requires an api-version', async () => {
    expect((await get('/secrets/x', token(reader.principalId))).status).toBe(400);
  });

  it('refuses a token for another audience and a caller without Key Vault Secrets User', async () => {
    expect(
      (await get('/secrets/x?api-version=7.6', token(reader.principalId, 'https://graph.microsoft.com'))).status,
    ).toBe(401);
    const denied = await get('/secrets/x?api-version=7.6', token(outsider.principalId));
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'Forbidden', innererror: { code: 'ForbiddenByRbac' } });
  });

  it('serves the latest version, a named version, and refuses disabled and missing ones', async () => {
    const first = vault.setSecret('cred', 'one', { contentType: 'text/plain' });
    const second = vault.setSecret('cred', 'two', { expiresOn: new Date('2030-01-01T00:00:00Z') });
    const bearer = token(reader.principalId);

    const latest = await get('/secrets/cred/?api-version=7.6', bearer);
    expect(latest.body).toMatchObject({
      value: 'two',
      id: `${vault.url}/secrets/cred/${second.version}`,
      attributes: { enabled: true, exp: 1893456000 },
    });
    expect((await get(`/secrets/cred/${first.version}?api-version=7.6`, bearer)).body).toMatchObject({
      value: 'one',
      contentType: 'text/plain',
    });

    vault.setEnabled('cred', first.version, false);
    const disabled = await get(`/secrets/cred/${first.version}?api-version=7.6`, bearer);
    expect(disabled.status).toBe(403);
    expect(disabled.body.error).toMatchObject({ message: 'Operation get is not allowed on a disabled secret.' });
    const missing = await get('/secrets/nothing?api-version=7.6', bearer);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'SecretNotFound' });
  });
});
