/**
 * The watch store's update on Azurite: a change that returns the record it was given writes nothing, so the row's
 * ETag stays and a concurrent writer holding it is not made to retry (the poll timer's claim, when another instance
 * claimed the folder between its list and its update, returns the record unchanged).
 */
import type { TableClient } from '@azure/data-tables';
import { createTableClient } from '../../shared/platform/storage/storage';
import { WatchStore, type WatchedMailbox } from '../../shared/watch/watchStore';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
let store: WatchStore;
let table: TableClient;

beforeAll(async () => {
  env = await startTestCloud({});
  table = createTableClient(env.config, `watchStoreUpdate${Date.now()}`);
  store = new WatchStore(table);
});
afterAll(async () => {
  await env?.close();
});

const record: WatchedMailbox = {
  mailbox: 'nochange@contoso.com',
  folder: 'inbox',
  subscriptionId: '',
  clientState: '',
  expirationDateTime: '',
  createdAt: new Date().toISOString(),
  eventsPublished: 0,
  mode: 'poll',
  nextReadAt: new Date().toISOString(),
};

it('writes nothing when the change returns its argument, and writes a changed record', async () => {
  await store.save(record);
  const etagOf = async () => {
    for await (const row of table.listEntities({ queryOptions: { filter: `mailbox eq '${record.mailbox}'` } })) {
      return row.etag;
    }
    throw new Error('no row');
  };
  const before = await etagOf();
  const same = await store.update(record.mailbox, (r) => r, 'inbox');
  expect(same).toMatchObject({ mailbox: record.mailbox, nextReadAt: record.nextReadAt });
  expect(await etagOf()).toBe(before);

  const next = new Date(Date.now() + 60_000).toISOString();
  await store.update(record.mailbox, (r) => ({ ...r, nextReadAt: next }), 'inbox');
  expect(await etagOf()).not.toBe(before);
  expect((await store.get(record.mailbox, 'inbox'))?.nextReadAt).toBe(next);
});
