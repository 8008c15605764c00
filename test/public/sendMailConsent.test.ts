import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

// The app's token is cached for its lifetime, so withheld consent is set up before the gateway's first token.
let env: TestCloud;
let host: FunctionsHostProcess;
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graphRoles: ['User.Read.All'] });
  host = await startFunctionsHost(env.settings);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

const MAIL = { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject: 's', text: 'x' };

describe('sending without admin consent', () => {
  it('answers a problem naming Mail.Send and admin consent, before Graph is called', async () => {
    const res = await gatewayClient(host).send(MAIL, { wait: 30 });
    const body = res.body;

    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(body).toMatchObject({
      type: expect.stringMatching(/\/admin-consent-missing$/) as unknown,
      missingPermissions: ['Mail.Send'],
    });
    expect(body.detail).toMatch(/^admin consent not granted for Mail\.Send: .*Grant admin consent/);
    expect(env.cloud.graph.requests.filter((r) => r.path.includes('/users/'))).toHaveLength(0);
    expect(env.cloud.graph.inbox('someone@contoso.com')).toHaveLength(0);
  });

  it('with GRAPH_PERMISSION_CHECK=off leaves the decision to Graph, and explains its access denial with the token', async () => {
    const graphDecides = await startFunctionsHost({ ...env.settings, GRAPH_PERMISSION_CHECK: 'off' });
    try {
      const before = env.cloud.graph.requests.length;
      const res = await gatewayClient(graphDecides).send(MAIL, { wait: 30 });
      const body = res.body;

      const calls = env.cloud.graph.requests.slice(before).filter((r) => r.path.endsWith('/sendMail'));
      expect(calls.map((r) => [r.status, r.errorCode])).toEqual([[403, 'ErrorAccessDenied']]);
      expect(res.status).toBe(403);
      expect(body).toMatchObject({
        type: expect.stringMatching(/\/graph-access-denied$/) as unknown,
        missingPermissions: ['Mail.Send'],
        graph: { code: 'ErrorAccessDenied' },
      });
      expect(body.detail).toMatch(/^admin consent not granted for Mail\.Send .*Exchange RBAC for Applications/);
    } finally {
      await graphDecides.stop();
    }
  });
});
