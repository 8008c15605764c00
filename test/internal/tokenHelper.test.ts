import { ClientCertificateCredential, ClientSecretCredential, type AccessToken } from '@azure/identity';
import { AppCredential } from '../../shared/identity/appCredential';
import { KeyVaultCredentialSource } from '../../shared/identity/keyVaultCredentialSource';
import { AdminConsentMissingError } from '../../shared/identity/tokenClaims';
import type { CredentialKind } from '../emulators/localCloud';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

let env: TestCloud;
beforeAll(async () => {
  env = await startTestCloud({ credential: 'certificate-pem' });
});
afterAll(() => env.close());
afterEach(() => {
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
  env.cloud.identity.keyVaultSecretsUser = true;
});

const successfulVaultReads = () => env.cloud.keyVault.requests.filter((r) => r.status === 200).length;

describe.each(['certificate-pem', 'certificate-pkcs12', 'secret'] as const)(
  'token from a %s in Key Vault',
  (kind: CredentialKind) => {
    beforeAll(() => {
      env.cloud.rotateCredential(kind);
    });

    it('reads the credential with the managed identity and gets a Graph token from Entra', async () => {
      const vaultBefore = env.cloud.keyVault.requests.length;
      const explanation = await new AppCredential(env.config).explainGraphToken();

      expect(explanation).toMatchObject({
        tenantId: env.cloud.tenant.tenantId,
        appId: env.cloud.app.clientId,
        identityType: 'app',
        audience: 'https://graph.microsoft.com',
        credentialType: kind === 'secret' ? 'secret' : 'certificate',
      });
      expect(explanation.roles).toEqual(expect.arrayContaining(['Mail.Send', 'Mail.ReadWrite', 'User.Read.All']));
      // Key Vault was read by the managed identity, not by the app.
      const vaultReads = env.cloud.keyVault.requests.slice(vaultBefore).filter((r) => r.status === 200);
      expect(vaultReads).toHaveLength(1);
      expect(vaultReads[0].caller).toBe(env.cloud.identity.principalId);
      expect(env.cloud.managedIdentity.requests.at(-1)).toMatchObject({
        clientId: env.cloud.identity.clientId,
        status: 200,
      });
      // Entra saw the right kind of client authentication.
      expect(env.cloud.entra.tokenRequests.at(-1)).toMatchObject({
        clientId: env.cloud.app.clientId,
        credentialType: kind === 'secret' ? 'secret' : 'assertion',
        status: 200,
      });
    });

    it('caches tokens: a burst and a loop of calls cost one token request and one Key Vault read', async () => {
      const credential = new AppCredential(env.config);
      const tokensBefore = env.cloud.entra.tokenRequests.length;
      const vaultBefore = successfulVaultReads();
      const tokens = await Promise.all(Array.from({ length: 20 }, () => credential.getToken(GRAPH_SCOPE)));
      for (let i = 0; i < 20; i++) tokens.push(await credential.getToken(GRAPH_SCOPE));

      expect(new Set(tokens.map((t) => t.token)).size).toBe(1);
      expect(env.cloud.entra.tokenRequests.length - tokensBefore).toBe(1);
      expect(successfulVaultReads() - vaultBefore).toBe(1);
    });

    /** MSAL's token request for this credential kind, spied on (restore it when done). */
    const spyOnMsal = () =>
      jest.spyOn((kind === 'secret' ? ClientSecretCredential : ClientCertificateCredential).prototype, 'getToken');

    it('explains the Graph token once per token: the permission check of each request reuses it until Graph refuses the token', async () => {
      const credential = new AppCredential(env.config);
      const getToken = jest.spyOn(credential, 'getToken');
      for (let i = 0; i < 20; i++) await credential.requireGraphPermissions(['Mail.Send']);
      expect(getToken).toHaveBeenCalledTimes(1);
      // Graph refused the token: the next check gets (and explains) a new one.
      const first = (await getToken.mock.results[0].value) as AccessToken;
      credential.tokenRejected(first.token);
      await credential.requireGraphPermissions(['Mail.Send']);
      expect(getToken).toHaveBeenCalledTimes(2);
    });

    it('answers the token in use without asking MSAL again, until Graph refuses it or it nears expiry', async () => {
      let now = Date.now();
      const credential = new AppCredential(env.config, undefined, () => now);
      const msal = spyOnMsal();
      try {
        const first = await credential.getToken(GRAPH_SCOPE);
        for (let i = 0; i < 20; i++) expect((await credential.getToken(GRAPH_SCOPE)).token).toBe(first.token);
        expect(msal).toHaveBeenCalledTimes(1);
        // Refused by Graph: MSAL is asked (by a new credential object, with an empty cache).
        credential.tokenRejected(first.token);
        const second = await credential.getToken(GRAPH_SCOPE);
        expect(msal).toHaveBeenCalledTimes(2);
        // Within 5 minutes of expiry MSAL is asked again (it renews tokens then).
        now = second.expiresOnTimestamp - 4 * 60_000;
        await credential.getToken(GRAPH_SCOPE);
        expect(msal).toHaveBeenCalledTimes(3);
      } finally {
        msal.mockRestore();
      }
    });

    it("asks MSAL again once Entra's refresh_in has passed, so that MSAL renews the token early", async () => {
      let now = Date.now();
      const credential = new AppCredential(env.config, undefined, () => now);
      const msal = spyOnMsal();
      // The emulator sends no refresh_in (Entra does for long-lived tokens): MSAL's answer gets the timestamp here.
      msal.mockResolvedValue({
        token: `token-${kind}`,
        expiresOnTimestamp: now + 3_600_000,
        refreshAfterTimestamp: now + 1_800_000,
      });
      try {
        for (let i = 0; i < 5; i++) await credential.getToken(GRAPH_SCOPE);
        expect(msal).toHaveBeenCalledTimes(1);
        now += 1_800_000;
        await credential.getToken(GRAPH_SCOPE);
        await credential.getToken(GRAPH_SCOPE);
        expect(msal).toHaveBeenCalledTimes(3);
      } finally {
        msal.mockRestore();
      }
    });

    it('reports the credential expiry from Key Vault', async () => {
      const status = await new AppCredential(env.config).status();
      expect(status.kind).toBe(kind === 'secret' ? 'secret' : 'certificate');
      const expectedDays = kind === 'secret' ? 180 : 365;
      expect(status.daysLeft).toBeGreaterThanOrEqual(expectedDays - 2);
      expect(status.daysLeft).toBeLessThanOrEqual(expectedDays);
      if (kind !== 'secret') expect(status.thumbprint).toMatch(/^[0-9A-F]{64}$/);
    });
  },
);

