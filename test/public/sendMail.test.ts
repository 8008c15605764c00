import { randomBytes, randomUUID } from 'node:crypto';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { expectProblem, gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually } from '../support/watchSupport';

/** Messages per minute per mailbox, for Exchange and the pacer alike, in this file. */
const BURST_MESSAGES_PER_MINUTE = 10_000;

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  // Private storage: this file's host must be the only one working its outbox queue.
  // The 200-mail burst below is about Graph's concurrency, not Exchange's rate (outboxPacing.test.ts covers that):
  // Exchange (the emulator) and the gateway's pacer get the same raised rate, so that the gateway still never sends
  // faster than Exchange lets mail leave, and the 200 mails reach the Inbox at once instead of over 7 minutes.
  env = await startTestCloud({
    privateStorage: true,
    graph: { latencyMs: { min: 5, max: 15 }, limits: { messagesPerMinute: BURST_MESSAGES_PER_MINUTE } },
  });
  host = await startFunctionsHost({ ...env.settings, MAILBOX_MESSAGES_PER_MINUTE: String(BURST_MESSAGES_PER_MINUTE) });
  // Every send waits up to 30 s, so that the answer is the outcome, as a synchronous send's was.
  gateway = gatewayClient(host, { wait: 30 });
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});
afterEach(() => {
  env.cloud.graph.clearFaults();
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
});

const marker = () => `m-${randomUUID()}`;

const inboxBySubject = (address: string, subject: string) =>
  env.cloud.graph.inbox(address).filter((m) => m.subject === subject);
const sentItems = (address: string) => env.cloud.graph.mailbox(address).listMessages('sentitems');
const graphRequestsSince = (n: number) => env.cloud.graph.requests.slice(n);
const pdf = (bytes: number) => randomBytes(bytes).toString('base64');

