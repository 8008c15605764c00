/**
 * The reply and forward contracts: the send route's field rules without subject or sender, what a valid body becomes
 * (a request from the mailbox with its thread), the permissions a thread draft needs, and where an html answer goes
 * in the draft Graph made.
 */
import { needsDraftPath, requiredGraphRoles } from '../../shared/mail/composeMessage';
import { aboveQuote } from '../../shared/mail/mailSender';
import { parseThreadRequest } from '../../shared/mail/threadRequest';
import { MAILBOX_WRITE_PERMISSION, SEND_PERMISSION } from '../../shared/identity/graphPermissions';

const MAILBOX = 'support@contoso.com';
const ORIGINAL = 'AAMkAGoriginal=';

function fields(action: 'reply' | 'forward', body: unknown): string[] {
  const result = parseThreadRequest(action, MAILBOX, ORIGINAL, body);
  if (result.ok) throw new Error('expected validation problems');
  return result.problems.map((p) => p.field).sort();
}

describe('reply and forward requests', () => {
  it('makes a reply a request from the mailbox, with its thread, that goes the draft path with Mail.ReadWrite', () => {
    const result = parseThreadRequest('reply', MAILBOX, ORIGINAL, {
      text: 'On it.',
      cc: ['it@contoso.com'],
      headers: { 'X-Ticket-Id': '4711' },
      saveToSentItems: false,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.request).toMatchObject({
      from: MAILBOX,
      to: [],
      cc: [{ address: 'it@contoso.com' }],
      body: { contentType: 'text', content: 'On it.' },
      headers: { 'X-Ticket-Id': '4711' },
      saveToSentItems: false,
      thread: { kind: 'reply', messageId: ORIGINAL },
    });
    expect(needsDraftPath(result.request)).toBe(true);
    expect(requiredGraphRoles(result.request)).toEqual([SEND_PERMISSION, MAILBOX_WRITE_PERMISSION]);
    const all = parseThreadRequest('reply', MAILBOX, ORIGINAL, { html: '<p>x</p>', replyAll: true });
    expect(all.ok && all.request.thread).toEqual({ kind: 'replyAll', messageId: ORIGINAL });
  });

  it('makes a forward go to its recipients', () => {
    const result = parseThreadRequest('forward', MAILBOX, ORIGINAL, {
      to: ['it@contoso.com', { address: 'boss@example.org', name: 'Boss' }],
      text: 'FYI',
    });
    expect(result.ok && result.request).toMatchObject({
      to: [{ address: 'it@contoso.com' }, { address: 'boss@example.org', name: 'Boss' }],
      thread: { kind: 'forward', messageId: ORIGINAL },
    });
  });

  it('refuses what the send route refuses, and what a reply or forward may not say', () => {
    expect(fields('reply', {})).toEqual(['text']);
    expect(fields('reply', { text: 'a', html: 'b' })).toEqual(['text']);
    expect(fields('reply', { text: 'a', subject: 'x', from: MAILBOX })).toEqual(['']);
    expect(fields('reply', { text: 'a', to: ['x@contoso.com'] })).toEqual(['']);
    expect(fields('reply', { text: 'a', cc: ['not an address'], headers: { Subject: 'x' } })).toEqual([
      'cc[0]',
      'headers.Subject',
    ]);
    expect(fields('forward', { text: 'a' })).toEqual(['to']);
    expect(fields('forward', { text: 'a', to: [] })).toEqual(['to']);
    expect(fields('forward', { text: 'a', to: ['x@contoso.com'], replyAll: true })).toEqual(['']);
    const many = Array.from({ length: 501 }, (_, i) => `r${i}@example.org`);
    expect(fields('forward', { text: 'a', to: many })).toEqual(['to']);
    expect(fields('reply', JSON.parse('{"text":"a","__proto__":{"x":1}}'))).toEqual(['__proto__']);
  });
});

describe('an html answer in the draft Graph made', () => {
  it('goes inside the body, above the quote', () => {
    const draft = '<html><head></head><body dir="ltr">\r\n<hr><div>quoted</div></body></html>';
    expect(aboveQuote('<p>new</p>', { contentType: 'html', content: draft })).toBe(
      '<html><head></head><body dir="ltr">\r\n<p>new</p>\r\n\r\n<hr><div>quoted</div></body></html>',
    );
  });

  it('goes before a quote without a body element, and alone when the draft has no body', () => {
    expect(aboveQuote('<p>new</p>', { contentType: 'html', content: '<div>quoted</div>' })).toBe(
      '<p>new</p>\r\n<div>quoted</div>',
    );
    expect(aboveQuote('<p>new</p>', { contentType: 'text', content: 'a < b' })).toBe(
      '<p>new</p>\r\n<pre>a &lt; b</pre>',
    );
    expect(aboveQuote('<p>new</p>', undefined)).toBe('<p>new</p>');
  });
});
