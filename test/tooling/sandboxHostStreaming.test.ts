/**
 * The local Functions host's HTTP streaming (test/sandbox/host/httpStreaming.ts): for an app that calls
 * `app.setup({ enableHttpStream: true })`, the host negotiates the library's proxy and forwards each request to it as
 * it arrives, so the handler reads the live body, and it relays the handler's response.
 *
 * The host runs in its own process (as a worker does): the library's streaming switch and proxy live for the whole
 * process, and must not leak into other hosts a test worker starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { buildFixtureProject } from '../support/fixtureProject';
import { freePort } from '../emulators/azurite';

jest.setTimeout(60_000);

const REPO_ROOT = path.resolve(__dirname, '../..');
const FIXTURE_SOURCES = path.join(__dirname, 'fixtures', 'hostFunctionsStreaming', 'functions');
const FUNCTION_KEY = 'streaming-function-key-81d2';
const MASTER_KEY = 'streaming-master-key-0c4e';
const SIZE_LIMIT = 8 * 1024 * 1024;

let projectRoot: string;
let child: ChildProcess;
let output = '';
let port: number;
let url: string;

/** Resolves once the host printed a line matching `pattern` (after the first `from` characters of its output). */
async function waitForOutput(pattern: RegExp, from = 0, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(output.slice(from))) {
    if (Date.now() > deadline) throw new Error(`no output matching ${String(pattern)}:\n${output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A raw HTTP/1.1 exchange, so that a test decides when each part of the body is sent. */
function rawRequest(head: string): { socket: Socket; response: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(head);
  return { socket, response: () => received, closed };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  projectRoot = buildFixtureProject('sandboxHostStreaming', FIXTURE_SOURCES, { version: '2.0' });
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'test', 'sandbox', 'host', 'main.js')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      SANDBOX_PROJECT_ROOT: projectRoot,
      SANDBOX_FUNCTION_KEY: FUNCTION_KEY,
      SANDBOX_MASTER_KEY: MASTER_KEY,
      SANDBOX_HOST_LOG_LEVEL: 'debug',
      SANDBOX_MAX_REQUEST_BODY_BYTES: String(SIZE_LIMIT),
    },
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await waitForOutput(new RegExp(`listening on ${url}`), 0, 30_000);
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(projectRoot, { recursive: true, force: true });
});

describe('local Functions host: HTTP streaming', () => {
  it("negotiates the library's proxy at start-up, as the worker announces it in its capabilities", () => {
    expect(output).toMatch(/HTTP streaming enabled: the worker's proxy listens on http:\/\/localhost:\d+\//);
  });

  it('hands the handler the body while it is still arriving', async () => {
    // Content-Length promises 1,000 bytes and only 12 are sent: a host that buffered the body would wait forever.
    const exchange = rawRequest(
      `POST /api/firstChunk HTTP/1.1\r\nHost: 127.0.0.1\r\nx-functions-key: ${FUNCTION_KEY}\r\n` +
        'Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\nfirst-chunk!',
    );
    await until(() => /\r\n\r\n.*first-chunk!/s.test(exchange.response()), 'the early answer');
    expect(exchange.response()).toMatch(/^HTTP\/1\.1 200 /);
    exchange.socket.destroy();
  });

  it('relays an answer given before the body was read whole, and discards the rest of the body', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/api/firstChunk`, {
        method: 'POST',
        headers: { 'x-functions-key': FUNCTION_KEY, 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(SIZE_LIMIT - 1, 'a'),
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^a+$/);
    }
  });

  it('forwards a body sent in many small writes byte-exact, with headers, route parameters and the public URL', async () => {
    const body = randomBytes(6 * 1024 * 1024 + 193);
    const exchange = rawRequest(
      `POST /api/digest/many-writes?x=1 HTTP/1.1\r\nHost: gateway.example:${port}\r\n` +
        `x-functions-key: ${FUNCTION_KEY}\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    let writes = 0;
    for (let offset = 0; offset < body.length; writes++) {
      const size = 1 + ((writes * 7919) % 4096);
      await new Promise((resolve) => exchange.socket.write(body.subarray(offset, offset + size), resolve));
      offset += size;
    }
    await exchange.closed;
    const [head, json] = exchange.response().split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 201 /);
    expect(head).toMatch(/\r\nx-fixture: relayed\r\n/i);
    expect(head).toMatch(/\r\nset-cookie: fixture=cookie; HttpOnly\r\n/i);
    // The header pairing the forwarded request with its invocation stays between host and worker.
    expect(head).not.toMatch(/x-ms-invocation-id/i);
    const chunked = /transfer-encoding: chunked/i.test(head);
    const text = chunked ? dechunk(json) : json;
    const answer = JSON.parse(text) as Record<string, unknown>;
    expect(answer).toEqual({
      bytes: body.length,
      reads: expect.any(Number) as number,
      sha256: createHash('sha256').update(body).digest('hex'),
      name: 'many-writes',
      url: `http://gateway.example:${port}/api/digest/many-writes?x=1`,
      contentType: 'application/octet-stream',
    });
    expect(answer.reads).toBeGreaterThan(1);
  });

  it('answers 413 to a chunked body that outgrows the size limit mid-stream, and the handler sees its body fail', async () => {
    const before = output.length;
    // Node's fetch streams a ReadableStream body only with `duplex: 'half'`, which its RequestInit type lacks.
    const init: RequestInit & { duplex: 'half' } = {
      method: 'POST',
      headers: { 'x-functions-key': FUNCTION_KEY, 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        pull(controller) {
          controller.enqueue(randomBytes(64 * 1024));
        },
      }),
      duplex: 'half',
    };
    const res = await fetch(`${url}/api/digest/too-large`, init);
    expect(res.status).toBe(413);
    await waitForOutput(/digest: the body failed after \d+ bytes/, before);
    const failedAfter = Number(/digest: the body failed after (\d+) bytes/.exec(output.slice(before))?.[1]);
    expect(failedAfter).toBeLessThanOrEqual(SIZE_LIMIT);
  });

  it('refuses a declared Content-Length over the limit before invoking anything', async () => {
    const before = output.length;
    const res = await fetch(`${url}/api/digest/declared`, {
      method: 'POST',
      headers: { 'x-functions-key': FUNCTION_KEY, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(SIZE_LIMIT + 1),
    });
    expect(res.status).toBe(413);
    expect(output.slice(before)).not.toMatch(/Executing 'Functions.digest'/);
  });

  it('logs a client that hangs up mid-body as one information line; the handler sees its body fail', async () => {
    const before = output.length;
    const exchange = rawRequest(
      `POST /api/digest/hang-up HTTP/1.1\r\nHost: 127.0.0.1\r\nx-functions-key: ${FUNCTION_KEY}\r\n` +
        'Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n',
    );
    exchange.socket.write(Buffer.alloc(5000));
    await waitForOutput(/Executing 'Functions.digest'/, before);
    exchange.socket.destroy();
    await waitForOutput(
      /Client disconnected before sending the whole POST \/api\/digest\/hang-up request body/,
      before,
    );
    // The handler may not have read all 5,000 bytes sent before the hang-up when it sees its body fail.
    await until(() => /digest: the body failed after \d+ bytes/.test(output.slice(before)), 'the handler to fail');
    const readBytes = Number(/digest: the body failed after (\d+) bytes/.exec(output.slice(before))?.[1]);
    expect(readBytes).toBeLessThanOrEqual(5000);
    expect(output.slice(before).match(/Client disconnected/g)).toHaveLength(1);
  });

  it('relays a response as the handler produces it: the client reads its first part before the rest exists', async () => {
    const answer = await fetch(`${url}/api/drip`);
    expect(answer.status).toBe(200);
    const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value ?? new Uint8Array()).toString('utf8')).toBe('first;');
    // Only now may the handler write the rest: a host that waited for the invocation's end would never get here.
    expect((await fetch(`${url}/api/release`, { method: 'POST' })).status).toBe(204);
    let rest = '';
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      rest += Buffer.from(next.value).toString('utf8');
    }
    expect(rest).toBe('second');
  });

  it('answers 204 for an empty result and a generic 500 for a handler that throws', async () => {
    const nothing = await fetch(`${url}/api/nothing`);
    expect(nothing.status).toBe(204);
    const broken = await fetch(`${url}/api/broken`);
    expect(broken.status).toBe(500);
    expect(await broken.text()).not.toMatch(/fixture failure|\n\s+at /);
  });
});

/** The payload of a chunked transfer-encoded body. */
function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}
