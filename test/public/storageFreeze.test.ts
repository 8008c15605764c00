/**
 * Storage that stops answering (Azurite frozen with SIGSTOP: connections open, no answer) must not hang the
 * gateway: every HTTP route answers 503 storage-unavailable with Retry-After within its storage deadline, and
 * nothing accepted is lost: a mail accepted before the freeze is sent once after it, and a notification the
 * webhook answered 503 is delivered once after Graph's retry. A hang fails the test through jest's timeout.
 */
import { randomUUID } from 'node:crypto';
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import { appRoot } from '../../shared/platform/packageInfo';
import { startAzurite, type RunningAzurite } from '../emulators/azurite';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';
import { eventually, QueueReader } from '../support/watchSupport';

let env: TestCloud;
let azurite: RunningAzurite;
let host: FunctionsHostProcess;
let gateway: GatewayClient;

beforeAll(async () => {
  env = await startTestCloud({ users: ['alerts', 'support', 'someone', 'w1'] });
  // This file's own Azurite: freezing the shared one would stall every other test file.
  azurite = await startAzurite({ projectRoot: appRoot() });
  host = await startFunctionsHost({
    ...env.settings,
    AzureWebJobsStorage: azurite.connectionString,
    ALLOWED_WATCH_MAILBOXES: 'support@contoso.com,w1@contoso.com',
  });
  gateway = gatewayClient(host);
});
afterAll(async () => {
  azurite?.thaw();
  await host?.stop();
  await azurite?.stop();
  await env?.close();
});

function mail(subject: string, sendAt?: string) {
  return { from: 'alerts@contoso.com', to: ['someone@contoso.com'], subject, text: 'x', ...(sendAt ? { sendAt } : {}) };
}

function expectStorageProblem(answer: Pick<GatewayAnswer, 'status' | 'headers' | 'body'>, what: string): void {
  expect({ what, status: answer.status }).toEqual({ what, status: 503 });
  expect(answer.headers.get('content-type')).toBe('application/problem+json');
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(answer.body).toMatchObject({
    status: 503,
    type: expect.stringMatching(/\/storage-unavailable$/) as unknown,
  });
}

const sentCount = (subject: string) =>
  env.cloud.graph.inbox('someone@contoso.com').filter((m) => m.subject === subject);

describe('storage that stops answering', () => {
  it('answers 503 with Retry-After on every route instead of hanging, and loses nothing accepted', async () => {
    const watched = await gateway.watch('support@contoso.com');
    expect({ status: watched.status, body: watched.body }).toMatchObject({ status: 201 });
    const subscriptionId = String(watched.body.subscriptionId);

    // Accepted just before the freeze, due a moment later: it is sent only once storage answers again.
    const subject = `before-freeze-${randomUUID()}`;
    const accepted = await gateway.send(mail(subject, new Date(Date.now() + 1_000).toISOString()));
    expect(accepted.status).toBe(202);
    const mailId = String(accepted.body.id);

    azurite.freeze();
    try {
      expect(sentCount(subject)).toHaveLength(0);
      // Graph posts a change notification to the webhook, which cannot look its subscription up.
      const arrived = env.cloud.graph.mailbox('support@contoso.com').addMessage('inbox', {
        subject: `watched-${randomUUID()}`,
        from: { emailAddress: { address: 'sender@example.org' } },
        toRecipients: [{ emailAddress: { address: 'support@contoso.com' } }],
        body: { contentType: 'text', content: 'body' },
      });

      const [health, send, large, status, list, show, put, del, diagnostics, webhook] = await Promise.all([
        gateway.health(),
        gateway.send(mail(`during-freeze-${randomUUID()}`)),
        // An attachment past the streaming threshold is staged in blob storage while the body is read.
        gateway.send({
          ...mail(`large-during-freeze-${randomUUID()}`),
          attachments: [
            { name: 'big.bin', contentType: 'application/octet-stream', contentBase64: 'A'.repeat(400 * 1024) },
          ],
        }),
        gateway.status(mailId),
        gateway.mailboxes(),
        gateway.mailbox('support@contoso.com'),
        gateway.watch('w1@contoso.com'),
        gateway.unwatch('w1@contoso.com'),
        gateway.diagnostics(),
        fetch(`${host.httpsUrl}/api/graph/lifecycle`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            value: [{ subscriptionId, clientState: 'x', lifecycleEvent: 'missed' }],
          }),
        }).then(async (r) => ({
          status: r.status,
          headers: r.headers,
          body: (await r.json()) as Record<string, unknown>,
        })),
      ]);
      expectStorageProblem(health, 'health');
      expectStorageProblem(send, 'send');
      // Within the request's storage deadline, not the 60 s a background call may take.
      expect(send.body.detail).toMatch(/^\w+ storage unreachable \(no answer within 5 s\) .*Nothing was sent\.$/);
      expectStorageProblem(large, 'send with a large attachment');
      expectStorageProblem(status, 'mail status');
      expectStorageProblem(list, 'mailbox list');
      expectStorageProblem(show, 'mailbox');
      expectStorageProblem(put, 'watch');
      expectStorageProblem(del, 'unwatch');
      expectStorageProblem(webhook, 'lifecycle webhook');
      expect(diagnostics.status).toBe(503);
      expect(Number(diagnostics.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(
        (diagnostics.body.checks as { name: string; status: string }[])
          .filter((c) => c.name.endsWith('Storage'))
          .map((c) => c.status),
      ).toEqual(['failed', 'failed']);

      // Graph's own POST was answered 503 (not left without an answer), so Graph will retry it.
      const first = await eventually(
        () =>
          env.cloud.graph.notificationDeliveries.find(
            (d) => d.kind === 'change' && d.subscriptionIds.includes(subscriptionId),
          ),
        "Graph's first notification POST",
      );
      expect({ attempt: first.attempt, status: first.status }).toEqual({ attempt: 1, status: 503 });
      // The webhook's budget leaves its answer inside Graph's 3 s (asserted on the budget, not on a measured time).
      expect(host.output()).toMatch(/notifications not accepted: .*did not answer 'subscriptions' within 2000 ms/);
      expect(host.output()).not.toMatch(/notifications not accepted: .*within 5000 ms/);
      expect(sentCount(subject)).toHaveLength(0);

      azurite.thaw();
      const events = new QueueReader<CloudEvent<MailReceivedData>>(azurite.connectionString, 'mail-events');
      await eventually(
        async () => (await events.drain()).some((e) => e.data.messageId === arrived.id),
        'the notification to become an event after Graph retried',
        40_000,
      );
      await eventually(() => sentCount(subject).length > 0, 'the mail accepted before the freeze to be sent', 40_000);
      await env.cloud.graph.idle();
      await new Promise((r) => setTimeout(r, 3_000));
      await events.drain();
      expect(events.seen.filter((e) => e.data.messageId === arrived.id)).toHaveLength(1);
      expect(sentCount(subject)).toHaveLength(1);
      const deliveries = env.cloud.graph.notificationDeliveries.filter(
        (d) => d.kind === 'change' && d.subscriptionIds.includes(subscriptionId),
      );
      expect(deliveries.filter((d) => d.status === 202)).toHaveLength(1);
      expect((await gateway.status(mailId)).body).toMatchObject({ status: 'sent' });
      expect((await gateway.mailbox('support@contoso.com')).status).toBe(200);
    } finally {
      azurite.thaw();
    }
  }, 120_000);
});
