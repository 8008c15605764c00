/**
 * An Idempotency-Key claimed by a version before the outbox record became the claim (a row in the `idempotency`
 * table) still answers a retry after the upgrade, instead of the mail being stored and sent a second time. Through
 * the real send handler, with the outbox and both tables on Azurite.
 */
import { createHash, randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { handleSendMail, type SendMailDependencies } from '../../shared/outbox/accept/sendMailHandler';
import { LegacyIdempotencyKeys } from '../../shared/outbox/accept/legacyIdempotency';
import { canonicalRequestHash } from '../../shared/outbox/accept/requestHash';
import { OutboxStore } from '../../shared/outbox/store/outboxStore';
import { loadConfig } from '../../shared/platform/config';
import { UNIT_SETTINGS } from '../support/unitSettings';
import { azuriteConnectionString } from '../support/testEnv';

const live = azuriteConnectionString();
const config = loadConfig({
  ...UNIT_SETTINGS,
  AzureWebJobsStorage: live,
  GRAPH_PERMISSION_CHECK: 'off',
});

const body = { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject: 'Invoice 7', text: 'Attached.' };

function tableClient(name: string): TableClient {
  return TableClient.fromConnectionString(live, name, { allowInsecureConnection: true });
}

/** A send handler on an outbox and a legacy key table of its own. */
function rig(): { deps: SendMailDependencies; legacy: TableClient; outboxTable: TableClient; queue: QueueClient } {
  const suffix = randomUUID().replace(/-/g, '').slice(0, 12);
  const outboxTable = tableClient(`outbox${suffix}`);
  const queue = new QueueClient(live, `outbox-${suffix}`);
  const legacy = tableClient(`idempotency${suffix}`);
  const outbox = new OutboxStore(outboxTable, queue, new ContainerClient(live, `outbox-${suffix}`));
  return {
    deps: {
      config,
      credential: {} as SendMailDependencies['credential'],
      outbox,
      legacyKeys: new LegacyIdempotencyKeys(legacy),
    },
    legacy,
    outboxTable,
    queue,
  };
}

function send(deps: SendMailDependencies, key: string, json: object = body) {
  return handleSendMail(
    new HttpRequest({
      method: 'POST',
      url: 'http://localhost/api/mail/send',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: { string: JSON.stringify(json) },
    }),
    new InvocationContext({ logHandler: () => undefined }),
    deps,
  );
}

/** A key as the earlier versions left it: claimed, and completed with its first answer (202 naming `mailId`). */
async function legacyKey(table: TableClient, key: string, mailId: string, state: 'completed' | 'pending') {
  await table.createTable();
  await table.createEntity({
    partitionKey: createHash('sha256').update(key).digest('hex'),
    rowKey: '',
    requestHash: canonicalRequestHash(body),
    state,
    ...(state === 'completed'
      ? { resultStatus: 202, resultBody: JSON.stringify({ id: mailId, status: 'queued' }) }
      : {}),
    expiresAt: new Date(Date.now() + 3_600_000),
  });
}

async function outboxRows(table: TableClient): Promise<number> {
  let n = 0;
  try {
    for await (const entity of table.listEntities()) if (entity) n++;
  } catch {
    return 0; // never created
  }
  return n;
}

describe('Idempotency-Keys claimed before the upgrade', () => {
  it('answer a retry with the first mail, storing and queueing nothing', async () => {
    const r = rig();
    const key = `invoice-7-${randomUUID()}`;
    const first = randomUUID();
    await legacyKey(r.legacy, key, first, 'completed');

    const answer = await send(r.deps, key);
    expect(answer.status).toBe(202);
    expect(JSON.parse(answer.body as string)).toMatchObject({ id: first });
    expect(answer.headers).toMatchObject({ 'idempotent-replayed': 'true', location: `/api/mail/${first}` });
    expect(await outboxRows(r.outboxTable)).toBe(0);
    expect((await r.queue.exists()) ? (await r.queue.peekMessages()).peekedMessageItems : []).toEqual([]);
  });

  it('refuse the same key with another request (409), and a key still in progress (409)', async () => {
    const r = rig();
    const key = randomUUID();
    await legacyKey(r.legacy, key, randomUUID(), 'completed');
    const conflict = await send(r.deps, key, { ...body, subject: 'Invoice 8' });
    expect(conflict.status).toBe(409);
    expect(conflict.body as string).toContain('idempotency-key-reused');

    const pending = randomUUID();
    await legacyKey(r.legacy, pending, randomUUID(), 'pending');
    const inProgress = await send(r.deps, pending);
    expect(inProgress.status).toBe(409);
    expect(inProgress.body as string).toContain('idempotency-key-in-progress');
    expect(await outboxRows(r.outboxTable)).toBe(0);
  });

  it('leave every other key to the outbox, and cost nothing once none is left', async () => {
    const r = rig();
    await legacyKey(r.legacy, randomUUID(), randomUUID(), 'completed');
    const fresh = await send(r.deps, randomUUID());
    expect(fresh.status).toBe(202);
    expect(await outboxRows(r.outboxTable)).toBe(1);

    // A deployment that never had the table: the one look finds none, and later accepts never read it.
    const clean = rig();
    const reads = jest.spyOn(clean.legacy, 'getEntity');
    const lists = jest.spyOn(clean.legacy, 'listEntities');
    for (let i = 0; i < 3; i++) expect((await send(clean.deps, randomUUID())).status).toBe(202);
    expect(reads).not.toHaveBeenCalled();
    expect(lists).toHaveBeenCalledTimes(1);
  });
});