describe('sending: what arrives', () => {
  it('delivers a text mail with cc, bcc, replyTo, importance, custom headers and an inline image, field by field', async () => {
    const subject = marker();
    const logo = randomBytes(2048).toString('base64');
    const answer = await gateway.send({
      from: 'alerts@contoso.com',
      to: ['someone@contoso.com', { address: 'external@example.org', name: 'External' }],
      cc: [{ address: 'it@contoso.com', name: 'IT' }],
      bcc: ['billing@contoso.com'],
      replyTo: ['support@contoso.com'],
      subject,
      html: '<p>Disk almost full <img src="cid:logo"></p>',
      importance: 'high',
      headers: { 'X-Ticket-Id': '4711' },
      attachments: [
        { name: 'logo.png', contentType: 'image/png', contentBase64: logo, inline: true, contentId: 'logo' },
      ],
    });

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'sent', id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown });
    expect(answer.headers.get('location')).toBe(`/api/mail/${String(answer.body.id)}`);
    expect(answer.headers.get('preference-applied')).toBe('wait=30');
    expect(answer.body.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const [received] = inboxBySubject('someone@contoso.com', subject);
    expect(received).toBeDefined();
    expect(received.from?.emailAddress?.address).toBe('alerts@contoso.com');
    expect(received.toRecipients?.map((r) => r.emailAddress?.address)).toEqual([
      'someone@contoso.com',
      'external@example.org',
    ]);
    expect(received.toRecipients?.[1].emailAddress?.name).toBe('External');
    expect(received.ccRecipients?.map((r) => [r.emailAddress?.address, r.emailAddress?.name])).toEqual([
      ['it@contoso.com', 'IT'],
    ]);
    expect(received.bccRecipients ?? []).toEqual([]);
    expect(received.replyTo?.map((r) => r.emailAddress?.address)).toEqual(['support@contoso.com']);
    expect(received.importance).toBe('high');
    expect(received.body).toMatchObject({
      contentType: 'html',
      content: '<p>Disk almost full <img src="cid:logo"></p>',
    });
    expect(received.internetMessageHeaders).toEqual(expect.arrayContaining([{ name: 'X-Ticket-Id', value: '4711' }]));
    expect(received.attachments).toHaveLength(1);
    expect(received.attachments[0]).toMatchObject({
      name: 'logo.png',
      contentType: 'image/png',
      isInline: true,
      contentId: 'logo',
      contentBytes: logo,
    });
    // Cc and Bcc recipients got it too; the external one went out.
    expect(inboxBySubject('it@contoso.com', subject)).toHaveLength(1);
    expect(inboxBySubject('billing@contoso.com', subject)).toHaveLength(1);
    expect(env.cloud.graph.outbound.filter((o) => o.subject === subject)).toHaveLength(1);
  });

  it('delivers a plain text body', async () => {
    const subject = marker();
    expect(
      (await gateway.send({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'plain body' }))
        .status,
    ).toBe(200);
    expect(inboxBySubject('someone@contoso.com', subject)[0].body).toMatchObject({
      contentType: 'text',
      content: 'plain body',
    });
  });

  it('sends a 2.9 MB attachment in one sendMail request', async () => {
    const subject = marker();
    const content = pdf(Math.floor(2.9 * 1024 * 1024));
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send({
      from: 'alerts@contoso.com',
      to: ['someone@contoso.com'],
      subject,
      text: 'x',
      attachments: [{ name: 'r.pdf', contentType: 'application/pdf', contentBase64: content }],
    });
    expect(answer.status).toBe(200);
    const paths = graphRequestsSince(before).map((r) => `${r.method} ${r.path}`);
    expect(paths).toEqual([expect.stringMatching(/^POST \/v1\.0\/users\/alerts%40contoso\.com\/sendMail$/) as unknown]);
    expect(inboxBySubject('someone@contoso.com', subject)[0].attachments[0].contentBytes).toBe(content);
  });

  it.each([
    ['10 MB', 10 * 1024 * 1024, 3],
    ['3 MB + 1 byte', 3 * 1024 * 1024 + 1, 1],
  ])(
    'sends a %s attachment through an upload session in chunks without Authorization',
    async (_label, size, chunks) => {
      const subject = marker();
      const content = pdf(size);
      const before = env.cloud.graph.requests.length;
      const answer = await gateway.send({
        from: 'alerts@contoso.com',
        to: ['someone@contoso.com'],
        subject,
        text: 'see attachment',
        attachments: [
          { name: 'big.bin', contentType: 'application/octet-stream', contentBase64: content },
          { name: 'small.txt', contentType: 'text/plain', contentBase64: Buffer.from('hello').toString('base64') },
        ],
      });
      expect(answer.status).toBe(200);
      const seen = graphRequestsSince(before);
      const puts = seen.filter((r) => r.method === 'PUT');
      expect(puts).toHaveLength(chunks);
      expect(puts.every((r) => !r.hadAuthorization)).toBe(true);
      expect(seen.map((r) => r.method + ' ' + r.path.split('/').slice(-1)[0])).toEqual(
        expect.arrayContaining(['POST messages', 'POST createUploadSession', 'POST send']),
      );
      const [received] = inboxBySubject('someone@contoso.com', subject);
      const byName = new Map(received.attachments.map((a) => [a.name ?? '', String(a.contentBytes)]));
      expect(byName.get('big.bin')).toBe(content);
      expect(byName.get('small.txt')).toBe(Buffer.from('hello').toString('base64'));
    },
  );

  it('resumes an upload from nextExpectedRanges after a failed chunk, and keeps inline images on the draft path', async () => {
    const subject = marker();
    const content = pdf(9 * 1024 * 1024);
    const logo = randomBytes(4096).toString('base64');
    env.cloud.graph.injectFaults({ status: 503, times: 1, method: 'PUT', pathPattern: /AttachmentSessions/ });
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send({
      from: 'alerts@contoso.com',
      to: ['someone@contoso.com'],
      subject,
      html: '<p><img src="cid:logo"></p>',
      attachments: [
        { name: 'big.bin', contentType: 'application/octet-stream', contentBase64: content },
        { name: 'logo.png', contentType: 'image/png', contentBase64: logo, inline: true, contentId: 'logo' },
      ],
    });
    expect(answer.status).toBe(200);
    const puts = graphRequestsSince(before).filter((r) => r.method === 'PUT');
    expect(puts.map((r) => r.status)).toEqual([503, 200, 200, 201]);
    const [received] = inboxBySubject('someone@contoso.com', subject);
    const big = received.attachments.find((a) => a.name === 'big.bin');
    expect(String(big?.contentBytes)).toBe(content);
    expect(received.attachments.find((a) => a.name === 'logo.png')).toMatchObject({
      isInline: true,
      contentId: 'logo',
      contentBytes: logo,
    });
  });

  it.each([
    ['sendMail', 1024],
    ['draft', 3 * 1024 * 1024 + 1],
  ])('honours saveToSentItems on the %s path', async (_path, size) => {
    for (const save of [true, false]) {
      const subject = marker();
      const answer = await gateway.send({
        from: 'support@contoso.com',
        to: ['someone@contoso.com'],
        subject,
        text: 'x',
        saveToSentItems: save,
        attachments: [{ name: 'a.bin', contentType: 'application/octet-stream', contentBase64: pdf(size) }],
      });
      expect(answer.status).toBe(200);
      expect(sentItems('support@contoso.com').filter((m) => m.subject === subject)).toHaveLength(save ? 1 : 0);
      expect(
        env.cloud.graph
          .mailbox('support@contoso.com')
          .listMessages('drafts')
          .filter((m) => m.subject === subject),
      ).toHaveLength(0);
    }
  });
});

