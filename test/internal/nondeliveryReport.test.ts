/**
 * The pure NDR reading (shared/watch/bounces/nondeliveryReport.ts): which messages are reports, the Message-IDs they refer
 * to and the failed recipients with their status codes, on the shapes Exchange Online and other servers write.
 */
import {
  mayBeNondeliveryReport,
  parseNondeliveryReport,
  type ReportMessage,
} from '../../shared/watch/bounces/nondeliveryReport';

const EXCHANGE = {
  emailAddress: { name: 'Microsoft Outlook', address: 'MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com' },
};

function exchangeNdr(overrides: Partial<ReportMessage> = {}): ReportMessage {
  return {
    from: EXCHANGE,
    subject: 'Undeliverable: Invoice 42',
    internetMessageHeaders: [
      { name: 'Content-Type', value: 'multipart/report; report-type=delivery-status' },
      { name: 'In-Reply-To', value: '<0a1b.outbox@contoso.com>' },
      { name: 'References', value: '<0a1b.outbox@contoso.com>' },
      { name: 'X-MS-Exchange-Message-Is-Ndr', value: '' },
    ],
    body: {
      contentType: 'html',
      content:
        "<html><body><p><b>Your message couldn't be delivered.</b></p><p>ghost@contoso.com<br>ops@contoso.com</p>" +
        '<p>Diagnostic information for administrators:</p><p>Generating server: AM0PR01MB1234.eurprd01.prod.outlook.com</p>' +
        "<p>ghost@contoso.com<br>Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'</p>" +
        '<p>Original message headers:</p><pre>Message-ID: &lt;0a1b.outbox@contoso.com&gt;\nSubject: Invoice 42</pre>' +
        '</body></html>',
    },
    ...overrides,
  };
}

describe('NDR reading', () => {
  it('reads an Exchange Online NDR: the original from In-Reply-To, the failed recipient with 5.1.1 and the line', () => {
    expect(parseNondeliveryReport(exchangeNdr())).toEqual({
      originalMessageIds: ['<0a1b.outbox@contoso.com>'],
      recipients: [
        {
          address: 'ghost@contoso.com',
          status: '5.1.1',
          diagnostic: '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found',
        },
      ],
    });
  });

  it('finds the original in the quoted headers when the report has no In-Reply-To, and reads the older #550 form', () => {
    const report = parseNondeliveryReport(
      exchangeNdr({
        internetMessageHeaders: [{ name: 'X-MS-Exchange-Message-Is-Ndr', value: '' }],
        body: {
          contentType: 'text',
          content:
            'Delivery has failed to these recipients or groups:\r\nDiagnostic information for administrators:\r\n' +
            'a@contoso.com\r\n#550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found ##\r\n' +
            'b@contoso.com\r\n#550 5.1.90 daily limit ##\r\nOriginal message headers:\r\nMessage-ID: <x.1@contoso.com>\r\n',
        },
      }),
    );
    expect(report?.originalMessageIds).toEqual(['<x.1@contoso.com>']);
    expect(report?.recipients.map((r) => [r.address, r.status])).toEqual([
      ['a@contoso.com', '5.1.1'],
      ['b@contoso.com', '5.1.90'],
    ]);
  });

  it('reads an RFC 3464 delivery-status part of a remote server', () => {
    const report = parseNondeliveryReport({
      from: { emailAddress: { address: 'mailer-daemon@googlemail.com' } },
      subject: 'Delivery Status Notification (Failure)',
      internetMessageHeaders: [
        { name: 'Content-Type', value: 'multipart/report; report-type="delivery-status"; boundary="b"' },
        { name: 'References', value: '<one@contoso.com> <two@contoso.com>' },
      ],
      body: {
        contentType: 'text',
        content:
          'Reporting-MTA: dns; googlemail.com\nFinal-Recipient: rfc822; nobody@example.org\nAction: failed\n' +
          'Status: 5.1.1\nDiagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.\n',
      },
    });
    expect(report).toEqual({
      originalMessageIds: ['<one@contoso.com>', '<two@contoso.com>'],
      recipients: [
        {
          address: 'nobody@example.org',
          status: '5.1.1',
          diagnostic: '550-5.1.1 The email account that you tried to reach does not exist.',
        },
      ],
    });
  });

  it('is not fooled by an ordinary mail: a reply quoting a Message-ID or an "Undeliverable" subject is no report', () => {
    const reply: ReportMessage = {
      from: { emailAddress: { address: 'customer@fabrikam.example' } },
      subject: 'Undeliverable: are you there?',
      internetMessageHeaders: [{ name: 'In-Reply-To', value: '<0a1b.outbox@contoso.com>' }],
      body: { contentType: 'text', content: "ghost@contoso.com\nRemote Server returned '550 5.1.1 x'" },
    };
    expect(mayBeNondeliveryReport(reply)).toBe(true);
    expect(parseNondeliveryReport(reply)).toBeUndefined();
    expect(mayBeNondeliveryReport({ from: { emailAddress: { address: 'ops@contoso.com' } }, subject: 'Hi' })).toBe(
      false,
    );
  });

  it('names no original when the report names none, and keeps a report without a body (no Mail.Read) usable', () => {
    expect(parseNondeliveryReport(exchangeNdr({ internetMessageHeaders: [], body: null }))).toBeUndefined();
    expect(parseNondeliveryReport(exchangeNdr({ body: null }))).toEqual({
      originalMessageIds: ['<0a1b.outbox@contoso.com>'],
      recipients: [],
    });
  });
});
