/**
 * The tenant's external recipient budget (TENANT_EXTERNAL_RECIPIENTS_PER_DAY) across two functions hosts sharing one
 * storage account and one Graph emulator: external mail from any mailbox of the tenant counts against one budget, a
 * mail that would pass it is `deferred` (reason `tenantExternalRecipients`, a `mail.deferred` event) instead of being
 * sent into an NDR, internal mail is never held, and the deferred mail goes once the 24 h window has moved.
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import type { CloudEvent } from '../../shared/events/cloudEvent';
import { OUTBOX_QUEUE } from '../../shared/outbox/store/outboxStore';
import { outboxMessage } from '../../shared/outbox/store/outboxMessages';
import { MAILBOX_PACING_TABLE } from '../../shared/pacing/mailboxPacer';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader } from '../support/watchSupport';

const BUDGET = 3;
const DAY = 24 * 60 * 60_000;

let env: TestCloud;
let hosts: FunctionsHostProcess[] = [];
let gateways: GatewayClient[] = [];
beforeAll(async () => {
  // The emulator enforces TERRL with Exchange's NDR, one recipient above the gateway's budget: the gateway's window is
  // moved by hand below while the emulator's is not, so the released mail is the fourth it counts.
  env = await startTestCloud({
    privateStorage: true,
    // The internal recipients exist: Exchange bounces an unknown address of its own domain (550 5.1.1).
    users: ['alerts', 'billing', 'support', 'it', 'someone', 'colleague', 'other'],
    graph: { latencyMs: { min: 1, max: 5 }, limits: { tenantExternalRecipientsPerDay: BUDGET + 1 } },
  });
  const settings = {
    ...env.settings,
    TENANT_EXTERNAL_RECIPIENTS_PER_DAY: String(BUDGET),
    TENANT_DOMAINS: 'contoso.com,contoso.onmicrosoft.com',
  };
  hosts = await Promise.all([startFunctionsHost(settings), startFunctionsHost(settings)]);
  gateways = hosts.map((host) => gatewayClient(host));
});
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await env?.close();
});

it('defers an external mail past the tenant budget from either host, never an internal one, and sends it once the window moves; no NDR', async () => {
  const tag = randomUUID();
  const events = new QueueReader<CloudEvent<{ id: string; reason?: string }>>(
    env.settings.AzureWebJobsStorage,
    'mail-events',
  );
  const sentStatus = async (gateway: GatewayClient, id: string) =>
    eventually(async () => (await gateway.status(id)).body.status === 'sent', `mail ${id} sent`, 30_000);

  // Two mailboxes, two hosts, one budget: 2 + 1 external recipients (the Contoso Cc is internal) use it up.
  const first = await gateways[0].send({
    from: 'alerts@contoso.com',
    to: ['a@fabrikam.example', 'b@fabrikam.example'],
    cc: ['colleague@Contoso.com'],
    subject: `ext1-${tag}`,
    text: 'x',
  });
  await sentStatus(gateways[0], String(first.body.id));
  const second = await gateways[1].send({
    from: 'billing@contoso.com',
    to: ['c@northwind.example'],
    subject: `ext2-${tag}`,
    text: 'x',
  });
  await sentStatus(gateways[1], String(second.body.id));

  // The next external recipient, from the first host, waits for the window.
  const over = await gateways[0].send({
    from: 'billing@contoso.com',
    to: ['d@northwind.example'],
    subject: `ext3-${tag}`,
    text: 'x',
  });
  const overId = String(over.body.id);
  const deferred = await eventually(async () => {
    const body = (await gateways[1].status(overId)).body;
    return body.status === 'deferred' && body;
  }, 'the external mail past the budget to be deferred');
  expect(deferred).toMatchObject({ status: 'deferred', reason: 'tenantExternalRecipients' });
  const notBefore = Date.parse(String(deferred.notBefore));
  expect(notBefore).toBeGreaterThan(Date.now() + DAY - 60 * 60_000);

  // Internal mail is never held by the tenant's budget.
  const internal = await gateways[1].send({
    from: 'alerts@contoso.com',
    to: ['someone@contoso.com', 'other@Contoso.com'],
    subject: `int-${tag}`,
    text: 'x',
  });
  await sentStatus(gateways[1], String(internal.body.id));

  const deferredEvents = await eventually(async () => {
    const seen = (await events.drain()).filter((e) => e.type === 'mail.deferred');
    return seen.length > 0 && seen;
  }, 'the mail.deferred event');
  expect(deferredEvents.map((e) => [e.data.id, e.data.reason])).toEqual([[overId, 'tenantExternalRecipients']]);
  // External recipients are outside the emulated tenant: what reached Graph is read from its request log.
  const billingSends = () =>
    env.cloud.graph.requests.filter(
      (r) => r.path.endsWith('/sendMail') && r.path.includes('billing') && r.status === 202,
    ).length;
  expect(billingSends()).toBe(1);

  // A day on (the gateways' clocks cannot be moved, so the tenant's counts and the mail's wait are moved back).
  const pacing = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, MAILBOX_PACING_TABLE, {
    allowInsecureConnection: true,
  });
  const row = await pacing.getEntity<{ externalBuckets: string }>('tenant', 'externalRecipients');
  const bucketsPerDay = DAY / (5 * 60_000);
  const aged = (JSON.parse(row.externalBuckets) as [number, number][]).map(([b, n]) => [b - bucketsPerDay - 2, n]);
  await pacing.updateEntity(
    { partitionKey: 'tenant', rowKey: 'externalRecipients', externalBuckets: JSON.stringify(aged) },
    'Merge',
  );
  const records = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'outbox', {
    allowInsecureConnection: true,
  });
  await records.updateEntity({ partitionKey: overId, rowKey: '', notBefore: Date.now() - 1000 }, 'Merge');
  const queue = new QueueClient(env.settings.AzureWebJobsStorage, OUTBOX_QUEUE);
  await queue.sendMessage(outboxMessage.encode({ id: overId }));

  await sentStatus(gateways[0], overId);
  expect(billingSends()).toBe(2);
  // Nothing was sent into an NDR: Exchange (the emulator) refused nothing, and no mailbox received a report.
  expect(env.cloud.graph.ndrs).toEqual([]);
  for (const mailbox of ['alerts@contoso.com', 'billing@contoso.com']) {
    expect(
      env.cloud.graph.inbox(mailbox).filter((m) => /undeliverable|delivery has failed/i.test(m.subject ?? '')),
    ).toEqual([]);
  }
}, 240_000);
