/**
 * Hostile callers of Graph's anonymous webhooks (`/api/graph/notifications`, `/api/graph/lifecycle`), through the
 * functions host in its own process: what the handshake answers, bodies that never end, forged subscription ids by
 * the thousand, ids that try to write log lines, and clients that hang up mid-body. The host's table requests go
 * through a counting proxy in front of this file's own Azurite, so the storage lookups a POST causes are counted
 * where they happen.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { QueueClient } from '@azure/storage-queue';
import { startHttpServer, type RunningServer } from '../emulators/httpServer';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually } from '../support/watchSupport';

const MiB = 1024 * 1024;
const ROUTES = ['/api/graph/notifications', '/api/graph/lifecycle'];

let env: TestCloud;
let host: FunctionsHostProcess;
let tableProxy: RunningServer;
/** Paths of the table requests the host made, oldest first. */
const tableRequests: string[] = [];

/** An HTTP proxy in front of Azurite's table endpoint that records every request path. */
async function startTableProxy(target: URL): Promise<RunningServer> {
  return startHttpServer(async (req, res) => {
    tableRequests.push(decodeURIComponent(req.url ?? ''));
    await new Promise<void>((resolve, reject) => {
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res).once('finish', resolve).once('error', reject);
        },
      );
      upstream.once('error', reject);
      req.pipe(upstream);
    });
  });
}

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, users: ['hooked'], graph: { latencyMs: { min: 1, max: 3 } } });
  const connection = env.settings.AzureWebJobsStorage;
  const tableEndpoint = new URL(/TableEndpoint=([^;]+)/.exec(connection)![1]);
  tableProxy = await startTableProxy(tableEndpoint);
  host = await startFunctionsHost({
    ...env.settings,
    AzureWebJobsStorage: connection.replace(
      /TableEndpoint=http:\/\/[^/]+/,
      `TableEndpoint=http://127.0.0.1:${tableProxy.port}`,
    ),
    ALLOWED_WATCH_MAILBOXES: 'hooked@contoso.com',
  });
});
afterAll(async () => {
  await host?.stop();
  await tableProxy?.close();
  await env?.close();
});

