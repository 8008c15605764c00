/** Every failed send logs what an operator needs: mailbox, problem type, Graph's code and ids, and the cause. */
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
let host: FunctionsHostProcess;
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true });
  host = await startFunctionsHost(env.settings);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

async function send(body: unknown): Promise<number> {
  const res = await fetch(`${host.url}/api/mail/send`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', prefer: 'wait=30', 'x-functions-key': host.functionKey },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

async function logSince(start: number, finished?: RegExp): Promise<string> {
  // The outbox processor logs once its invocation ends, which can be after `Prefer: wait` saw the outcome.
  const deadline = Date.now() + 10_000;
  while (finished && !finished.test(host.output().slice(start)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 200)); // let the host's last lines arrive
  return host.output().slice(start);
}

describe('failed sends in the log', () => {
  it("name the mailbox, problem type, Graph's code, request-id, client-request-id and cause", async () => {
    env.cloud.graph.injectFaults({ status: 403, code: 'ErrorSendAsDenied', times: 1, mailbox: 'billing@contoso.com' });
    const start = host.output().length;
    const graphBefore = env.cloud.graph.requests.length;
    expect(
      await send({
        from: 'billing@contoso.com',
        to: ['someone@contoso.com'],
        subject: 'quarterly figures',
        text: 'the body',
      }),
    ).toBe(403);
    const seen = env.cloud.graph.requests.slice(graphBefore).find((r) => r.errorCode === 'ErrorSendAsDenied');
    expect(seen?.requestId).toBeTruthy();

    const log = await logSince(start, /Executed 'Functions\.sendOutbox'/);
    expect(log).toContain(
      `send failed for billing@contoso.com: 403 send-as-denied; graph code ErrorSendAsDenied, request-id ${seen?.requestId}, client-request-id ${seen?.clientRequestId}; cause: Exchange refused to send as 'billing@contoso.com'`,
    );
    expect(log).not.toContain('quarterly figures');
    expect(log).not.toContain('the body');
  });

  it('name the field for a refused request, before any mailbox is known', async () => {
    const start = host.output().length;
    expect(await send({ from: 'alerts@contoso.com', to: ['nobody'], text: 'x' })).toBe(400);
    expect(await logSince(start)).toMatch(
      /send failed for alerts@contoso\.com: 400 validation; graph code -, .*cause: to\[0\]: is not a valid email address/,
    );
  });
});
