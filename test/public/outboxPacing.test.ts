/**
 * The outbox across instances: two functions host processes share one storage account (their own Azurite) and one
 * Graph emulator, and accept mail for the same mailbox through both. The shared pacer lets a quiet mailbox's first N
 * mails go at once and holds the next until the sliding minute has room, whichever host sends: Graph never sees more
 * than the rate in any 60 s, never more than 4 requests in flight for the mailbox and never answers 429, every mail
 * arrives once, and each one becomes a `mail.sent` event. Also: `sendAt` and its bound, and
 * the renewal timer purging finished mails' records once their retention is over.
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import type { CloudEvent } from '../../shared/events/cloudEvent';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader } from '../support/watchSupport';

/** 10 messages per minute: a burst of 10 goes at once, the 11th about a minute later. */
const PER_MINUTE = 10;
const MINUTE = 60_000;

/** The most of `times` in any half-open window [t, t + width). */
function busiestWindow(times: number[], width: number): number {
  const sorted = [...times].sort((x, y) => x - y);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + width) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

let env: TestCloud;
let hosts: FunctionsHostProcess[] = [];
let gateways: GatewayClient[] = [];
beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 1, max: 5 } } });
  const settings = { ...env.settings, MAILBOX_MESSAGES_PER_MINUTE: String(PER_MINUTE) };
  hosts = await Promise.all([startFunctionsHost(settings), startFunctionsHost(settings)]);
  gateways = hosts.map((host) => gatewayClient(host));
});
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await env?.close();
});

describe('the outbox on two hosts', () => {
  it('sends a burst to a quiet mailbox at once from both hosts and the next mail after the window: never more than the rate in 60 s, no 429, at most 4 in flight, each mail once, each a mail.sent event', async () => {
    const subject = `paced-${randomUUID()}`;
    const count = PER_MINUTE + 1;
    const events = new QueueReader<CloudEvent<{ id: string }>>(env.settings.AzureWebJobsStorage, 'mail-events');
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        gateways[i % 2].send({
          from: 'alerts@contoso.com',
          to: ['someone@contoso.com'],
          subject: `${subject}-${i}`,
          text: 'x',
        }),
      ),
    );
    expect(answers.map((a) => [a.status, a.body.status])).toEqual(Array(count).fill([202, 'queued']));
    const ids = answers.map((a) => String(a.body.id));

    const arrived = () => env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject?.startsWith(subject));
    await eventually(() => arrived().length === PER_MINUTE, 'the burst in the Inbox', 30_000);
    const burstDone = Date.now();
    await eventually(() => arrived().length === count, 'the mail after the burst', 120_000);
    const sends = env.cloud.graph.requests
      .filter((r) => r.path.endsWith('/sendMail') && r.path.includes('alerts'))
      .filter((r) => r.status === 202)
      .map((r) => r.startedAt.getTime())
      .sort((a, b) => a - b)
      .slice(-count);
    // Counts, not gaps, so that a loaded machine cannot fail it: the burst went while the last mail waited; the last
    // went only once the burst had left the pacer's window; Graph never saw more than the rate in 60 s.
    expect(burstDone - started).toBeLessThan(30_000);
    expect(sends[count - 1] - sends[0]).toBeGreaterThanOrEqual(MINUTE);
    expect(busiestWindow(sends, MINUTE)).toBeLessThanOrEqual(PER_MINUTE);
    expect(env.cloud.graph.requests.filter((r) => r.status === 429)).toEqual([]);
    expect(env.cloud.graph.peakConcurrency('alerts@contoso.com')).toBeLessThanOrEqual(4);
    expect(new Set(arrived().map((m) => m.subject)).size).toBe(count);
    for (const id of ids) expect((await gateways[0].status(id)).body).toMatchObject({ status: 'sent', attempts: 1 });

    const sent = await eventually(async () => {
      const seen = (await events.drain()).filter((e) => e.type === 'mail.sent');
      return seen.length >= count && seen;
    }, 'the mail.sent events');
    expect(sent.map((e) => e.data.id).sort()).toEqual([...ids].sort());
    expect(sent.every((e) => e.source === '/mailboxes/alerts@contoso.com')).toBe(true);
  }, 240_000);

  it('honours sendAt: scheduled until then, sent after', async () => {
    const subject = `scheduled-${randomUUID()}`;
    const sendAt = Date.now() + 4_000;
    const answer = await gateways[0].send({
      from: 'support@contoso.com',
      to: ['someone@contoso.com'],
      subject,
      text: 'later',
      sendAt: new Date(sendAt).toISOString(),
    });
    expect(answer).toMatchObject({ status: 202, body: { status: 'scheduled' } });
    const id = String(answer.body.id);
    expect((await gateways[1].status(id)).body).toMatchObject({ status: 'scheduled', reason: 'sendAt' });

    await eventually(
      () => env.cloud.graph.inbox('someone@contoso.com').some((m) => m.subject === subject),
      'the scheduled mail',
      30_000,
    );
    const [call] = env.cloud.graph.requests.filter((r) => r.path.endsWith('/sendMail') && r.path.includes('support'));
    expect(call.startedAt.getTime()).toBeGreaterThanOrEqual(sendAt - 1000);
    expect((await gateways[1].status(id)).body).toMatchObject({ status: 'sent' });
  });

  it('refuses sendAt more than 7 days ahead, and one that is not an ISO 8601 date-time, naming the field', async () => {
    const base = { from: 'support@contoso.com', to: ['someone@contoso.com'], subject: 's', text: 'x' };
    for (const sendAt of [new Date(Date.now() + 8 * 86_400_000).toISOString(), 'tomorrow']) {
      const answer = await gateways[0].send({ ...base, sendAt });
      expect(answer.status).toBe(400);
      expect((answer.body.errors as { field: string }[]).map((e) => e.field)).toEqual(['sendAt']);
    }
  });
});

