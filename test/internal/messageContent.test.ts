/**
 * Reading what a content event carries, against the Graph emulator through the real SDK: the body converted as
 * asked and cut to maxBodyBytes, the attachment list without bytes, and a token without Mail.Read (Mail.ReadBasic.All
 * only: Graph leaves the body out and refuses the attachment list) still giving the metadata, with what it could not
 * read named for the log.
 */
import { AppCredential } from '../../shared/identity/appCredential';
import { createGraphClient } from '../../shared/graph/graphClient';
import { readMessageForEvent } from '../../shared/watch/content/messageContent';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
beforeAll(async () => {
  env = await startTestCloud({ users: ['alerts', 'support'], graph: { latencyMs: { min: 0, max: 0 } } });
});
afterAll(() => env.close());
afterEach(() => {
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
});

function seed() {
  return env.cloud.graph.mailbox('support@contoso.com').addMessage('inbox', {
    subject: 'with content',
    from: { emailAddress: { address: 'someone@example.org' } },
    toRecipients: [{ emailAddress: { address: 'support@contoso.com' } }],
    body: { contentType: 'html', content: '<p>Grüße, <b>the printer</b> is on fire</p>' },
    attachments: [
      { name: 'photo.jpg', contentType: 'image/jpeg', contentBytes: Buffer.alloc(2000, 1).toString('base64') },
    ],
  });
}

const content = { body: 'text', maxBodyBytes: 5, attachments: 'list' } as const;

it('reads the body as asked, cut on a character boundary, and the attachments without their bytes', async () => {
  const graph = createGraphClient(env.config, new AppCredential(env.config));
  const message = seed();
  const before = env.cloud.graph.requests.length;
  const read = await readMessageForEvent(graph, 'support@contoso.com', message.id, content);
  expect(read.message).toMatchObject({ id: message.id, subject: 'with content' });
  expect(read.message).not.toHaveProperty('body');
  // "Grü" is 4 bytes and the ß two more: 5 bytes end inside the ß, so the cut keeps "Grü".
  expect(read.content.body).toEqual({ contentType: 'text', content: 'Grü', truncated: true });
  expect(read.content.attachments).toEqual([
    {
      id: message.attachments[0].id,
      name: 'photo.jpg',
      contentType: 'image/jpeg',
      size: expect.any(Number) as unknown,
      isInline: false,
      kind: 'file',
    },
  ]);
  expect(read.unreadable).toBeUndefined();
  const seen = env.cloud.graph.requests.slice(before);
  expect(seen.map((r) => [r.method, r.status])).toEqual([
    ['GET', 200],
    ['GET', 200],
  ]);
});

it('with Mail.ReadBasic.All only: metadata, no body (Graph leaves it out), and the refused list named', async () => {
  env.cloud.app.graphRoles = new Set(['Mail.Send', 'Mail.ReadBasic.All', 'User.Read.All']);
  const graph = createGraphClient(env.config, new AppCredential(env.config));
  const message = seed();
  const read = await readMessageForEvent(graph, 'support@contoso.com', message.id, content);
  expect(read.message).toMatchObject({ id: message.id, subject: 'with content' });
  expect(read.content.body).toBeNull();
  expect(read.content.attachments).toBeUndefined();
  expect(read.unreadable).toMatch(/^attachment list refused by Graph \(403 .*\): grant Mail\.Read$/);
});
