/**
 * Hostile input to POST /api/mail/send: every trick is a 400 naming the field, before any Graph call, or (for
 * the size trick) the right path, never Graph's 4xx/5xx passed through or a silent drop.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { MAX_SEND_JSON_DEPTH } from '../../shared/mail/sendRequest';
import { PROBLEM_TYPE_BASE as PROBLEMS } from '../../shared/platform/problems/problem';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer, type GatewayClient } from '../support/gatewayClient';
import { outboxRecordsAndMessages } from '../support/outboxCounts';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 1, max: 3 } } });
  host = await startFunctionsHost(env.settings);
  // Every send waits up to 30 s for the outcome.
  gateway = gatewayClient(host, { wait: 30 });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** The fields of a send's answer these tests read. */
interface AnswerBody {
  errors?: { field: string; message: string }[];
  errorCount?: number;
  detail?: string;
  [k: string]: unknown;
}
type Answer = GatewayAnswer<AnswerBody>;

const base = { from: 'alerts@contoso.com', to: ['someone@contoso.com'], text: 'x' };
const fields = (answer: Answer) => (answer.body.errors ?? []).map((e) => e.field);

async function expect400(body: unknown, field: string, message?: RegExp): Promise<Answer> {
  const before = env.cloud.graph.requests.length;
  const answer = await gateway.send<AnswerBody>(body);
  expect(answer.status).toBe(400);
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  expect(fields(answer)).toContain(field);
  if (message) expect(answer.body.errors?.find((e) => e.field === field)?.message).toMatch(message);
  expect(env.cloud.graph.requests.length).toBe(before);
  return answer;
}

