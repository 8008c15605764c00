/**
 * The message listing's cursor and the download's file name, as modules: a cursor carries only the listing's own
 * parameters and Graph's paging position, decodes only for the mailbox it was made for, and never carries a URL; a
 * file name becomes an RFC 6266 Content-Disposition with its UTF-8 form in `filename*`.
 */
import { HttpProblem } from '../../shared/platform/problems/httpProblem';
import { decodeCursor, encodeCursor, pageStartOf } from '../../shared/messages/listCursor';
import { contentDisposition } from '../../shared/messages/streamedAnswer';

const params = { folder: 'inbox', since: '2026-03-01T00:00:00Z', unread: true, top: 10 };
const encode = (value: unknown) => `c1.${Buffer.from(JSON.stringify(value)).toString('base64url')}`;

function refusal(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    if (err instanceof HttpProblem) return `${err.doc.status} ${err.slug}`;
    throw err;
  }
  throw new Error('not refused');
}

describe('listing cursor', () => {
  it('round-trips the listing and its page start, for the same mailbox only', () => {
    const cursor = encodeCursor({ mailbox: 'support@contoso.com', params, start: { skip: 20 } });
    expect(decodeCursor(cursor, 'support@contoso.com')).toEqual({
      mailbox: 'support@contoso.com',
      params,
      start: { skip: 20 },
    });
    expect(refusal(() => decodeCursor(cursor, 'billing@contoso.com'))).toBe('400 invalid-cursor');
  });

  it('refuses anything but exactly its own shape', () => {
    const good = { m: 'support@contoso.com', f: 'inbox', u: false, t: 10, k: { skip: 10 } };
    for (const bad of [
      'garbage',
      encode({ ...good, k: { skiptoken: 'https://attacker.example/x' } }),
      encode({ ...good, k: { skip: 10, url: 'https://attacker.example/' } }),
      encode({ ...good, extra: 1 }),
      encode({ ...good, f: '../users' }),
      encode({ ...good, t: 1000 }),
      encode({ ...good, s: 'yesterday' }),
      `c1.${'A'.repeat(5000)}`,
    ]) {
      expect({ bad, refused: refusal(() => decodeCursor(bad, 'support@contoso.com')) }).toEqual({
        bad,
        refused: '400 invalid-cursor',
      });
    }
  });

  it("takes only $skip or a URL-safe $skiptoken from Graph's nextLink", () => {
    expect(pageStartOf('https://graph.microsoft.com/v1.0/users/a/messages?$top=10&$skip=10')).toEqual({ skip: 10 });
    expect(pageStartOf('https://graph.microsoft.com/v1.0/users/a/messages?$skiptoken=abc-_123')).toEqual({
      skiptoken: 'abc-_123',
    });
    expect(pageStartOf('https://graph.microsoft.com/v1.0/users/a/messages?$skiptoken=a%26b%3Dc')).toBeUndefined();
    expect(pageStartOf('not a url')).toBeUndefined();
    expect(pageStartOf(undefined)).toBeUndefined();
  });
});

describe('Content-Disposition', () => {
  it('quotes an ASCII name as it is and adds filename* for any other', () => {
    expect(contentDisposition('report.pdf')).toBe('attachment; filename="report.pdf"');
    expect(contentDisposition('Rechnung März.pdf')).toBe(
      `attachment; filename="Rechnung M_rz.pdf"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf`,
    );
    expect(contentDisposition('say "hi" (1).txt')).toBe(
      `attachment; filename="say _hi_ (1).txt"; filename*=UTF-8''say%20%22hi%22%20%281%29.txt`,
    );
    expect(contentDisposition('../etc/passwd\r\nX: y')).toBe(`attachment; filename=".._etc_passwd__X: y"`);
    expect(contentDisposition('')).toBe('attachment; filename="attachment"');
  });
});
