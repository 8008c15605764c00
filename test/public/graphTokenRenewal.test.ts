/**
 * A token Graph refuses with `401 InvalidAuthenticationToken` (revoked, or expired early) is dropped and the call
 * made once more with a new token from Entra, for every Graph call the gateway makes.
 */
import { randomUUID } from 'node:crypto';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true });
  host = await startFunctionsHost(env.settings);
  // Every send waits up to 30 s, so that the answer is the outcome.
  gateway = gatewayClient(host, { wait: 30 });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});
afterEach(() => env.cloud.graph.clearFaults());

const mail = (subject: string) => ({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'x' });

const graphTokenRequests = () =>
  env.cloud.entra.tokenRequests.filter((r) => r.scope.startsWith('https://graph.microsoft.com') && r.status === 200);

describe('a token Graph calls invalid', () => {
  it('is replaced by a new one and the send goes through', async () => {
    expect((await gateway.send(mail(`warm-${randomUUID()}`))).status).toBe(200); // a token is cached now
    const tokensBefore = graphTokenRequests().length;
    env.cloud.graph.injectFaults({
      status: 401,
      code: 'InvalidAuthenticationToken',
      times: 1,
      mailbox: 'alerts@contoso.com',
    });
    const before = env.cloud.graph.requests.length;
    const subject = `renewed-${randomUUID()}`;

    const answer = await gateway.send(mail(subject));

    expect(answer.status).toBe(200);
    const sends = env.cloud.graph.requests.slice(before).filter((r) => r.path.endsWith('/sendMail'));
    expect(sends.map((r) => r.status)).toEqual([401, 202]);
    expect(graphTokenRequests().length - tokensBefore).toBe(1);
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(1);
  });

  it('is retried once only: a second 401 reaches the caller as a problem', async () => {
    env.cloud.graph.injectFaults({
      status: 401,
      code: 'InvalidAuthenticationToken',
      times: 2,
      mailbox: 'alerts@contoso.com',
    });
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send(mail(`refused-${randomUUID()}`));
    expect(answer.status).toBe(502);
    expect(answer.body).toMatchObject({ graph: { code: 'InvalidAuthenticationToken', status: 401 } });
    expect(env.cloud.graph.requests.slice(before).filter((r) => r.path.endsWith('/sendMail'))).toHaveLength(2);
  });
});