describe('sending: bad input', () => {
  it.each([
    ['no recipient', { from: 'alerts@contoso.com', to: [], text: 'x' }, 'to'],
    ['both bodies', { from: 'alerts@contoso.com', to: ['a@example.com'], text: 'x', html: 'y' }, 'text'],
    [
      'a header without X-',
      { from: 'alerts@contoso.com', to: ['a@example.com'], text: 'x', headers: { Subject: 'y' } },
      'headers.Subject',
    ],
    ['a bad recipient', { from: 'alerts@contoso.com', to: ['nobody'], text: 'x' }, 'to[0]'],
    [
      'bad base64',
      {
        from: 'alerts@contoso.com',
        to: ['a@example.com'],
        text: 'x',
        attachments: [{ name: 'a', contentType: 'text/plain', contentBase64: '%%%' }],
      },
      'attachments[0].contentBase64',
    ],
    [
      '501 recipients',
      { from: 'alerts@contoso.com', to: Array.from({ length: 501 }, (_, i) => `r${i}@example.com`), text: 'x' },
      'to',
    ],
  ])('answers 400 naming the field for %s, and calls no Graph', async (_what, body, field) => {
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send(body);
    expectProblem(answer, 400);
    expect((answer.body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
    expect(env.cloud.graph.requests.length).toBe(before);
  });

  it('answers 400 to a 2 MB garbage body and to a body that is not JSON', async () => {
    expectProblem(await gateway.send(randomBytes(2 * 1024 * 1024)), 400);
    expectProblem(await gateway.send('{"from": "alerts@contoso.com", '), 400);
    expectProblem(await gateway.send('[1,2,3]'), 400);
  });

  it('answers 415 when the body is not declared JSON', async () => {
    expectProblem(
      await gateway.send('from=x', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
    );
  });

  it('answers 413 with the cap in the message past MAX_SEND_REQUEST_MB', async () => {
    const answer = await gateway.send(Buffer.alloc(51 * 1024 * 1024, 0x20));
    expectProblem(answer, 413);
    expect(answer.body.detail).toMatch(/50 MB \(MAX_SEND_REQUEST_MB\)/);
  });

  it('answers 401 without the function key', async () => {
    expect((await gateway.send('{}', { key: null })).status).toBe(401);
  });

  it('refuses a sender outside the policy with 403 before any Graph call', async () => {
    const before = env.cloud.graph.requests.length;
    const tokens = env.cloud.entra.tokenRequests.length;
    const answer = await gateway.send({ from: 'someone@contoso.com', to: ['a@example.com'], text: 'x' });
    expectProblem(answer, 403);
    expect(answer.body.detail).toMatch(/ALLOWED_SENDERS/);
    expect(env.cloud.graph.requests.length).toBe(before);
    expect(env.cloud.entra.tokenRequests.length).toBe(tokens);
  });
});

describe('idempotency', () => {
  const body = (subject: string) => ({
    from: 'alerts@contoso.com',
    to: ['someone@contoso.com'],
    subject,
    text: 'once',
  });

  it('returns the first result for a repeat without sending again', async () => {
    const subject = marker();
    const key = randomUUID();
    const first = await gateway.send(body(subject), { headers: { 'idempotency-key': key } });
    const second = await gateway.send(body(subject), { headers: { 'idempotency-key': key } });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });

  it('answers 409 to the same key with another body', async () => {
    const key = randomUUID();
    expect((await gateway.send(body(marker()), { headers: { 'idempotency-key': key } })).status).toBe(200);
    expectProblem(await gateway.send(body(marker()), { headers: { 'idempotency-key': key } }), 409);
  });

  it('sends exactly once for concurrent duplicates', async () => {
    const subject = marker();
    const key = randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => gateway.send(body(subject), { headers: { 'idempotency-key': key } })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });

  it('maps the key to the outbox mail: a repeat after Graph refused it gets the same id and problem, and sends nothing', async () => {
    const subject = marker();
    const key = randomUUID();
    env.cloud.graph.injectFaults({ status: 403, code: 'ErrorSendAsDenied', times: 1, mailbox: 'alerts@contoso.com' });
    const first = await gateway.send(body(subject), { headers: { 'idempotency-key': key } });
    expectProblem(first, 403);
    const before = env.cloud.graph.requests.length;
    const second = await gateway.send(body(subject), { headers: { 'idempotency-key': key } });
    expectProblem(second, 403);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(env.cloud.graph.requests.length).toBe(before);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(0);
  });

  /** `value` as JSON with its object keys in reverse order, indented, and every `m` written as `\u006d`. */
  const reformatted = (value: unknown): string => {
    const reorder = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reorder)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reorder(x)]),
            )
          : v;
    return JSON.stringify(reorder(value), null, 3).replace(/m/g, '\\u006d');
  };

  it('compares requests, not bytes: the same JSON with other whitespace, key order and escapes is a repeat', async () => {
    const subject = marker();
    const key = randomUUID();
    const first = await gateway.send(JSON.stringify(body(subject)), { headers: { 'idempotency-key': key } });
    expect(first.status).toBe(200);
    const again = reformatted(body(subject));
    expect(again).not.toBe(JSON.stringify(body(subject)));
    expect(JSON.parse(again)).toEqual(body(subject));

    const second = await gateway.send(again, { headers: { 'idempotency-key': key } });
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expectProblem(
      await gateway.send({ ...body(subject), text: 'twice' }, { headers: { 'idempotency-key': key } }),
      409,
    );
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });

  it('compares a large attachment (streamed into a blob) by its content: reformatted is a repeat, other bytes are 409', async () => {
    const subject = marker();
    const key = randomUUID();
    const content = randomBytes(96 * 1024); // 128 KiB of base64: past the 64 KiB the reader streams into a blob
    const withAttachment = (bytes: Buffer) => ({
      ...body(subject),
      attachments: [
        { name: 'data.bin', contentType: 'application/octet-stream', contentBase64: bytes.toString('base64') },
      ],
    });
    const first = await gateway.send(withAttachment(content), { headers: { 'idempotency-key': key } });
    expect(first.status).toBe(200);

    const second = await gateway.send(reformatted(withAttachment(content)), { headers: { 'idempotency-key': key } });
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const other = Buffer.from(content);
    other[other.length - 1] ^= 0xff; // same size, one byte different
    expectProblem(await gateway.send(withAttachment(other), { headers: { 'idempotency-key': key } }), 409);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });

  it("answers a repeat after the mail was sent with the mail's status now (sent), not the first answer's queued", async () => {
    const subject = marker();
    const key = randomUUID();
    const first = await gateway.send(body(subject), { headers: { 'idempotency-key': key, prefer: '' } });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ status: 'queued' });
    const id = String(first.body.id);
    await eventually(async () => (await gateway.mailStatus(id)).status === 'sent', 'the mail to be sent', 30_000);
    const { requestIds } = await gateway.mailStatus<{ requestIds: string[] }>(id);

    const second = await gateway.send(body(subject), { headers: { 'idempotency-key': key, prefer: '' } });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ id, status: 'sent', requestId: requestIds.at(-1) });
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.headers.get('location')).toBe(`/api/mail/${id}`);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });

  it('leaves the key free when the request was refused before it was stored', async () => {
    const key = randomUUID();
    const subject = marker();
    expectProblem(
      await gateway.send({ ...body(subject), from: 'ceo@contoso.com' }, { headers: { 'idempotency-key': key } }),
      403,
    );
    expect((await gateway.send(body(subject), { headers: { 'idempotency-key': key } })).status).toBe(200);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
  });
});

