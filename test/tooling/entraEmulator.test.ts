import { constants, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { EntraEmulator } from '../emulators/entra';
import { EmulatedTenant, type AppRegistration } from '../emulators/tenant';
import { createCertificate, thumbprints, type PemPair } from '../emulators/testCa';
import { TokenIssuer } from '../emulators/tokenIssuer';
import { testCa } from '../support/testEnv';

interface EntraAnswer {
  status: number;
  body: Record<string, unknown>;
}

describe('Entra ID emulator: client credentials', () => {
  const tenant = new EmulatedTenant();
  const issuer = new TokenIssuer();
  let entra: EntraEmulator;
  let app: AppRegistration;
  let cert: PemPair;
  let tokenUrl: string;

  beforeAll(async () => {
    entra = await EntraEmulator.start({ tenant, issuer, ca: testCa() });
    app = tenant.registerApp({ graphRoles: ['Mail.Send'] });
    cert = createCertificate({ commonName: 'app' });
    tenant.addCertificate(app, cert.certPem);
    tenant.addSecret(app, 'right-secret');
    tenant.addSecret(app, 'old-secret', new Date(Date.now() - 1000));
    tokenUrl = `${entra.url}/${tenant.tenantId}/oauth2/v2.0/token`;
  });
  afterAll(() => entra.close());

  function assertion(
    overrides: { header?: object; claims?: object; alg?: 'RS256' | 'PS256'; key?: string } = {},
  ): string {
    const now = Math.floor(Date.now() / 1000);
    const alg = overrides.alg ?? 'RS256';
    const tp = thumbprints(cert.certPem);
    const header = {
      alg,
      typ: 'JWT',
      ...(alg === 'PS256' ? { 'x5t#S256': tp.sha256 } : { x5t: tp.sha1 }),
      ...overrides.header,
    };
    const claims = {
      aud: tokenUrl,
      iss: app.clientId,
      sub: app.clientId,
      jti: randomUUID(),
      nbf: now,
      iat: now,
      exp: now + 600,
      ...overrides.claims,
    };
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const key = createPrivateKey(overrides.key ?? cert.keyPem);
    const signature =
      alg === 'PS256'
        ? sign('RSA-SHA256', Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
        : sign('RSA-SHA256', Buffer.from(input), key);
    return `${input}.${signature.toString('base64url')}`;
  }

  async function requestToken(fields: Record<string, string>, url = tokenUrl): Promise<EntraAnswer> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: app.clientId,
        scope: 'https://graph.microsoft.com/.default',
        ...fields,
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  const withAssertion = (value: string) => ({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: value,
  });

  function expectEntraError(answer: EntraAnswer, status: number, error: string, code: number): void {
    expect(answer.status).toBe(status);
    expect(answer.body.error).toBe(error);
    expect(answer.body.error_codes).toEqual([code]);
    expect(answer.body.error_description).toMatch(new RegExp(`^AADSTS${code}: .*\\r\\nTrace ID: `, 's'));
    expect(answer.body).toHaveProperty('correlation_id');
  }

  it("publishes an OpenID configuration whose token endpoint is the tenant's", async () => {
    const res = await fetch(`${entra.url}/${tenant.tenantId}/v2.0/.well-known/openid-configuration`);
    const doc = (await res.json()) as Record<string, string>;
    expect(doc.token_endpoint).toBe(tokenUrl);
    expect(doc.issuer).toContain(tenant.tenantId);
  });

  it.each(['RS256', 'PS256'] as const)(
    'issues a signed app-only token for a valid %s certificate assertion',
    async (alg) => {
      const answer = await requestToken(withAssertion(assertion({ alg })));
      expect(answer.status).toBe(200);
      expect(answer.body.token_type).toBe('Bearer');
      const lifetime = answer.body.expires_in as number;
      expect(lifetime).toBeGreaterThanOrEqual(3600);
      expect(lifetime).toBeLessThanOrEqual(5400);
      const verified = issuer.verify(answer.body.access_token as string, ['https://graph.microsoft.com']);
      expect(verified.ok && verified.claims).toMatchObject({
        tid: tenant.tenantId,
        appid: app.clientId,
        appidacr: '2',
        idtyp: 'app',
        roles: ['Mail.Send'],
      });
    },
  );

  it('rejects a tampered assertion', async () => {
    const valid = assertion();
    const [h, , s] = valid.split('.');
    const forged = Buffer.from(
      JSON.stringify({
        aud: tokenUrl,
        iss: app.clientId,
        sub: app.clientId,
        jti: randomUUID(),
        exp: Math.floor(Date.now() / 1000) + 300,
      }),
    ).toString('base64url');
    expectEntraError(await requestToken(withAssertion(`${h}.${forged}.${s}`)), 401, 'invalid_client', 700027);
  });

  it('rejects an assertion signed by another key with the registered thumbprint', async () => {
    const other = createCertificate({ commonName: 'intruder' });
    expectEntraError(
      await requestToken(withAssertion(assertion({ key: other.keyPem }))),
      401,
      'invalid_client',
      700027,
    );
  });

  it('rejects an unregistered certificate', async () => {
    expectEntraError(
      await requestToken(withAssertion(assertion({ header: { x5t: 'AAAA' } }))),
      401,
      'invalid_client',
      700027,
    );
  });

  it('rejects an expired assertion', async () => {
    const past = Math.floor(Date.now() / 1000) - 3600;
    expectEntraError(
      await requestToken(withAssertion(assertion({ claims: { nbf: past - 600, exp: past } }))),
      401,
      'invalid_client',
      700024,
    );
  });

  it('rejects an assertion valid for far more than 10 minutes', async () => {
    const exp = Math.floor(Date.now() / 1000) + 86_400;
    expectEntraError(await requestToken(withAssertion(assertion({ claims: { exp } }))), 401, 'invalid_client', 700024);
  });

  it('rejects an assertion for another audience', async () => {
    expectEntraError(
      await requestToken(
        withAssertion(assertion({ claims: { aud: 'https://login.microsoftonline.com/x/oauth2/v2.0/token' } })),
      ),
      401,
      'invalid_client',
      50012,
    );
  });

  it('rejects an assertion whose iss/sub is not the client', async () => {
    expectEntraError(
      await requestToken(withAssertion(assertion({ claims: { iss: randomUUID() } }))),
      401,
      'invalid_client',
      700021,
    );
  });

  it('rejects a replayed assertion', async () => {
    const once = assertion();
    expect((await requestToken(withAssertion(once))).status).toBe(200);
    expectEntraError(await requestToken(withAssertion(once)), 401, 'invalid_client', 50012);
  });

  it('accepts the right secret and refuses a wrong or expired one', async () => {
    const ok = await requestToken({ client_secret: 'right-secret' });
    expect(ok.status).toBe(200);
    expect(issuer.verify(ok.body.access_token as string, ['https://graph.microsoft.com'])).toMatchObject({
      ok: true,
      claims: { appidacr: '1' },
    });
    expectEntraError(await requestToken({ client_secret: 'wrong-secret' }), 401, 'invalid_client', 7000215);
    expectEntraError(await requestToken({ client_secret: 'old-secret' }), 401, 'invalid_client', 7000222);
  });

  it('omits roles when nothing was consented', async () => {
    const bare = tenant.registerApp({ graphRoles: [] });
    tenant.addSecret(bare, 's3cret-value');
    const answer = await requestToken({ client_id: bare.clientId, client_secret: 's3cret-value' });
    const verified = issuer.verify(answer.body.access_token as string, ['https://graph.microsoft.com']);
    expect(verified.ok && verified.claims.roles).toBeUndefined();
  });

  it('refuses common/organizations, unknown tenants, unknown apps, scopes without /.default and unknown resources', async () => {
    expectEntraError(
      await requestToken({ client_secret: 'right-secret' }, `${entra.url}/common/oauth2/v2.0/token`),
      400,
      'invalid_request',
      50059,
    );
    expectEntraError(
      await requestToken({ client_secret: 'right-secret' }, `${entra.url}/${randomUUID()}/oauth2/v2.0/token`),
      400,
      'invalid_request',
      90002,
    );
    expectEntraError(
      await requestToken({ client_secret: 'right-secret', client_id: randomUUID() }),
      400,
      'unauthorized_client',
      700016,
    );
    expectEntraError(
      await requestToken({ client_secret: 'right-secret', scope: 'https://graph.microsoft.com/Mail.Send' }),
      400,
      'invalid_scope',
      1002012,
    );
    expectEntraError(
      await requestToken({ client_secret: 'right-secret', scope: 'https://example.org/.default' }),
      400,
      'invalid_resource',
      500011,
    );
  });
});