describe('withheld admin consent', () => {
  it('names every missing permission before Graph is called', async () => {
    env.cloud.app.graphRoles = new Set();
    const graphBefore = env.cloud.graph.requests.length;
    const credential = new AppCredential(env.config);

    const error = await credential.requireGraphPermissions(['Mail.Send', 'Mail.ReadWrite']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminConsentMissingError);
    expect((error as AdminConsentMissingError).missing).toEqual(['Mail.Send', 'Mail.ReadWrite']);
    expect((error as Error).message).toMatch(
      /^admin consent not granted for Mail\.Send, Mail\.ReadWrite: .*no application permissions \(no roles claim\)/,
    );
    expect((error as Error).message).toContain('Grant admin consent');
    expect(env.cloud.graph.requests.length).toBe(graphBefore);
  });

  it('names only what partial consent lacks, and accepts implied permissions', async () => {
    env.cloud.app.graphRoles = new Set(['Mail.ReadWrite']);
    const credential = new AppCredential(env.config);
    const error = await credential.requireGraphPermissions(['Mail.Send', 'Mail.Read']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminConsentMissingError);
    expect((error as AdminConsentMissingError).missing).toEqual(['Mail.Send']);
    expect((error as Error).message).toMatch(/carries only Mail\.ReadWrite/);
    await expect(credential.requireGraphPermissions(['Mail.Read'])).resolves.toMatchObject({
      roles: ['Mail.ReadWrite'],
    });
  });
});