describe('throttling', () => {
  it('accepts 200 concurrent mails from one mailbox at once, then sends all with at most 4 Graph requests in flight', async () => {
    const subject = marker();
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        gateway.send(
          { from: 'billing@contoso.com', to: ['someone@contoso.com'], subject: `${subject}-${i}`, text: 'x' },
          { headers: { prefer: '' } },
        ),
      ),
    );
    expect(answers.filter((a) => a.status !== 202 || a.body.status !== 'queued')).toEqual([]);
    const arrived = () =>
      env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject?.startsWith(subject)).length;
    await eventually(() => arrived() === 200, 'all 200 mails in the Inbox', 120_000);
    expect(arrived()).toBe(200);
    expect(env.cloud.graph.peakConcurrency('billing@contoso.com')).toBeLessThanOrEqual(4);
    expect(env.cloud.graph.requests.filter((r) => r.status === 429 && r.path.includes('billing'))).toHaveLength(0);
  });

  it('puts a mail Graph answers 429 (Retry-After: 1.5) back on the queue, then sends it', async () => {
    const subject = marker();
    env.cloud.graph.injectFaults({ status: 429, retryAfter: '1.5', times: 1, mailbox: 'alerts@contoso.com' });
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'x' });
    expect(answer.status).toBe(200);
    const seen = graphRequestsSince(before).filter((r) => r.path.endsWith('/sendMail'));
    expect(seen.map((r) => r.status)).toEqual([429, 202]);
    expect(seen[1].startedAt.getTime() - seen[0].startedAt.getTime()).toBeGreaterThanOrEqual(1500);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(1);
    const status = await gateway.mailStatus(String(answer.body.id));
    expect(status).toMatchObject({ status: 'sent', attempts: 2 });
    // Re-enqueued, not waited out: the host logged the mail going back on the queue between the two attempts.
    expect(host.output()).toMatch(new RegExp(`outbox mail ${String(answer.body.id)} for alerts@contoso.com: requeued`));
  });

  it('keeps a mail queued while Graph stays unavailable: Prefer: wait ends in 202, the status says why', async () => {
    // billing, not alerts: this mail stays in the outbox and retries after the test, so it must not meet the
    // faults later tests inject for alerts.
    const subject = marker();
    env.cloud.graph.injectFaults({ status: 503, retryAfter: '2', times: Infinity, mailbox: 'billing@contoso.com' });
    const answer = await gateway.send(
      { from: 'billing@contoso.com', to: ['someone@contoso.com'], subject, text: 'x' },
      { wait: 3 },
    );
    expect(answer.status).toBe(202);
    expect(answer.headers.get('preference-applied')).toBe('wait=3');
    const status = await gateway.mailStatus(String(answer.body.id));
    expect(status).toMatchObject({ status: 'queued', reason: 'graph 503' });
    expect(Number(status.attempts)).toBeGreaterThanOrEqual(1);
    expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(0);
  });
});