describe('outbox record retention', () => {
  /** Runs the renewSubscriptions timer on `host` now; returns its summary line. */
  async function runRenewalTimer(host: FunctionsHostProcess): Promise<string> {
    const before = host.output().split('renewal:').length;
    const res = await fetch(`${host.url}/admin/functions/renewSubscriptions`, {
      method: 'POST',
      headers: { 'x-functions-key': host.masterKey, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(202);
    await eventually(() => host.output().split('renewal:').length > before, 'the renewal run to finish', 40_000);
    return host.output().split('renewal:').at(-1)!.split('\n')[0];
  }

  it("the renewal timer purges a sent mail's record a week after it finished, then its status is 404; a mail on its way stays", async () => {
    const [host, gateway] = [hosts[0], gateways[0]];
    const base = { from: 'billing@contoso.com', to: ['someone@contoso.com'], text: 'x' };
    const sent = await gateway.send({ ...base, subject: `retained-${randomUUID()}` });
    const scheduled = await gateway.send({
      ...base,
      subject: `later-${randomUUID()}`,
      sendAt: new Date(Date.now() + 6 * 86_400_000).toISOString(),
    });
    const [sentId, scheduledId] = [String(sent.body.id), String(scheduled.body.id)];
    await eventually(async () => (await gateway.status(sentId)).body.status === 'sent', 'the mail to be sent', 30_000);

    const records = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'outbox', {
      allowInsecureConnection: true,
    });
    const { expiresAt } = await records.getEntity<{ expiresAt: Date }>(sentId, '');
    const finished = Date.parse(String((await gateway.status(sentId)).body.updatedAt));
    expect(expiresAt.getTime() - finished).toBe(7 * 86_400_000);
    // Not yet due: the timer keeps it.
    expect(await runRenewalTimer(host)).toMatch(/, 0 finished outbox record/);
    expect((await gateway.status(sentId)).body.status).toBe('sent');

    // A week on (the gateway's clock cannot be moved, so the record's expiry is moved back instead).
    await records.updateEntity({ partitionKey: sentId, rowKey: '', expiresAt: new Date(Date.now() - 1000) }, 'Merge');
    expect(await runRenewalTimer(host)).toMatch(/, 1 finished outbox record/);

    const gone = await gateway.status(sentId);
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(gone.body).toMatchObject({ status: 404, type: expect.stringMatching(/mail-not-found$/) as unknown });
    expect((await gateway.status(scheduledId)).body).toMatchObject({ status: 'scheduled' });
  });
});
