/**
 * A dependency failure (Key Vault, Entra ID, storage) reaches the caller as a 503 problem that names the
 * dependency and the fix, never a 500, and never the secret.
 */
import { randomUUID } from 'node:crypto';
import { azuriteConnectionString, freePort } from '../emulators/azurite';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
const hosts: FunctionsHostProcess[] = [];
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true });
});
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await env?.close();
});
afterEach(() => {
  env.cloud.identity.keyVaultSecretsUser = true;
});

async function host(settings: Record<string, string> = {}): Promise<FunctionsHostProcess> {
  // One host at a time: a host left from an earlier test shares the storage and would take this test's messages.
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
  const started = await startFunctionsHost({ ...env.settings, ...settings });
  hosts.push(started);
  return started;
}

const MAIL = { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject: 's', text: 'x' };

/** A client of `target` whose sends wait up to 30 s, so that the answer is the outcome. */
const clientOf = (target: FunctionsHostProcess) => gatewayClient(target, { wait: 30 });

function expectDependencyProblem(answer: GatewayAnswer, dependency: string, slug: string): void {
  expect(answer.status).toBe(503);
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  expect(answer.headers.get('retry-after')).toBe('30');
  expect(answer.body).toMatchObject({
    status: 503,
    dependency,
    type: expect.stringMatching(new RegExp(`/${slug}$`)) as unknown,
  });
  expect(answer.body.detail).toMatch(/Nothing was sent\.$/);
  expect(answer.text).not.toMatch(/PRIVATE KEY|eyJ[\w-]{10,}\.|\bat .+\.(js|ts):\d+/);
}

describe('dependency failures', () => {
  it('Key Vault 403 (RBAC) at the token check: 503 naming the role, nothing stored', async () => {
    env.cloud.identity.keyVaultSecretsUser = false;
    const target = await host({ GRAPH_PERMISSION_CHECK: 'token' });
    const answer = await clientOf(target).send(MAIL);
    expectDependencyProblem(answer, 'Key Vault', 'key-vault-unavailable');
    expect(answer.body.detail).toMatch(
      /managed identity \(client id [0-9a-f-]+\) may not read secrets .*assign it the role 'Key Vault Secrets User'/,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(target.output()).toMatch(/Key Vault Secrets User/);
  });

  it('Key Vault 403 (RBAC) when only the outbox processor asks: the mail stays queued, its status names the role', async () => {
    env.cloud.identity.keyVaultSecretsUser = false;
    const target = await host({ GRAPH_PERMISSION_CHECK: 'off' });
    const answer = await clientOf(target).send(MAIL, { wait: 5 });
    expect(answer.status).toBe(202);
    const status = (await clientOf(target).status<{ status: string; reason?: string }>(String(answer.body.id))).body;
    expect(status.status).toBe('queued');
    expect(status.reason).toMatch(/^key-vault-unavailable: .*'Key Vault Secrets User'/);
    expect(target.output()).toMatch(/requeued.*Key Vault Secrets User/);
  });

  it('Entra ID rejecting every credential: 503 naming the AADSTS code and the fix', async () => {
    const target = await host();
    env.cloud.revokeAllBut({});
    try {
      const answer = await clientOf(target).send(MAIL);
      expectDependencyProblem(answer, 'Entra ID', 'entra-token-failed');
      expect(answer.body.detail).toMatch(
        /AADSTS700027.*Fix: the certificate is not registered on the app registration/,
      );
      expect(answer.body.detail).not.toMatch(/Trace ID|Correlation ID/);
    } finally {
      env.cloud.rotateCredential('certificate-pem');
    }
    expect((await clientOf(target).send(MAIL)).status).toBe(200);
  });

  it('storage down: 503 "storage unreachable" for a send with an Idempotency-Key', async () => {
    const closed = await freePort();
    const target = await host({ AzureWebJobsStorage: azuriteConnectionString(closed, closed, closed) });
    const answer = await clientOf(target).send(MAIL, { headers: { 'idempotency-key': randomUUID() } });
    expectDependencyProblem(answer, 'storage', 'storage-unavailable');
    expect(answer.body.detail).toMatch(/^Table storage unreachable .*AzureWebJobsStorage/);
  });

  it('storage down at accept, without an Idempotency-Key: 503 with Retry-After naming storage', async () => {
    const closed = await freePort();
    const target = await host({ AzureWebJobsStorage: azuriteConnectionString(closed, closed, closed) });
    const answer = await clientOf(target).send(MAIL, { headers: { prefer: '' } });
    expectDependencyProblem(answer, 'storage', 'storage-unavailable');
    expect(answer.body.detail).toMatch(/storage unreachable .*AzureWebJobsStorage/i);
    // That nothing half-stored survives a failure at any of the three writes: test/internal/outboxStore.test.ts.
    await new Promise((r) => setTimeout(r, 200));
    expect(target.output()).toMatch(/send failed for alerts@contoso\.com: 503 storage-unavailable/);
  });
});