describe('Graph failures mapped to actions', () => {
  it.each([
    ['ErrorSendAsDenied', 403, 403, 'send-as-denied', /Send-As/],
    ['ErrorAccessDenied', 403, 403, 'mailbox-out-of-scope', /application access scope/],
    ['MailboxNotEnabledForRESTAPI', 404, 422, 'mailbox-not-enabled', /on-premises or unlicensed/],
    ['ErrorInvalidRecipients', 400, 422, 'invalid-recipient', /recipients/],
    ['RequestEntityTooLarge', 413, 413, 'too-large', /35 MB/],
  ])("maps %s to %s with Graph's ids and an operator hint", async (code, graphStatus, status, slug, detail) => {
    env.cloud.graph.injectFaults({ status: graphStatus, code, times: 1, mailbox: 'alerts@contoso.com' });
    const before = env.cloud.graph.requests.length;
    const answer = await gateway.send({ from: 'alerts@contoso.com', to: ['someone@contoso.com'], text: 'x' });
    expectProblem(answer, status);
    expect(answer.body.type).toMatch(new RegExp(`/${slug}$`));
    expect(answer.body.detail).toMatch(detail);
    const seen = graphRequestsSince(before).find((r) => r.errorCode === code);
    expect(answer.body.graph).toMatchObject({
      code,
      requestId: seen?.requestId,
      clientRequestId: seen?.clientRequestId,
    });
  });
});