describe('the validation handshake', () => {
  it.each(ROUTES)(
    '%s reflects the token unchanged as text/plain with nosniff, so no browser sniffs it',
    async (path) => {
      const token = '<html><script>alert(1)</script></html> a+b/c=d ü';
      const res = await fetch(`${host.httpsUrl}${path}?validationToken=${encodeURIComponent(token)}`, {
        method: 'POST',
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.text()).toBe(token);
    },
  );
});

/** Subscription-index lookups the host made since `from` (table GETs of the `subscription` partition). */
function lookupsSince(from: number): string[] {
  return tableRequests.slice(from).filter((path) => /subscriptions\(PartitionKey='subscription'/.test(path));
}

/** The host's log since `from` (an offset into its output). */
function logSince(from: number): string {
  return host.output().slice(from);
}

async function waitForLog(from: number, pattern: RegExp, what: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (!pattern.test(logSince(from))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${logSince(from)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return logSince(from);
}

/**
 * POSTs a chunked body (no Content-Length) over a raw socket, writing `chunk` again and again until the answer arrives,
 * the connection closes, or `limit` bytes are written (then the body ends); resolves with the bytes the kernel took
 * before that and the raw answer.
 */
async function postEndless(path: string, head: string, chunk: string, limit: number) {
  const socket = connect(Number(new URL(host.url).port), '127.0.0.1');
  let answer = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
  socket.on('error', () => (closed = true));
  socket.on('close', () => (closed = true));
  const write = (data: string) =>
    new Promise<void>((resolve) =>
      socket.write(data, (err) => {
        if (err) closed = true;
        resolve();
      }),
    );
  await write(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      // Keep-alive: a server that closes a connection with unread data resets it, and the reset can overtake the answer.
      'Transfer-Encoding: chunked\r\n\r\n',
  );
  const frame = (data: string) => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
  await write(frame(head));
  let written = Buffer.byteLength(head);
  while (!closed && answer === '' && written < limit) {
    await write(frame(chunk));
    written += Buffer.byteLength(chunk);
  }
  // Not answered yet: end the body, so that a gateway that reads to the end answers too (and fails the test).
  if (!closed && answer === '') await write('0\r\n\r\n');
  const status = Number(
    /^HTTP\/1\.1 (\d{3})/.exec(
      await eventually(() => answer || false, `an answer (${written} bytes written, closed: ${closed})`),
    )?.[1],
  );
  socket.destroy();
  return { written, status, answer };
}

describe('a body far larger than the 4 MB cap, without Content-Length', () => {
  it.each(ROUTES)('%s answers 413 after reading little past the cap, and looks nothing up', async (path) => {
    const lookupsBefore = tableRequests.length;
    const logBefore = host.output().length;
    const item = JSON.stringify({
      subscriptionId: randomUUID(),
      clientState: 'x',
      changeType: 'created',
      resource: 'Users/x/Messages/AAMkAD',
      resourceData: { id: 'AAMkAD' },
    });
    const chunk = `${`${item},`.repeat(Math.ceil((64 * 1024) / (item.length + 1)))}`;

    const { written, status, answer } = await postEndless(path, '{"value":[', chunk, 96 * MiB);

    expect(status).toBe(413);
    expect(answer).toMatch(/application\/problem\+json/);
    // The cap is 4 MB; what reached the worker (the local host logs it) is that plus the socket buffers between the
    // host and the handler. What this client wrote is more, by however long the answer took to reach it: the host
    // discards the rest of a refused body at memory speed meanwhile, so under load it says little.
    expect(written).toBeLessThan(96 * MiB);
    const forwarded = await eventually(
      () =>
        /The worker answered 413 after (\d+) bytes of the request body were forwarded/.exec(logSince(logBefore)) ??
        false,
      'the host to log what it forwarded',
    );
    expect(Number(forwarded[1])).toBeLessThan(16 * MiB);
    await waitForLog(logBefore, /Executed 'Functions\.graph(Notifications|Lifecycle)'/, 'the invocation to end');
    expect(lookupsSince(lookupsBefore)).toEqual([]);
    expect(logSince(logBefore)).not.toMatch(/accepted \d+ notification|dropped \d+/);
  });
});

describe('a client that hangs up mid-body', () => {
  it.each(ROUTES)('%s: one information line, no failed invocation, no stack', async (path) => {
    const logBefore = host.output().length;
    const socket = connect(Number(new URL(host.url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${MiB}\r\n\r\n{"value":[${' '.repeat(64 * 1024)}`,
    );
    const function_ = path.endsWith('lifecycle') ? 'graphLifecycle' : 'graphNotifications';
    await waitForLog(logBefore, new RegExp(`Executing 'Functions\\.${function_}'`), 'the invocation to start');
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy();

    const log = await waitForLog(logBefore, new RegExp(`Executed 'Functions\\.${function_}'`), 'the invocation to end');
    expect(log).toMatch(new RegExp(`Executed 'Functions\\.${function_}' \\(Succeeded`));
    expect(log.match(/notifications abandoned: the client disconnected before the request body arrived/g)).toHaveLength(
      1,
    );
    expect(log).not.toMatch(/^\s+at /m);
    expect(log).not.toMatch(/Error: aborted/);
  });
});

/** POSTs `body` as Graph does (no key). */
function postAsGraph(path: string, body: unknown): Promise<Response> {
  return fetch(`${host.httpsUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Watches hooked@ (once) and returns its subscription as Graph holds it, with Graph's own deliveries held back. */
async function watchedSubscription(): Promise<Record<string, string>> {
  const res = await gatewayClient(host).watch('hooked@contoso.com');
  expect([200, 201]).toContain(res.status);
  const sub = env.cloud.graph.activeSubscriptions()[0] as Record<string, string>;
  env.cloud.graph.dropNotifications(sub.id, true);
  return sub;
}

const FORGED_LINE = '00:00:00.000 [sendOutbox] outbox mail 1234 sent as ceo@contoso.com';
const SHORT_FORGED_LINE = '00:00:00.000 [sendOutbox] mail sent as ceo@contoso.com';

describe('request values in the log', () => {
  it('1,000 forged subscription ids with line breaks: no forged line, one bounded line counting them', async () => {
    const logBefore = host.output().length;
    const ids = Array.from({ length: 1000 }, (_, i) => `x\n${FORGED_LINE} ${i} `.padEnd(256, 'y'));
    const res = await postAsGraph('/api/graph/notifications', {
      value: ids.map((subscriptionId) => ({
        subscriptionId,
        clientState: 'guess',
        changeType: 'created',
        resource: 'Users/x/Messages/AAMkAD',
        resourceData: { id: 'AAMkAD' },
      })),
    });

    expect(res.status).toBe(202);
    const log = await waitForLog(logBefore, /Executed 'Functions\.graphNotifications'/, 'the invocation to end');
    expect(log).not.toMatch(/^\S*\s*00:00:00\.000 \[sendOutbox\]/m);
    const dropped = log.split('\n').filter((line) => /dropped/.test(line));
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatch(/dropped 1000 of 1000 notification\(s\)/);
    expect(dropped[0]).toContain('x\\n00:00:00.000 [sendOutbox]');
    expect(dropped[0].length).toBeLessThan(1000);
  });

  it('a lifecycle event name with a line break reaches the processor log escaped', async () => {
    const sub = await watchedSubscription();
    const logBefore = host.output().length;
    const res = await postAsGraph('/api/graph/lifecycle', {
      // The receiver takes at most 64 characters here.
      value: [{ subscriptionId: sub.id, clientState: sub.clientState, lifecycleEvent: `odd\n${SHORT_FORGED_LINE}` }],
    });

    expect(res.status).toBe(202);
    const log = await waitForLog(logBefore, /unknown lifecycle event/, 'the processor to log the event');
    expect(log).not.toMatch(/^\S*\s*00:00:00\.000 \[sendOutbox\]/m);
    expect(log).toContain(`odd\\n${SHORT_FORGED_LINE}`);
  });
});

describe("a POST of 999 made-up subscription ids (Graph's collection holds 1,000 at most)", () => {
  /** A change notification for a subscription id nobody has. */
  const forged = () => ({
    subscriptionId: randomUUID(),
    clientState: 'guess',
    changeType: 'created',
    resource: 'Users/x/Messages/AAMkAD',
    resourceData: { id: 'AAMkAD' },
  });

  it('costs at most 8 unknown lookups, and the genuine notification among them is enqueued once', async () => {
    const sub = await watchedSubscription();
    const message = env.cloud.graph.mailbox('hooked@contoso.com').addMessage('inbox', {
      subject: `among-forged-${randomUUID()}`,
      from: { emailAddress: { address: 'sender@example.org' } },
      toRecipients: [{ emailAddress: { address: 'hooked@contoso.com' } }],
      body: { contentType: 'text', content: 'x' },
    });
    const genuine = {
      subscriptionId: sub.id,
      clientState: sub.clientState,
      changeType: 'created',
      resource: `Users/x/Messages/${message.id}`,
      resourceData: { id: message.id },
    };
    const events = new QueueClient(env.settings.AzureWebJobsStorage, 'mail-events');

    // First: the genuine item leads (its id may not be remembered yet, so it costs one lookup too).
    let lookupsBefore = tableRequests.length;
    let logBefore = host.output().length;
    let res = await postAsGraph('/api/graph/notifications', {
      value: [genuine, ...Array.from({ length: 999 }, forged)],
    });
    expect(res.status).toBe(202);
    let log = await waitForLog(logBefore, /Executed 'Functions\.graphNotifications'/, 'the invocation to end');
    expect(lookupsSince(lookupsBefore).length).toBeLessThanOrEqual(8 + 1);
    expect(log).toMatch(/accepted 1 notification\(s\) for 1 mailbox\(es\)/);
    expect(log).toMatch(/dropped 999 of 1000 notification\(s\): unknown subscription 8 \(.*; not looked up 991 /);
    await waitForLog(logBefore, /notification for hooked@contoso\.com: published/, 'the event to be published');

    // Again, the genuine item in the middle: its id is remembered now, and the forged ones cost 8 lookups at most.
    lookupsBefore = tableRequests.length;
    logBefore = host.output().length;
    res = await postAsGraph('/api/graph/notifications', {
      value: [...Array.from({ length: 500 }, forged), genuine, ...Array.from({ length: 499 }, forged)],
    });
    expect(res.status).toBe(202);
    log = await waitForLog(logBefore, /Executed 'Functions\.graphNotifications'/, 'the invocation to end');
    expect(lookupsSince(lookupsBefore).length).toBeLessThanOrEqual(8);
    expect(log).toMatch(/accepted 1 notification\(s\) for 1 mailbox\(es\)/);
    await waitForLog(logBefore, /notification for hooked@contoso\.com: duplicate/, 'the redelivery to be judged');

    const { receivedMessageItems } = await events.receiveMessages({ numberOfMessages: 32 });
    const published = receivedMessageItems
      .map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as { data: { messageId: string } })
      .filter((e) => e.data.messageId === message.id);
    expect(published).toHaveLength(1);
  });
});

describe('a notification Graph can never serve', () => {
  it("a malformed message id goes to the poison queue after one try, with Graph's reason", async () => {
    const sub = await watchedSubscription();
    const logBefore = host.output().length;
    const messageId = `malformed-${randomUUID()}`;
    const res = await postAsGraph('/api/graph/notifications', {
      value: [
        {
          subscriptionId: sub.id,
          clientState: sub.clientState,
          changeType: 'created',
          resource: `Users/x/Messages/${messageId}`,
          resourceData: { id: messageId },
        },
      ],
    });
    expect(res.status).toBe(202);

    const poison = new QueueClient(env.settings.AzureWebJobsStorage, 'graph-notifications-poison');
    await poison.createIfNotExists();
    const entry = await eventually(
      async () => {
        const { receivedMessageItems } = await poison.receiveMessages({ numberOfMessages: 32 });
        return receivedMessageItems
          .map((m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as Record<string, unknown>)
          .find((p) => JSON.stringify(p.message).includes(messageId));
      },
      'the poison message',
      // Five tries, ten seconds apart (host.json's visibility timeout), would take about 40 s.
      60_000,
    );
    const tries = env.cloud.graph.requests.filter((r) => r.method === 'GET' && r.path.includes(messageId));
    expect(tries.map((r) => [r.status, r.errorCode])).toEqual([[400, 'ErrorInvalidIdMalformed']]);
    expect(entry.reason).toMatch(/Graph 400 ErrorInvalidIdMalformed: Id is malformed\./);
    expect(logSince(logBefore)).not.toMatch(/failed \(try \d of/);
  }, 90_000);
});