describe('rotation', () => {
  it('uses the new Key Vault version once Entra rejects the old credential, without a restart', async () => {
    env.cloud.rotateCredential('certificate-pem');
    const credential = new AppCredential(env.config);
    await credential.getToken(GRAPH_SCOPE);
    const first = await credential.status();

    const rotated = env.cloud.rotateCredential('certificate-pem');
    env.cloud.revokeAllBut(rotated);
    const requestsBefore = env.cloud.entra.tokenRequests.length;
    // A scope not yet cached forces a token request with the credential in memory (the revoked one).
    const token = await credential.getToken('https://vault.azure.net/.default');

    expect(token.token).toBeTruthy();
    expect((await credential.status()).version).toBe(rotated.version);
    expect(first.version).not.toBe(rotated.version);
    const attempts = env.cloud.entra.tokenRequests.slice(requestsBefore);
    expect(attempts.map((a) => a.status)).toEqual([401, 200]);
    expect(attempts[0].errorCode).toBe(700027);
  });

  it('moves to a new version on the refresh interval while the old one still works', async () => {
    let now = Date.now();
    const credential = new AppCredential(env.config, new KeyVaultCredentialSource(env.config), () => now);
    const before = await credential.status();
    const rotated = env.cloud.rotateCredential('secret');

    expect((await credential.status()).version).toBe(before.version);
    now += env.config.credentialRefreshMs + 1;
    const after = await credential.status();
    expect(after.version).toBe(rotated.version);
    expect(after.kind).toBe('secret');
    await expect(credential.getToken(GRAPH_SCOPE)).resolves.toHaveProperty('token');
    expect(env.cloud.entra.tokenRequests.at(-1)).toMatchObject({ credentialType: 'secret', status: 200 });
  });

  it("still fails, with Entra's reason, when Key Vault holds nothing newer", async () => {
    env.cloud.rotateCredential('secret');
    const credential = new AppCredential(env.config);
    env.cloud.revokeAllBut({});
    await expect(credential.getToken(GRAPH_SCOPE)).rejects.toThrow(/AADSTS7000215/);
  });
});

describe('without MANAGED_IDENTITY_CLIENT_ID', () => {
  it('reads Key Vault through DefaultAzureCredential (here it finds the platform identity)', async () => {
    env.cloud.managedIdentity.systemAssigned = env.cloud.identity;
    try {
      const config = { ...env.config, managedIdentityClientId: undefined };
      const before = env.cloud.managedIdentity.requests.length;
      await expect(new AppCredential(config).status()).resolves.toMatchObject({ kind: expect.any(String) as unknown });
      const asked = env.cloud.managedIdentity.requests.slice(before);
      expect(asked.length).toBeGreaterThanOrEqual(1);
      expect(asked.every((r) => r.clientId === undefined && r.status === 200)).toBe(true);
    } finally {
      env.cloud.managedIdentity.systemAssigned = undefined;
    }
  });
});

describe('Key Vault misconfiguration', () => {
  it('says the managed identity lacks Key Vault Secrets User', async () => {
    env.cloud.identity.keyVaultSecretsUser = false;
    await expect(new AppCredential(env.config).getToken(GRAPH_SCOPE)).rejects.toThrow(
      /managed identity \(client id [0-9a-f-]+\) may not read secrets .*'Key Vault Secrets User'/,
    );
  });

  it('says which credential name is missing', async () => {
    const config = { ...env.config, keyVault: { ...env.config.keyVault, credentialName: 'no-such-credential' } };
    await expect(new AppCredential(config).getToken(GRAPH_SCOPE)).rejects.toThrow(
      /no-such-credential.*APP_CREDENTIAL_NAME/,
    );
  });
});
