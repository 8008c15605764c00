/**
 * A send's body is read as it streams in (HTTP streaming, the local host forwarding it as the Functions host does):
 * parsed as it arrives, each large attachment's base64 checked and decoded into its own outbox blob as uncommitted
 * blocks, committed with the request (stored with references to those blobs) only once every check passed.
 * What streaming adds to the send tests: a body in many small TCP writes arrives byte-exact at Graph; what the outbox
 * holds for a large attachment; JSON escapes inside base64; and a body refused or abandoned mid-stream (past the cap,
 * malformed, not base64, the client gone) leaves nothing stored: no blob (not even uncommitted blocks), no record, no
 * queue message.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { BlobServiceClient } from '@azure/storage-blob';
import { OUTBOX_CONTAINER } from '../../shared/outbox/store/outboxStore';
import { STREAMED_CONTENT_THRESHOLD } from '../../shared/mail/sendRequest';
import { STAGED_BLOCK_BYTES } from '../../shared/outbox/store/stagedBlob';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { outboxRecordsAndMessages } from '../support/outboxCounts';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually } from '../support/watchSupport';

const MiB = 1024 * 1024;
const CAP_MB = 8;

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 0, max: 0 } } });
  host = await startFunctionsHost({ ...env.settings, MAX_SEND_REQUEST_MB: String(CAP_MB) });
  gateway = gatewayClient(host);
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** The JSON of a send whose attachment is `contentBase64`, split where the base64 goes. */
function sendJson(subject: string, contentBase64 = ''): { head: string; tail: string } {
  const json = JSON.stringify({
    from: 'alerts@contoso.com',
    to: ['someone@contoso.com'],
    subject,
    text: 'see attachment',
    attachments: [{ name: 'big.bin', contentType: 'application/octet-stream', contentBase64: '<content>' }],
  });
  const at = json.indexOf('<content>');
  return { head: json.slice(0, at) + contentBase64, tail: json.slice(at + '<content>'.length) };
}

/** Everything the outbox holds: blobs (uncommitted blocks too), records, and queue messages. */
async function outboxContents(): Promise<{ blobs: string[]; records: number; messages: number }> {
  const connection = env.settings.AzureWebJobsStorage;
  const container = BlobServiceClient.fromConnectionString(connection).getContainerClient(OUTBOX_CONTAINER);
  const blobs: string[] = [];
  if (await container.exists()) {
    for await (const blob of container.listBlobsFlat({ includeUncommitedBlobs: true })) blobs.push(blob.name);
  }
  const { records, messages } = await outboxRecordsAndMessages(connection);
  return { blobs, records, messages };
}

/** The outbox container (tests read what a mail left there). */
function outboxContainer() {
  return BlobServiceClient.fromConnectionString(env.settings.AzureWebJobsStorage).getContainerClient(OUTBOX_CONTAINER);
}

/** The fields of a send's answer the tests read. */
interface Answer {
  id?: string;
  status?: string | number;
  detail?: string;
  errors?: { field: string; message: string }[];
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The bytes of the attachment `name` of the mail `subject` received by someone@, decoded. */
function delivered(subject: string, name: string): Buffer {
  const [received] = env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);
  const attachment = received?.attachments.find((a) => a.name === name);
  return Buffer.from(String(attachment?.contentBytes), 'base64');
}

/** The Graph calls made for the mail `subject`'s sender since `from` (method and path, the upload URL's as PUT). */
function graphCallsSince(from: number): string[] {
  return env.cloud.graph.requests.slice(from).map((r) => (r.method === 'PUT' ? 'PUT' : `${r.method} ${r.path}`));
}

