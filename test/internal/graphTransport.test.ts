/**
 * The Graph client's last middleware (shared/graph/graphTransport.ts), against a local HTTP server: it asks for a
 * compressed answer and inflates it, types a string body as `fetch` would, leaves a streamed download uncompressed,
 * and refuses a body it cannot send.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import type { Context } from '@microsoft/microsoft-graph-client';
import { GraphTransport, NODE_BODY_OPTION, takeNodeBody } from '../../shared/graph/graphTransport';

interface Seen {
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let origin: string;
const seen: Seen[] = [];
const DOCUMENT = { value: [{ id: 'AAMk', subject: 'ünïcode' }] };
// Random bytes do not compress: its gzip answer is above the size inflated in one synchronous call.
const BIG_DOCUMENT = { value: [{ id: 'AAMk', contentBytes: randomBytes(150 * 1024).toString('base64') }] };

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      const json = Buffer.from(JSON.stringify(query.has('big') ? BIG_DOCUMENT : DOCUMENT));
      const coding = query.get('coding');
      if (coding === 'gzip' || coding === 'deflate') {
        const body = coding === 'gzip' ? gzipSync(json) : deflateSync(json);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-encoding': coding,
          'content-length': body.length,
        });
        res.end(body);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length });
      res.end(json);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  seen.length = 0;
});

async function send(path: string, options: Record<string, unknown>): Promise<Response> {
  const context = { request: `${origin}${path}`, options } as unknown as Context;
  await new GraphTransport().execute(context);
  return context.response!;
}

describe('GraphTransport', () => {
  it.each(['gzip', 'deflate'])(
    'asks for a compressed answer and hands the SDK the %s answer inflated',
    async (coding) => {
      const response = await send(`/v1.0/users?coding=${coding}`, {
        method: 'GET',
        headers: { accept: 'application/json' },
      });
      expect(seen[0].headers['accept-encoding']).toBe('gzip, deflate');
      expect(response.status).toBe(200);
      expect(response.headers.get('content-encoding')).toBeNull();
      expect(response.headers.get('content-length')).toBeNull();
      expect(await response.json()).toEqual(DOCUMENT);
    },
  );

  it.each(['gzip', 'deflate'])('inflates a large %s answer too (off the event loop)', async (coding) => {
    const response = await send(`/v1.0/users?coding=${coding}&big=1`, { method: 'GET' });
    expect(seen).toHaveLength(1);
    expect(await response.json()).toEqual(BIG_DOCUMENT);
  });

  it('sends the SDK headers whatever their form, names in lower case, two spellings of one name joined', async () => {
    await send('/v1.0/a', { method: 'GET', headers: { Authorization: 'Bearer t', 'X-One': 'a', 'x-one': 'b' } });
    await send('/v1.0/b', { method: 'GET', headers: new Headers({ 'X-Two': 'c' }) });
    await send('/v1.0/c', { method: 'GET', headers: [['X-Three', 'd']] });
    expect(
      seen.map((s) => [s.headers.authorization, s.headers['x-one'], s.headers['x-two'], s.headers['x-three']]),
    ).toEqual([
      ['Bearer t', 'a, b', undefined, undefined],
      [undefined, undefined, 'c', undefined],
      [undefined, undefined, undefined, 'd'],
    ]);
  });

  it('passes an uncompressed answer through as it came', async () => {
    const response = await send('/v1.0/users', { method: 'GET' });
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(JSON.stringify(DOCUMENT))));
    expect(await response.json()).toEqual(DOCUMENT);
  });

  it('types a string body without a type as fetch does, and keeps a type the SDK set', async () => {
    await send('/v1.0/a', { method: 'POST', body: 'plain words' });
    await send('/v1.0/b', { method: 'POST', body: '{"a":1}', headers: { 'Content-Type': 'application/json' } });
    await send('/v1.0/c', { method: 'POST', body: new TextEncoder().encode('bytes') });
    expect(seen.map((s) => [s.headers['content-type'], s.body])).toEqual([
      ['text/plain;charset=UTF-8', 'plain words'],
      ['application/json', '{"a":1}'],
      [undefined, 'bytes'],
    ]);
  });

  it('does not ask for a compressed answer when the body is to be streamed, and hands the stream over', async () => {
    const response = await send('/v1.0/users/x/messages/y/$value', { method: 'GET', [NODE_BODY_OPTION]: true });
    expect(seen[0].headers['accept-encoding']).toBeUndefined();
    const body = takeNodeBody(response);
    expect(body).toBeDefined();
    const chunks: Buffer[] = [];
    for await (const chunk of body!) chunks.push(chunk as Buffer);
    expect(JSON.parse(Buffer.concat(chunks).toString('utf8'))).toEqual(DOCUMENT);
    expect(takeNodeBody(response)).toBeUndefined();
  });

  it('refuses a body it cannot send, before sending anything', async () => {
    await expect(send('/v1.0/a', { method: 'POST', body: new URLSearchParams({ a: '1' }) })).rejects.toThrow(
      /URLSearchParams/,
    );
    expect(seen).toHaveLength(0);
  });
});