describe("the mailbox's maximum message size", () => {
  it("maps Exchange's ErrorMessageSizeExceeded to 413 too-large naming the limit and Set-Mailbox -MaxSendSize; nothing is sent", async () => {
    // A mailbox whose MaxSendSize is 64 KiB, so that a 100 KB attachment stands for a 36 MB one against 35 MB.
    const billing = [...env.cloud.tenant.users.values()].find((u) => u.mail === 'billing@contoso.com')!;
    const limit = billing.maxSendSizeBytes;
    billing.maxSendSizeBytes = 64 * 1024;
    try {
      const subject = marker();
      const answer = await gateway.send({
        from: 'billing@contoso.com',
        to: ['someone@contoso.com'],
        subject,
        text: 'x',
        attachments: [{ name: 'big.pdf', contentType: 'application/pdf', contentBase64: pdf(100 * 1024) }],
      });
      expectProblem(answer, 413);
      expect(answer.body.type).toMatch(/\/too-large$/);
      expect(answer.body.detail).toMatch(/35 MB by default/);
      expect(answer.body.detail).toMatch(/Set-Mailbox -Identity billing@contoso\.com -MaxSendSize 150MB/);
      expect(answer.body.graph).toMatchObject({ code: 'ErrorMessageSizeExceeded', status: 413 });
      expect(await gateway.mailStatus(String(answer.body.id))).toMatchObject({ status: 'failed' });
      // Exchange accepted nothing with this subject (other tests' mail from the mailbox may still be leaving).
      const accepted = env.cloud.graph.submissions('billing@contoso.com').messages.map((m) => m.subject);
      expect(accepted).not.toContain(subject);
      expect(inboxBySubject('someone@contoso.com', subject)).toHaveLength(0);
    } finally {
      billing.maxSendSizeBytes = limit;
    }
  });
});

describe('logs', () => {
  it('contain no token, secret or message text over a whole send', async () => {
    const secretText = `body-${randomUUID()}`;
    const subject = `subject-${randomUUID()}`;
    const logStart = host.output().length;
    const answer = await gateway.send(
      { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: secretText },
      { headers: { 'idempotency-key': randomUUID() } },
    );
    expect(answer.status).toBe(200);
    await new Promise((r) => setTimeout(r, 200)); // let the host's last lines arrive
    const all = host.output().slice(logStart);
    expect(all).toMatch(/queued as alerts@contoso.com/);
    expect(all).toMatch(new RegExp(`outbox mail ${String(answer.body.id)} for alerts@contoso.com: sent`));
    expect(all).not.toContain(secretText);
    expect(all).not.toContain(subject);
    expect(all).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}\./);
    expect(all).not.toContain(host.functionKey);
    expect(all).not.toContain('PRIVATE KEY');
  });
});