/** A raw HTTP/1.1 request to the send function, whose body the test writes itself. */
function rawSend(contentLength: number): {
  write(data: string | Buffer): Promise<void>;
  destroy(): void;
  response: Promise<string>;
} {
  const socket = connect(Number(new URL(host.url).port), '127.0.0.1');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
  const response = new Promise<string>((resolve, reject) => {
    socket.once('close', () => resolve(received));
    socket.once('error', reject);
  });
  response.catch(() => undefined);
  socket.write(
    `POST /api/mail/send HTTP/1.1\r\nHost: 127.0.0.1\r\nx-functions-key: ${host.functionKey}\r\n` +
      `Content-Type: application/json\r\nPrefer: wait=30\r\nContent-Length: ${contentLength}\r\n` +
      'Connection: close\r\n\r\n',
  );
  return {
    write: (data) => new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve()))),
    destroy: () => socket.destroy(),
    response,
  };
}

/** The status and JSON body of a raw HTTP response (relayed as it streams: chunked, or with a Content-Length). */
function parseResponse(raw: string): { status: number; body: Record<string, unknown> } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  let rest = raw.slice(split + 4);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  if (!/transfer-encoding: chunked/i.test(head)) return { status, body: JSON.parse(rest) as Record<string, unknown> };
  let text = '';
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return { status, body: JSON.parse(text) as Record<string, unknown> };
    text += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

