/**
 * Storage deadlines through the real SDK clients (storage.ts) against a TCP server that accepts connections and
 * never answers (a hung storage account): each service's call ends as a timeout naming its service and resource,
 * a request's deadline is shared by its calls (the earlier of nested deadlines wins), and failures of any kind are
 * recognised as storage failures.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { explainStorageError } from '../../shared/platform/storage/storageErrors';
import type { GatewayConfig } from '../../shared/platform/config';
import { createBlobContainerClient, createQueueClient, createTableClient } from '../../shared/platform/storage/storage';
import {
  isStorageTimeout,
  storageFailureOf,
  withStorageCallLimit,
  withStorageDeadline,
  type StorageService,
} from '../../shared/platform/storage/storageDeadline';
import { azuriteConnectionString, freePort } from '../emulators/azurite';

let silent: Server;
const sockets = new Set<Socket>();
let config: GatewayConfig;

beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as AddressInfo).port;
  config = {
    storage: { kind: 'connectionString', connectionString: azuriteConnectionString(port, port, port) },
  } as GatewayConfig;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((r) => silent.close(r));
});

async function failure(call: () => Promise<unknown>): Promise<unknown> {
  return call().then(
    () => {
      throw new Error('the call succeeded against a server that never answers');
    },
    (err: unknown) => err,
  );
}

describe('storage deadlines', () => {
  const calls: [StorageService, string, () => Promise<unknown>][] = [
    ['table', 'outbox', () => createTableClient(config, 'outbox').getEntity('p', 'r')],
    ['queue', 'mail-outbox', () => createQueueClient(config, 'mail-outbox').sendMessage('x')],
    ['blob', 'outbox', () => createBlobContainerClient(config, 'outbox').getBlockBlobClient('b').upload('x', 1)],
  ];
  it.each(calls)('a %s call that gets no answer ends at its limit', async (service, resource, call) => {
    const err = await failure(() => withStorageCallLimit(300, call));
    expect(isStorageTimeout(err)).toBe(true);
    expect(storageFailureOf(err)).toEqual({ service, resource });
    expect(explainStorageError(err, service, resource, config)).toMatch(
      new RegExp(`^\\w+ storage unreachable \\(no answer within 0.3 s\\) for '${resource}'`),
    );
  });

  it('keeps the lower of nested limits, and shares a deadline among the calls under it', async () => {
    const table = createTableClient(config, 'subscriptions');
    const inner = await failure(() =>
      withStorageDeadline(5_000, () => withStorageDeadline(300, () => table.getEntity('p', 'r'))),
    );
    expect(inner).toMatchObject({ budgetMs: 300 });
    const outer = await failure(() =>
      withStorageDeadline(300, () => withStorageDeadline(5_000, () => table.getEntity('p', 'r'))),
    );
    expect(outer).toMatchObject({ budgetMs: 300 });
    const limited = await failure(() =>
      withStorageCallLimit(5_000, () => withStorageDeadline(300, () => table.getEntity('p', 'r'))),
    );
    expect(limited).toMatchObject({ budgetMs: 300 });
    const perCall = await failure(() =>
      withStorageCallLimit(300, () => withStorageDeadline(5_000, () => table.getEntity('p', 'r'))),
    );
    expect(perCall).toMatchObject({ budgetMs: 300 });
    const [first, second] = await withStorageDeadline(300, async () => [
      await failure(() => table.getEntity('p', 'r')),
      await failure(() => table.getEntity('p', 'r2')),
    ]);
    expect([isStorageTimeout(first), isStorageTimeout(second)]).toEqual([true, true]);
  });

  it('recognises a refused connection as a storage failure of its service and resource', async () => {
    const closed = await freePort();
    const refused = {
      storage: { kind: 'connectionString', connectionString: azuriteConnectionString(closed, closed, closed) },
    } as GatewayConfig;
    const err = await failure(() => createTableClient(refused, 'idempotency', { probe: true }).getEntity('p', 'r'));
    expect(isStorageTimeout(err)).toBe(false);
    expect(storageFailureOf(err)).toEqual({ service: 'table', resource: 'idempotency' });
    expect(explainStorageError(err, 'table', 'idempotency', refused)).toMatch(
      /^Table storage unreachable \(ECONNREFUSED\)/,
    );
    expect(storageFailureOf(new Error('not from storage'))).toBeUndefined();
  });

  describe('a blob whose answer stalls after its headers', () => {
    let stalling: Server;
    let stalled: GatewayConfig;
    const open = new Set<Socket>();
    const BLOB = Buffer.alloc(64 * 1024, 7);

    beforeAll(async () => {
      // Answers every request as a 64 KiB blob: `first` bytes of it at once, then the rest only if `first` is all of it.
      stalling = createServer((socket) => {
        open.add(socket);
        socket.on('close', () => open.delete(socket));
        socket.once('data', (request: Buffer) => {
          const whole = request.toString('latin1').includes('/whole');
          socket.write(
            'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n' +
              `Content-Length: ${BLOB.length}\r\nx-ms-blob-type: BlockBlob\r\nETag: "0x1"\r\n\r\n`,
          );
          socket.write(whole ? BLOB : BLOB.subarray(0, 1024));
        });
      });
      await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
      const port = (stalling.address() as AddressInfo).port;
      stalled = {
        storage: { kind: 'connectionString', connectionString: azuriteConnectionString(port, port, port) },
      } as GatewayConfig;
    });
    afterAll(async () => {
      for (const socket of open) socket.destroy();
      await new Promise((r) => stalling.close(r));
    });

    it('fails once no byte arrives for the call limit', async () => {
      const blob = createBlobContainerClient(stalled, 'outbox').getBlockBlobClient('stalls');
      const err = await failure(() =>
        withStorageCallLimit(300, async () => {
          const download = await blob.download(0, undefined, { maxRetryRequests: 0 });
          for await (const chunk of download.readableStreamBody as AsyncIterable<Buffer>) void chunk;
        }),
      );
      // The blob SDK's own stream wrapper (which would ask again for the rest, here 0 times) reports the cut body.
      expect(String(err)).toMatch(/received less data than required.*Received data offset: 1023/);
    });

    it('ends a download into a buffer (the processor reading an attachment) instead of waiting for good', async () => {
      const blob = createBlobContainerClient(stalled, 'outbox').getBlockBlobClient('stalls');
      const into = Buffer.alloc(BLOB.length);
      const err = await failure(() =>
        withStorageCallLimit(300, () => blob.downloadToBuffer(into, 0, BLOB.length, { maxRetryRequestsPerBlock: 1 })),
      );
      expect(String(err)).toMatch(/received less data than required/);
    });

    it('lets a reader that is slower than the limit take its time while the bytes wait for it', async () => {
      const blob = createBlobContainerClient(stalled, 'outbox').getBlockBlobClient('whole');
      const received = await withStorageCallLimit(300, async () => {
        const download = await blob.download(0, undefined, { maxRetryRequests: 0 });
        const chunks: Buffer[] = [];
        for await (const chunk of download.readableStreamBody as AsyncIterable<Buffer>) {
          chunks.push(chunk);
          await new Promise((r) => setTimeout(r, 200)); // a reader busy with each chunk (an upload, say)
        }
        return Buffer.concat(chunks);
      });
      expect(received.equals(BLOB)).toBe(true);
    });
  });
});
