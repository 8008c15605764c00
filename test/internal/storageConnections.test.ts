/**
 * The process's storage connections (platform/http/connectionPools.ts) through the real SDK clients of storage.ts: a
 * counting TCP proxy stands in front of the test run's Azurite and holds every byte for a second (a storage outage of
 * a second), while 200 table and queue calls are made from several clients. The shared, bounded pool opens at most
 * its socket limit per service, where a client with the SDK's own agent opens a connection per waiting call.
 */
import { randomUUID } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TableClient } from '@azure/data-tables';
import type { GatewayConfig } from '../../shared/platform/config';
import { STORAGE_SOCKETS_PER_ORIGIN, storageSockets } from '../../shared/platform/http/connectionPools';
import { createQueueClient, createTableClient } from '../../shared/platform/storage/storage';
import { azuriteConnectionString as connectionStringFor } from '../emulators/azurite';
import { azuriteConnectionString } from '../support/testEnv';

/** A TCP proxy to `target` that counts the connections it accepted and can hold all traffic for a while. */
class CountingProxy {
  opened = 0;
  private frozen = false;
  private readonly thawed: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();
  private server!: Server;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<number> {
    this.server = createServer((client) => {
      this.opened++;
      const upstream = connect(this.targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => (this.frozen ? this.thawed.push(() => to.write(chunk)) : to.write(chunk)));
      forward(client, upstream);
      forward(upstream, client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const send of this.thawed.splice(0)) send();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const portOf = (connectionString: string, service: 'Queue' | 'Table') =>
  Number(new RegExp(`${service}Endpoint=http://127\\.0\\.0\\.1:(\\d+)`).exec(connectionString)![1]);

let tables: CountingProxy;
let queues: CountingProxy;
let config: GatewayConfig;

beforeAll(async () => {
  const azurite = azuriteConnectionString();
  tables = new CountingProxy(portOf(azurite, 'Table'));
  queues = new CountingProxy(portOf(azurite, 'Queue'));
  const [tablePort, queuePort] = [await tables.start(), await queues.start()];
  config = {
    storage: { kind: 'connectionString', connectionString: connectionStringFor(queuePort, tablePort) },
  } as GatewayConfig;
});
afterAll(async () => {
  await tables?.stop();
  await queues?.stop();
});

/** Runs `calls` while the proxies hold all traffic for `outageMs`, then lets it through; resolves with the results. */
async function throughOutage<T>(outageMs: number, calls: () => Promise<T>[]): Promise<T[]> {
  tables.freeze();
  queues.freeze();
  const pending = calls();
  await new Promise((resolve) => setTimeout(resolve, outageMs));
  tables.thaw();
  queues.thaw();
  return Promise.all(pending);
}

describe('storage connections of a process', () => {
  it('a storage outage of a second does not open hundreds of connections: the shared pool stays at its limit', async () => {
    const suffix = randomUUID().replace(/-/g, '').slice(0, 8);
    const tableClients = ['conna', 'connb', 'connc'].map((name) => createTableClient(config, `${name}${suffix}`));
    const queueClients = ['conn-a', 'conn-b'].map((name) => createQueueClient(config, `${name}-${suffix}`));
    await Promise.all([...tableClients.map((t) => t.createTable()), ...queueClients.map((q) => q.create())]);
    const before = { tables: tables.opened, queues: queues.opened };

    const results = await throughOutage(1000, () =>
      Array.from({ length: 200 }, (_, i) =>
        i % 2 === 0
          ? tableClients[i % 3].createEntity({ partitionKey: `p${i}`, rowKey: '' }).then(() => 'ok')
          : queueClients[(i >> 1) % 2].sendMessage(`m${i}`).then(() => 'ok'),
      ),
    );

    expect(results.filter((r) => r === 'ok')).toHaveLength(200);
    expect(tables.opened).toBeLessThanOrEqual(STORAGE_SOCKETS_PER_ORIGIN);
    expect(queues.opened).toBeLessThanOrEqual(STORAGE_SOCKETS_PER_ORIGIN);
    // The outage itself opened no more than the pool could hold beyond what was open before it.
    expect(tables.opened - before.tables + (queues.opened - before.queues)).toBeLessThanOrEqual(
      2 * STORAGE_SOCKETS_PER_ORIGIN,
    );
    for (const open of Object.values(storageSockets())) expect(open).toBeLessThanOrEqual(STORAGE_SOCKETS_PER_ORIGIN);
  });

  it('(the control) a client with the SDK’s own agent opens a connection per waiting call', async () => {
    const name = `connraw${randomUUID().replace(/-/g, '').slice(0, 8)}`;
    const raw = TableClient.fromConnectionString(
      config.storage.kind === 'connectionString' ? config.storage.connectionString : '',
      name,
      {
        allowInsecureConnection: true,
      },
    );
    await raw.createTable();
    const before = tables.opened;
    await throughOutage(1000, () =>
      Array.from({ length: 100 }, (_, i) => raw.createEntity({ partitionKey: `p${i}`, rowKey: '' })),
    );
    expect(tables.opened - before).toBeGreaterThan(50);
  });
});