describe('sending with a streamed body', () => {
  it('delivers an attachment sent in thousands of small TCP writes byte for byte', async () => {
    env.cloud.graph.reset();
    const subject = `streamed-${randomUUID()}`;
    // Past two staged blocks and one upload chunk, not on any boundary.
    const content = randomBytes(5 * MiB + 7).toString('base64');
    const { head, tail } = sendJson(subject, content);
    const body = Buffer.from(head + tail);
    const exchange = rawSend(body.length);
    let offset = 0;
    let writes = 0;
    while (offset < body.length) {
      const size = 1 + ((writes * 7919) % 4096);
      await exchange.write(body.subarray(offset, offset + size));
      offset += size;
      writes++;
    }
    const answer = parseResponse(await exchange.response);

    expect([answer.status, answer.body]).toEqual([200, expect.objectContaining({ status: 'sent' })]);
    expect(writes).toBeGreaterThan(2000);
    const [received] = env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);
    const delivered = String(received.attachments.find((a) => a.name === 'big.bin')?.contentBytes);
    expect(delivered.length).toBe(content.length);
    expect(delivered === content).toBe(true);
  });

  it('answers 413 naming the cap as soon as a chunked body outgrows it, and stores nothing', async () => {
    const before = await outboxContents();
    const { head } = sendJson(`too-large-${randomUUID()}`);
    let sent = 0;
    const total = (CAP_MB + 4) * MiB;
    // No Content-Length: the cap can only be found while reading.
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        const chunk = Buffer.from(sent === 0 ? head : randomBytes(48 * 1024).toString('base64'));
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await gateway.send<{ detail?: string; limitBytes?: number }>(body);
    const answer = res.body;

    expect(res.status).toBe(413);
    expect(answer.detail).toMatch(new RegExp(`${CAP_MB} MB \\(MAX_SEND_REQUEST_MB\\)`));
    expect(answer.limitBytes).toBe(CAP_MB * MiB);
    expect(await outboxContents()).toEqual(before);
  });

  it('answers 400 to JSON that breaks after megabytes were staged, and leaves no blocks behind', async () => {
    const before = await outboxContents();
    const { head } = sendJson(`malformed-${randomUUID()}`, randomBytes(3 * MiB).toString('base64'));
    // Well past one staged block before the JSON breaks.
    expect(Buffer.byteLength(head)).toBeGreaterThan(STAGED_BLOCK_BYTES * 1.5);
    const res = await gateway.send<{ type?: string; detail?: string }>(`${head}"}]]]`);
    const answer = res.body;

    expect(res.status).toBe(400);
    expect(answer.detail).toMatch(/not valid JSON/);
    expect(await outboxContents()).toEqual(before);
  });

  it('logs a client that hangs up mid-body as information and leaves no blocks behind', async () => {
    const before = await outboxContents();
    const outputBefore = host.output().length;
    const { head, tail } = sendJson(`abandoned-${randomUUID()}`, randomBytes(4 * MiB).toString('base64'));
    const exchange = rawSend(Buffer.byteLength(head + tail));
    await exchange.write(head.slice(0, 4 * MiB));
    // Wait until the gateway has read enough to stage blocks, then hang up.
    const deadline = Date.now() + 10_000;
    while (!/Executing 'Functions\.sendMail'/.test(host.output().slice(outputBefore))) {
      if (Date.now() > deadline) throw new Error(`sendMail never started:\n${host.output().slice(outputBefore)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    exchange.destroy();

    const abandoned = /send abandoned: the client disconnected before the request body arrived; nothing was sent/;
    while (!abandoned.test(host.output().slice(outputBefore))) {
      if (Date.now() > deadline) throw new Error(`no abandon line:\n${host.output().slice(outputBefore)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const lines = host.output().slice(outputBefore).split('\n');
    expect(lines.filter((l) => /send abandoned/.test(l)).length).toBe(1);
    // A stack frame is a line of its own starting with whitespace and `at` (a timer's "fired at" is not one).
    expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);
    // The gateway's own logs stay at information for this; staged blocks are discarded before the function ends.
    while (!/Executed 'Functions\.sendMail'/.test(host.output().slice(outputBefore))) {
      if (Date.now() > deadline) throw new Error('sendMail never finished');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await outboxContents()).toEqual(before);
  });

  it('holds a large attachment as a blob of its decoded bytes, the stored request only referencing it', async () => {
    const data = randomBytes(3 * MiB + 1);
    const { head, tail } = sendJson(`held-${randomUUID()}`, data.toString('base64'));
    // Scheduled an hour ahead: the outbox keeps it, so what it holds can be read.
    const json = JSON.parse(head + tail) as Record<string, unknown>;
    const answer = await gateway.send<Answer>(
      JSON.stringify({ ...json, sendAt: new Date(Date.now() + 3_600_000).toISOString() }),
      { wait: 0 },
    );

    expect([answer.status, answer.body.status]).toEqual([202, 'scheduled']);
    const id = String(answer.body.id);
    const blobs: string[] = [];
    for await (const blob of outboxContainer().listBlobsFlat({ prefix: `${id}.` })) blobs.push(blob.name);
    expect(blobs.sort()).toEqual([`${id}.attachment-0`, `${id}.json`]);
    const stored = await outboxContainer().getBlockBlobClient(`${id}.attachment-0`).downloadToBuffer();
    expect([stored.length, sha256(stored)]).toEqual([data.length, sha256(data)]);
    const request = await outboxContainer().getBlockBlobClient(`${id}.json`).downloadToBuffer();
    expect(request.length).toBeLessThan(1024);
    expect((JSON.parse(request.toString()) as { attachments: unknown[] }).attachments).toEqual([
      {
        name: 'big.bin',
        contentType: 'application/octet-stream',
        contentBase64: { $blob: `${id}.attachment-0`, size: data.length },
      },
    ]);
  });

  it('sends a large attachment through an upload session from its blob, byte for byte, and then deletes the blobs', async () => {
    env.cloud.graph.reset();
    const subject = `blob-upload-${randomUUID()}`;
    const data = randomBytes(5 * MiB + 2);
    const { head, tail } = sendJson(subject, data.toString('base64'));
    const answer = await gateway.send<Answer>(head + tail, { wait: 30 });

    expect([answer.status, answer.body.status]).toEqual([200, 'sent']);
    const received = delivered(subject, 'big.bin');
    expect([received.length, sha256(received)]).toEqual([data.length, sha256(data)]);
    const calls = graphCallsSince(0);
    expect(calls.filter((c) => c === 'PUT')).toHaveLength(2);
    expect(calls.some((c) => c.endsWith('/attachments/createUploadSession'))).toBe(true);
    // The processor drops the blobs just after it records `sent` (the record is the commit point), so a caller
    // answered `sent` may look a moment before they are gone.
    const blobsLeft = async () => {
      const left: string[] = [];
      for await (const blob of outboxContainer().listBlobsFlat({ prefix: `${String(answer.body.id)}.` }))
        left.push(blob.name);
      return left;
    };
    await eventually(async () => (await blobsLeft()).length === 0, 'the blobs to be deleted', 5_000).catch(
      () => undefined,
    );
    expect(await blobsLeft()).toEqual([]);
  });

  it('sends an attachment held as a blob but small enough for one sendMail request inline, byte for byte', async () => {
    const subject = `blob-inline-${randomUUID()}`;
    const data = randomBytes(STREAMED_CONTENT_THRESHOLD * 2);
    const { head, tail } = sendJson(subject, data.toString('base64'));
    const from = env.cloud.graph.requests.length;
    const answer = await gateway.send<Answer>(head + tail, { wait: 30 });

    expect([answer.status, answer.body.status]).toEqual([200, 'sent']);
    expect(delivered(subject, 'big.bin').equals(data)).toBe(true);
    expect(graphCallsSince(from)).toEqual(['POST /v1.0/users/alerts%40contoso.com/sendMail']);
  });

  it('accepts JSON escapes inside a large attachment (\\/ and \\u0041) and delivers the bytes they stand for', async () => {
    const subject = `escaped-${randomUUID()}`;
    const data = randomBytes(3 * MiB);
    const base64 = data.toString('base64');
    expect(base64.includes('/') && base64.includes('A')).toBe(true);
    // Every '/' escaped as \/ and every 'A' as \u0041: still the same JSON string.
    const escaped = base64.replace(/\//g, '\\/').replace(/A/g, '\\u0041');
    const { head, tail } = sendJson(subject, escaped);
    expect(JSON.parse(head + tail)).toMatchObject({ attachments: [{ contentBase64: base64 }] });
    const answer = await gateway.send<Answer>(head + tail, { wait: 30 });

    expect([answer.status, answer.body.status]).toEqual([200, 'sent']);
    const received = delivered(subject, 'big.bin');
    expect([received.length, sha256(received)]).toEqual([data.length, sha256(data)]);
  });

  it.each([
    ['a character outside the alphabet deep inside', (b: string) => `${b.slice(0, 2 * MiB)}*${b.slice(2 * MiB + 1)}`],
    ['a line break', (b: string) => `${b.slice(0, MiB)}\\n${b.slice(MiB)}`],
    ['padding in the middle', (b: string) => `${b.slice(0, MiB)}==${b.slice(MiB + 2)}`],
    ['three padding characters', (b: string) => `${b.slice(0, -3)}===`],
    ['a length that is not a multiple of 4', (b: string) => b.slice(0, -1)],
  ])(
    'refuses a large attachment with %s with the same 400 as a small one, and stores nothing',
    async (_what, spoil) => {
      const small = await gateway.send<Answer>(sendJson('small-bad', '%%%').head + sendJson('small-bad').tail, {
        wait: 30,
      });
      expect(small.status).toBe(400);
      const before = await outboxContents();
      const { head, tail } = sendJson(`bad-base64-${randomUUID()}`, spoil(randomBytes(3 * MiB).toString('base64')));
      const answer = await gateway.send<Answer>(head + tail, { wait: 30 });

      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual(small.body.errors);
      expect(answer.body.errors).toEqual([
        { field: 'attachments[0].contentBase64', message: 'must be base64 (RFC 4648, padded, no line breaks)' },
      ]);
      expect(await outboxContents()).toEqual(before);
    },
  );

  it('leaves no attachment blob behind when a valid large attachment is refused for another field', async () => {
    const before = await outboxContents();
    const { head, tail } = sendJson(`refused-${randomUUID()}`, randomBytes(3 * MiB).toString('base64'));
    const json = JSON.parse(head + tail) as Record<string, unknown>;
    const answer = await gateway.send<Answer>(JSON.stringify({ ...json, from: 'nobody@fabrikam.com' }), { wait: 30 });

    expect(answer.status).toBe(403);
    expect(await outboxContents()).toEqual(before);
  });
});
