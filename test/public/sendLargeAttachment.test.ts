/**
 * Large attachments through the gateway's real HTTP function, the Graph SDK and the Graph emulator: the gateway
 * decodes each upload chunk from the request's base64 as it uploads it, so the sizes around the 4 MiB chunk and the
 * 3-byte base64 groups must arrive byte for byte, in the expected number of PUTs, none carrying Authorization.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const MiB = 1024 * 1024;

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 0, max: 0 } } });
  host = await startFunctionsHost(env.settings);
  // Every send waits up to 30 s, so that the answer is the outcome.
  gateway = gatewayClient(host, { wait: 30 });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** A send of `content` as the attachment big.bin. */
const withAttachment = (content: string, subject: string) => ({
  from: 'alerts@contoso.com',
  to: ['someone@contoso.com'],
  subject,
  text: 'see attachment',
  attachments: [{ name: 'big.bin', contentType: 'application/octet-stream', contentBase64: content }],
});

describe('sending large attachments chunk by chunk', () => {
  // 4 MiB is 1 byte past a 3-byte group boundary and 8 MiB is 2 past: the second and third chunks start inside a
  // base64 group, so every alignment is uploaded. (Resuming from nextExpectedRanges: sendMail.test.ts.)
  it.each([
    ['3 MB', 3 * MiB, 1],
    ['4 MiB - 1', 4 * MiB - 1, 1],
    ['4 MiB + 1', 4 * MiB + 1, 2],
    ['4 MiB x 2 + 3', 8 * MiB + 3, 3],
    ['25 MB', 25 * MiB, 7],
  ])('uploads a %s attachment byte for byte in the expected PUTs', async (_label, size, chunks) => {
    // The upload budget is per 5 minutes; each case starts from a fresh one.
    env.cloud.graph.reset();
    const subject = `large-${randomUUID()}`;
    const content = randomBytes(size).toString('base64');
    expect((await gateway.send(withAttachment(content, subject))).status).toBe(200);

    const puts = env.cloud.graph.requests.filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.status)).toEqual([...Array<number>(chunks - 1).fill(200), 201]);
    expect(puts.some((r) => r.hadAuthorization)).toBe(false);
    const [received] = env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);
    const attachment = received.attachments.find((a) => a.name === 'big.bin');
    expect(attachment?.size).toBe(size);
    // Compared as strings of the same length first, so a failure names the size rather than dumping 33 MB.
    const delivered = String(attachment?.contentBytes);
    expect(delivered.length).toBe(content.length);
    expect(delivered === content).toBe(true);
  });
});