const headers = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-Custom-${i}`, `v${i}`]));

describe('custom headers', () => {
  it("refuses six X- headers with a 400 on the field (Exchange's limit is 5)", async () => {
    await expect400({ ...base, headers: headers(6) }, 'headers', /at most 5 headers/);
  });

  it('sends five, and all five arrive', async () => {
    const subject = `h-${randomUUID()}`;
    expect((await gateway.send({ ...base, subject, headers: headers(5) })).status).toBe(200);
    const [received] = env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);
    expect(received.internetMessageHeaders?.filter((h) => h.name?.startsWith('X-Custom-'))).toHaveLength(5);
  });

  it('refuses a "__proto__" key instead of dropping it silently, wherever it is', async () => {
    const raw = (inner: string) => `{"from":"alerts@contoso.com","to":["someone@contoso.com"],"text":"x",${inner}}`;
    await expect400(raw('"headers":{"__proto__":{"X-Evil":"1"}}'), 'headers.__proto__', /not allowed/);
    await expect400(raw('"headers":{"X-A":"1","__proto__":"x"}'), 'headers.__proto__');
    await expect400(raw('"cc":[{"address":"a@example.com","__proto__":{"name":"x"}}]'), 'cc[0].__proto__');
  });
});

describe('control characters in single-line fields', () => {
  it.each([
    ['CR LF in the subject', { ...base, subject: 'Hello\r\nBcc: victim@example.com' }, 'subject'],
    ['LF in a recipient name', { ...base, to: [{ address: 'someone@contoso.com', name: 'A\nB' }] }, 'to[0].name'],
    ['NUL in a recipient name', { ...base, cc: [{ address: 'it@contoso.com', name: 'IT\u0000' }] }, 'cc[0].name'],
    ['CR LF in a header value', { ...base, headers: { 'X-A': '1\r\nX-Injected: 2' } }, 'headers.X-A'],
    [
      'NUL in an attachment name',
      { ...base, attachments: [{ name: 'a\u0000.pdf', contentType: 'application/pdf', contentBase64: 'AAAA' }] },
      'attachments[0].name',
    ],
    ['NUL in an address', { ...base, to: ['some\u0000one@contoso.com'] }, 'to[0]'],
  ])('refuses %s, naming the field', async (_what, body, field) => {
    await expect400(body, field, /control characters/);
  });

  it('accepts a tab and non-ASCII text', async () => {
    const subject = `Grüße\tÜbersicht ${randomUUID()}`;
    const answer = await gateway.send({
      ...base,
      subject,
      to: [{ address: 'someone@contoso.com', name: 'Zoë Ωmega' }],
    });
    expect(answer.status).toBe(200);
  });
});

describe('RFC 5321 lengths', () => {
  it.each([
    ['a 65-character local part', `${'a'.repeat(65)}@example.com`, /before @ must be at most 64/],
    ['a 255-character address', `${'a'.repeat(60)}@${'b'.repeat(190)}.com`, /at most 254 characters/],
  ])('refuses %s', async (_what, address, message) => {
    await expect400({ ...base, to: [address] }, 'to[0]', message);
  });

  it('accepts a 64-character local part', async () => {
    expect((await gateway.send({ ...base, to: [`${'a'.repeat(64)}@example.com`] })).status).toBe(200);
  });
});

describe('the path choice measures the real Graph request', () => {
  it('sends two 1.46 MB attachments to 500 recipients with long names through the draft path, not into a 413', async () => {
    const subject = `big-${randomUUID()}`;
    const content = (seed: number) => Buffer.alloc(1_460_000, seed).toString('base64');
    const longName = (i: number) => `${'€'.repeat(250)}${String(i).padStart(6, '0')}`; // 256 characters, 756 bytes
    const to = [
      { address: 'someone@contoso.com', name: longName(0) },
      ...Array.from({ length: 499 }, (_, i) => ({ address: `r${i}@example.com`, name: longName(i + 1) })),
    ];
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send<AnswerBody>({
      ...base,
      to,
      subject,
      attachments: [
        { name: 'a.bin', contentType: 'application/octet-stream', contentBase64: content(1) },
        { name: 'b.bin', contentType: 'application/octet-stream', contentBase64: content(2) },
      ],
    });

    expect(answer.status).toBe(200);
    const seen = env.cloud.graph.requests.slice(before);
    expect(seen.some((r) => r.path.endsWith('/sendMail'))).toBe(false);
    expect(seen.filter((r) => r.status === 413)).toEqual([]);
    expect(seen.map((r) => `${r.method} ${r.path.split('/').slice(-1)[0]}`)).toEqual(
      expect.arrayContaining(['POST messages', 'POST send']),
    );
    const [received] = env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);
    expect(received.toRecipients).toHaveLength(500);
    expect(received.toRecipients?.[0].emailAddress?.name).toBe(longName(0));
    expect(received.attachments.map((a) => [a.name, String(a.contentBytes)])).toEqual([
      ['a.bin', content(1)],
      ['b.bin', content(2)],
    ]);
  });
});

describe('the size of a validation answer', () => {
  it('lists the first 50 problems and counts the rest for 10,000 invalid recipients', async () => {
    const answer = await expect400({ ...base, to: Array.from({ length: 10_000 }, (_, i) => `bad-${i}`) }, 'to[0]');
    expect(answer.body.errors).toHaveLength(50);
    expect(answer.body.errorCount).toBe(10_001); // each recipient, and the 500-recipient limit
    expect(answer.body.detail).toMatch(/; and 9991 more \(10001 in all\)$/);
    expect(Buffer.byteLength(answer.text)).toBeLessThan(16 * 1024);
  });

  it('lists every problem when there are few', async () => {
    const answer = await expect400({ ...base, to: ['bad-1', 'bad-2'] }, 'to[1]');
    expect(answer.body.errors).toHaveLength(2);
    expect(answer.body.errorCount).toBe(2);
  });
});

/** Outbox records and queue messages: what an accepted send leaves. */
async function storedMails(): Promise<{ records: number; messages: number }> {
  const connection = env.settings.AzureWebJobsStorage;
  const { records, messages } = await outboxRecordsAndMessages(connection);
  return { records, messages };
}

/**
 * Sends the request head declaring `declaredLength` body bytes and then only `partialBody`, keeping the connection
 * open; resolves with the status and problem document once the host has answered in full.
 */
function answerToPartialBody(
  declaredLength: number,
  partialBody: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const socket = connect(Number(new URL(host.url).port), '127.0.0.1');
  let received = '';
  return new Promise((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      received += d.toString('utf8');
      const split = received.indexOf('\r\n\r\n');
      if (split < 0) return;
      const head = received.slice(0, split);
      let text = received.slice(split + 4);
      if (/transfer-encoding: chunked/i.test(head)) {
        // Chunked: the answer is whole once the last (empty) chunk came.
        if (!/(^|\r\n)0\r\n\r\n$/.test(text)) return;
        let rest = text;
        text = '';
        for (let size = parseInt(rest, 16); size > 0; size = parseInt(rest, 16)) {
          const start = rest.indexOf('\r\n') + 2;
          text += rest.slice(start, start + size);
          rest = rest.slice(start + size + 2);
        }
      } else if (Buffer.byteLength(text) < Number(/content-length: (\d+)/i.exec(head)?.[1] ?? Infinity)) {
        return;
      }
      socket.destroy();
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
        body: JSON.parse(text) as Record<string, unknown>,
      });
    });
    socket.once('error', reject);
    socket.write(
      `POST /api/mail/send HTTP/1.1\r\nHost: 127.0.0.1\r\nx-functions-key: ${host.functionKey}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${declaredLength}\r\n\r\n${partialBody}`,
    );
  });
}

describe('deeply nested JSON', () => {
  const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
  const underHeaders = (inner: string) =>
    `{"from":"alerts@contoso.com","to":["someone@contoso.com"],"text":"x","headers":{"X-A":${inner}}}`;

  it.each([
    ['under headers', underHeaders(deep(100_000))],
    ['at the top level', deep(100_000)],
  ])('refuses 100,000 nested arrays %s with a 400 naming the depth limit, stores nothing', async (_where, body) => {
    const before = await storedMails();
    const graphBefore = env.cloud.graph.requests.length;
    const answer = await gateway.send<AnswerBody>(body);

    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toBe('application/problem+json');
    expect([answer.body.type, answer.body.maxDepth]).toEqual([`${PROBLEMS}too-deep`, MAX_SEND_JSON_DEPTH]);
    expect(answer.body.detail).toMatch(new RegExp(`more than ${MAX_SEND_JSON_DEPTH} levels deep`));
    expect(await storedMails()).toEqual(before);
    expect(env.cloud.graph.requests.length).toBe(graphBefore);
    // The worker is free again: health answers.
    expect((await gateway.health()).status).toBe(200);
  });

  it('answers at the first bracket past the limit, without waiting for the rest of the body', async () => {
    const whole = underHeaders(deep(100_000));
    // The head of the body only, one bracket past the limit: the rest is declared but never sent.
    const head = underHeaders('').slice(0, -2) + '['.repeat(MAX_SEND_JSON_DEPTH - 1);
    const answer = await answerToPartialBody(Buffer.byteLength(whole), head);

    expect(answer.status).toBe(400);
    expect([answer.body.type, answer.body.maxDepth]).toEqual([`${PROBLEMS}too-deep`, MAX_SEND_JSON_DEPTH]);
  });

  it('accepts a body nested exactly to the limit as JSON (then names the invalid header value)', async () => {
    // The object is level 1, "headers" 2, so a header value of 30 nested arrays reaches the limit.
    await expect400(underHeaders(deep(MAX_SEND_JSON_DEPTH - 2)), 'headers.X-A', /must be strings/);
  });
});

describe('Content-Encoding', () => {
  const json = (subject: string) => JSON.stringify({ ...base, subject });

  it.each([
    ['a gzip body labelled gzip', 'gzip', (text: string) => gzipSync(text)],
    ['a plain body labelled gzip', 'gzip', (text: string) => Buffer.from(text)],
    ['a plain body labelled br', 'br', (text: string) => Buffer.from(text)],
    ['a plain body labelled "identity, deflate"', 'identity, deflate', (text: string) => Buffer.from(text)],
  ])(
    'refuses %s with a 415 naming the encoding and identity, stores and sends nothing',
    async (_what, coding, encode) => {
      const subject = `encoded-${randomUUID()}`;
      const before = await storedMails();
      const graphBefore = env.cloud.graph.requests.length;
      const res = await gateway.send<{ type?: string; detail?: string }>(encode(json(subject)), {
        headers: { 'content-encoding': coding },
      });
      const answer = res.body;

      expect([res.status, res.headers.get('content-type'), answer.type]).toEqual([
        415,
        'application/problem+json',
        `${PROBLEMS}unsupported-content-encoding`,
      ]);
      expect(answer.detail).toContain(`Content-Encoding is '${coding}'`);
      expect(answer.detail).toMatch(/takes identity only/);
      expect(res.headers.get('accept-encoding')).toBe('identity');
      expect(await storedMails()).toEqual(before);
      expect(env.cloud.graph.requests.length).toBe(graphBefore);
    },
  );

  it('sends a body labelled identity', async () => {
    const subject = `identity-${randomUUID()}`;
    const res = await gateway.send(json(subject), { headers: { 'content-encoding': 'Identity' } });

    expect([res.status, res.body.status]).toEqual([200, 'sent']);
    expect(env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject)).toHaveLength(1);
  });
});
