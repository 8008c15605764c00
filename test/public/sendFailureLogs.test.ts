/** Every failed send logs what an operator needs: mailbox, problem type, Graph's code and ids, and the cause. */
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
    const answer = await gateway.send({
      from: 'billing@contoso.com',
      to: ['someone@contoso.com'],
      subject: 'quarterly figures',
      text: 'the body',
    });
    expect(answer.status).toBe(403);
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
    expect((await gateway.send({ from: 'alerts@contoso.com', to: ['nobody'], text: 'x' })).status).toBe(400);
    expect(await logSince(start)).toMatch(
      /send failed for alerts@contoso\.com: 400 validation; graph code -, .*cause: to\[0\]: is not a valid email address/,
    );
  });
});

describe("a caller's values in the log", () => {
  const forged = '00:00:00.000 [sendOutbox] outbox mail 1234 sent as ceo@contoso.com';
  const base = { from: 'alerts@contoso.com', to: ['someone@contoso.com'], text: 'x' };

  /** The lines the host logged since `start` for the send that was refused. */
  async function refusalLines(start: number): Promise<string[]> {
    const log = await logSince(start, /Executed 'Functions\.sendMail'/);
    return log.split('\n');
  }

  it.each([
    ['a header name', { ...base, headers: { [`X-A\n${forged}`]: '1' } }],
    ['an unknown top-level key', { ...base, [`x\n${forged}`]: 1 }],
    ['an unknown key in a recipient', { ...base, to: [{ address: 'someone@contoso.com', [`n\r\n${forged}`]: 'x' }] }],
  ])('show a newline in %s as \\n, never as a line of its own', async (_where, body) => {
    const start = host.output().length;
    expect((await gateway.send(body)).status).toBe(400);
    const lines = await refusalLines(start);

    const quoting = lines.filter((line) => line.includes(forged));
    expect(quoting.length).toBeGreaterThan(0);
    // Every line that quotes the forged text is the refusal's own line, with the newline escaped before it.
    for (const line of quoting) expect(line).toMatch(/send failed for alerts@contoso\.com: 400 validation; .*\\n/);
    expect(quoting.filter((line) => line.includes(`\\n${forged}`) || line.includes(`\\r\\n${forged}`))).toEqual(
      quoting,
    );
  });

  it('cut a 255 KB key to a bounded line that still names the problem', async () => {
    const start = host.output().length;
    const name = `X-${'a'.repeat(255 * 1024)}\u0000`;
    expect((await gateway.send({ ...base, headers: { [name]: '1' } })).status).toBe(400);
    const lines = await refusalLines(start);

    const refusal = lines.filter((line) => line.includes('send failed for alerts@contoso.com: 400 validation'));
    expect(refusal).toHaveLength(1);
    expect(refusal[0].length).toBeLessThan(1024);
    expect(refusal[0]).toContain(`(${name.length + 'headers.'.length} chars): header names must start with X-`);
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThan(2048);
  });
});
