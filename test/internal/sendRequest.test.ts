import { needsDraftPath } from '../../shared/mail/composeMessage';
import { MailboxLimiter } from '../../shared/mail/mailboxLimiter';
import { isMailboxAllowed } from '../../shared/platform/mailboxPolicy';
import { MAX_RECIPIENTS, parseSendRequest, type FieldProblem } from '../../shared/mail/sendRequest';

const BASE = { from: 'alerts@contoso.com', to: ['a@example.com'], subject: 'Disk almost full', text: 'plain body' };

function problems(body: unknown): FieldProblem[] {
  const result = parseSendRequest(body);
  if (result.ok) throw new Error('expected validation problems');
  return result.problems;
}

describe('send request validation', () => {
  it('accepts the design contract and normalises recipients', () => {
    const result = parseSendRequest({
      from: 'Alerts@Contoso.com',
      to: ['a@example.com', { address: 'b@example.com', name: 'B' }],
      cc: [],
      bcc: ['c@example.com'],
      replyTo: [{ address: 'ops@contoso.com' }],
      subject: 'Disk almost full',
      html: '<p>hi <img src="cid:logo"></p>',
      importance: 'high',
      headers: { 'X-Ticket-Id': '4711' },
      attachments: [
        { name: 'report.pdf', contentType: 'application/pdf', contentBase64: 'JVBERi0=' },
        { name: 'logo.png', contentType: 'image/png', contentBase64: 'iVBORw==', inline: true, contentId: 'logo' },
      ],
      saveToSentItems: false,
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.request).toMatchObject({
      from: 'alerts@contoso.com',
      to: [{ address: 'a@example.com' }, { address: 'b@example.com', name: 'B' }],
      bcc: [{ address: 'c@example.com' }],
      body: { contentType: 'html' },
      importance: 'high',
      headers: { 'X-Ticket-Id': '4711' },
      saveToSentItems: false,
    });
    expect(result.request.attachments[1]).toMatchObject({ inline: true, contentId: 'logo', size: 4 });
  });

  it('defaults importance, subject and saveToSentItems', () => {
    const result = parseSendRequest({ from: 'alerts@contoso.com', cc: ['a@example.com'], text: 'x' });
    expect(result.ok && result.request).toMatchObject({ importance: 'normal', subject: '', saveToSentItems: true });
  });

  it.each([
    ['a missing from', { ...BASE, from: undefined }, 'from', /email address/],
    ['an invalid from', { ...BASE, from: 'alerts' }, 'from', /not a valid email address/],
    ['an invalid recipient', { ...BASE, to: ['ok@example.com', 'not an address'] }, 'to[1]', /address/],
    ['an invalid recipient object', { ...BASE, cc: [{ address: 'x@', name: 'X' }] }, 'cc[0].address', /address/],
    ['no recipient', { ...BASE, to: [] }, 'to', /at least one recipient/],
    [
      'too many recipients',
      {
        ...BASE,
        to: Array.from({ length: 300 }, (_, i) => `t${i}@example.com`),
        bcc: Array.from({ length: 201 }, (_, i) => `b${i}@example.com`),
      },
      'to',
      new RegExp(`at most ${MAX_RECIPIENTS} recipients.*501`),
    ],
    ['both text and html', { ...BASE, html: '<p/>' }, 'text', /exactly one of text or html/],
    ['neither text nor html', { ...BASE, text: undefined }, 'text', /exactly one of text or html/],
    ['an unknown importance', { ...BASE, importance: 'urgent' }, 'importance', /low, normal or high/],
    ['a header without X-', { ...BASE, headers: { 'Reply-To': 'x' } }, 'headers.Reply-To', /start with X-/],
    ['a non-string header value', { ...BASE, headers: { 'X-A': 1 } }, 'headers.X-A', /strings/],
    [
      'an attachment without name',
      { ...BASE, attachments: [{ contentType: 'text/plain', contentBase64: 'eA==' }] },
      'attachments[0].name',
      /required/,
    ],
    [
      'an attachment with bad base64',
      { ...BASE, attachments: [{ name: 'a.txt', contentType: 'text/plain', contentBase64: 'not base64!' }] },
      'attachments[0].contentBase64',
      /base64/,
    ],
    [
      'an attachment with a bad content type',
      { ...BASE, attachments: [{ name: 'a.txt', contentType: 'text', contentBase64: 'eA==' }] },
      'attachments[0].contentType',
      /MIME type/,
    ],
    [
      'an inline attachment without contentId',
      { ...BASE, attachments: [{ name: 'a.png', contentType: 'image/png', contentBase64: 'eA==', inline: true }] },
      'attachments[0].contentId',
      /needs a contentId/,
    ],
    ['an unknown field', { ...BASE, priority: 1 }, '', /priority/],
    ['a non-boolean saveToSentItems', { ...BASE, saveToSentItems: 'no' }, 'saveToSentItems', /true or false/],
  ])('refuses %s, naming the field', (_what, body, field, message) => {
    const found = problems(body);
    const match = found.find((p) => p.field === field);
    expect(match).toBeDefined();
    expect(`${match!.field} ${match!.message}`).toMatch(message);
  });

  it.each([
    ['a non-string from', { from: 5, to: ['a@example.com'] }, ['from', 'text']],
    ['a non-string subject', { from: 'alerts@contoso.com', to: ['a@example.com'], subject: 7 }, ['subject', 'text']],
    ['an unknown field', { from: 'alerts@contoso.com', to: ['a@example.com'], extra: 1 }, ['', 'text']],
    ['a broken attachment', { ...BASE, text: undefined, attachments: [{}] }, ['attachments[0].contentBase64', 'text']],
    ['no recipients and a bad from', { from: 5, text: 'x' }, ['from', 'to']],
  ])('lists the text/html and recipient rules with the other problems (%s)', (_what, body, fields) => {
    const found = problems(body).map((p) => p.field);
    for (const field of fields) expect(found).toContain(field);
  });

  it('does not call a recipient list that is not an array "no recipients"', () => {
    const found = problems({ from: 'alerts@contoso.com', to: 'a@example.com', text: 'x' });
    expect(found).toEqual([{ field: 'to', message: 'must be an array of recipients' }]);
  });

  it('reports several problems at once', () => {
    const found = problems({ from: 'x', to: ['y'], text: 'a', html: 'b' });
    expect(found.map((p) => p.field).sort()).toEqual(['from', 'text', 'to[0]']);
  });
});

describe('path choice', () => {
  const request = (sizes: number[]) => {
    const result = parseSendRequest({
      ...BASE,
      attachments: sizes.map((size, i) => ({
        name: `f${i}`,
        contentType: 'application/octet-stream',
        contentBase64: Buffer.alloc(size).toString('base64'),
      })),
    });
    if (!result.ok) throw new Error('invalid');
    return result.request;
  };
  it('sends 2.9 MB in one request and 3 MB + 1 byte through the draft path', () => {
    expect(needsDraftPath(request([Math.floor(2.9 * 1024 * 1024)]))).toBe(false);
    expect(needsDraftPath(request([3 * 1024 * 1024 + 1]))).toBe(true);
  });
  it('takes the draft path when small attachments together exceed one request', () => {
    expect(needsDraftPath(request([2 * 1024 * 1024, 2 * 1024 * 1024]))).toBe(true);
  });
});

describe('sender policy', () => {
  const policy = { addresses: new Set(['alerts@contoso.com']), domains: new Set(['billing.contoso.com']) };
  it.each([
    ['alerts@contoso.com', true],
    ['ALERTS@contoso.com', true],
    ['x@billing.contoso.com', true],
    ['x@contoso.com', false],
    ['x@evil-billing.contoso.com', false],
  ])('%s → %s', (from, allowed) => expect(isMailboxAllowed(policy, from)).toBe(allowed));
});

describe('mailbox limiter', () => {
  it('never runs more than the limit per mailbox, and mailboxes do not share slots', async () => {
    const limiter = new MailboxLimiter(4);
    let peak = 0;
    let running = 0;
    const work = () =>
      limiter.run('a@x.com', async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setImmediate(r));
        running--;
      });
    let otherRan = false;
    await Promise.all([
      ...Array.from({ length: 50 }, work),
      limiter.run('b@x.com', () => Promise.resolve(void (otherRan = true))),
    ]);
    expect(peak).toBe(4);
    expect(otherRan).toBe(true);
    expect(limiter.inFlight('a@x.com')).toBe(0);
  });
});
