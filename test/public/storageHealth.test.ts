/**
 * Health and diagnostics see storage: with the table or queue service down they say so (503, "storage
 * unreachable", naming the service), instead of answering ok.
 */
import { appRoot } from '../../shared/platform/packageInfo';
import { azuriteConnectionString, freePort, startAzurite, type RunningAzurite } from '../emulators/azurite';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
let azurite: RunningAzurite | undefined;
const hosts: FunctionsHostProcess[] = [];

beforeAll(async () => {
  env = await startTestCloud();
});
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await azurite?.stop();
  await env?.close();
});

interface Report {
  checks?: { name: string; status: string; detail: string }[];
  storage?: Record<string, string>;
  detail?: string;
}

const storageChecks = (report: Report) => (report.checks ?? []).filter((c) => c.name.endsWith('Storage'));

describe('storage in health and diagnostics', () => {
  it('says ok while storage answers, and "storage unreachable" for both services once it stops', async () => {
    azurite = await startAzurite({ projectRoot: appRoot() });
    const host = await startFunctionsHost({ ...env.settings, AzureWebJobsStorage: azurite.connectionString });
    hosts.push(host);
    const gateway = gatewayClient(host);

    const healthy = await gateway.health<Report>();
    expect(healthy.status).toBe(200);
    expect(healthy.body).toMatchObject({ status: 'ok', storage: { table: 'ok', queue: 'ok' } });
    const report = await gateway.diagnostics<Report>();
    expect(storageChecks(report.body).map((c) => [c.name, c.status])).toEqual([
      ['tableStorage', 'ok'],
      ['queueStorage', 'ok'],
    ]);

    await azurite.stop();
    azurite = undefined;
    const down = await gateway.diagnostics<Report>();
    expect(down.status).toBe(503);
    expect(storageChecks(down.body).map((c) => [c.name, c.status])).toEqual([
      ['tableStorage', 'failed'],
      ['queueStorage', 'failed'],
    ]);
    expect(storageChecks(down.body)[0].detail).toMatch(/^Table storage unreachable .*AzureWebJobsStorage/);
    expect(storageChecks(down.body)[1].detail).toMatch(/^Queue storage unreachable/);

    // Health reuses its probe for a few seconds (it stays cheap), then sees the outage.
    await new Promise((r) => setTimeout(r, 5_500));
    const health = await gateway.health();
    expect(health.status).toBe(503);
    expect(health.headers.get('content-type')).toBe('application/problem+json');
    const problem = health.body;
    expect(problem).toMatchObject({
      status: 503,
      type: expect.stringMatching(/\/problems\/storage-unavailable$/) as unknown,
      storage: { table: 'failed', queue: 'failed' },
    });
    expect(problem.detail).toMatch(/Table storage unreachable.*Queue storage unreachable/);
    expect(JSON.stringify(problem)).not.toMatch(/AccountKey|Eby8vdM02/);
  }, 30_000);

  it('names the table service alone when only it is down; the mailbox API answers 503 storage-unavailable, not 500', async () => {
    const queueUrl = new URL(
      /QueueEndpoint=([^;]+)/.exec(env.settings.AzureWebJobsStorage)?.[1] ?? 'http://127.0.0.1:1/devstoreaccount1',
    );
    const host = await startFunctionsHost({
      ...env.settings,
      AzureWebJobsStorage: azuriteConnectionString(Number(queueUrl.port), await freePort()),
      ALLOWED_WATCH_MAILBOXES: 'support@contoso.com',
    });
    hosts.push(host);
    const gateway = gatewayClient(host);
    const health = await gateway.health<Report>();
    expect(health.status).toBe(503);
    expect(health.body.storage).toEqual({ table: 'failed', queue: 'ok' });
    expect(health.body.detail).toMatch(/^Table storage unreachable/);
    const report = await gateway.diagnostics<Report>();
    expect(storageChecks(report.body).map((c) => c.status)).toEqual(['failed', 'ok']);

    for (const [method, path] of [
      ['GET', '/api/mailboxes'],
      ['GET', '/api/mailboxes/support@contoso.com'],
      ['PUT', '/api/mailboxes/support@contoso.com'],
      ['DELETE', '/api/mailboxes/support@contoso.com'],
    ]) {
      const res = await gateway.request(method, path);
      const body = res.body;
      expect({ method, path, status: res.status, type: body.type }).toEqual({
        method,
        path,
        status: 503,
        type: expect.stringMatching(/\/problems\/storage-unavailable$/) as unknown,
      });
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(body.detail).toMatch(/^Table storage unreachable /);
    }
  }, 30_000);
});
