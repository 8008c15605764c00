import {
  fileAttachment,
  needsDraftPath,
  sendMailBody,
  sendMailRequestBytes,
  SINGLE_REQUEST_BUDGET_BYTES,
} from '../../shared/mail/composeMessage';
import { parseSendRequest, type SendRequest } from '../../shared/mail/sendRequest';

/** The sendMail body with every attachment's base64 inline, as the sender builds it. */
function sendMailJson(req: SendRequest): ReturnType<typeof sendMailBody> {
  return sendMailBody(
    req,
    req.attachments.map((a) => fileAttachment(a, a.content as string)),
  );
}

function request(body: Record<string, unknown>): SendRequest {
  const parsed = parseSendRequest({ from: 'alerts@contoso.com', text: 'x', ...body });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.request;
}

describe('the size of the sendMail request', () => {
  it('is measured exactly: escapes, multi-byte names, headers and several attachments included', () => {
    const req = request({
      to: [{ address: 'a@example.com', name: 'Ünïcødé "quoted" \\ back\tslash €€€' }],
      subject: 'Grüße "x" ✓',
      text: undefined,
      html: '<p>"quotes" and \\ and ü and \u2603</p>',
      headers: { 'X-A': 'ü"1"' },
      attachments: [
        { name: 'ä "1".txt', contentType: 'text/plain', contentBase64: Buffer.from('hello').toString('base64') },
        {
          name: 'b.bin',
          contentType: 'application/octet-stream',
          contentBase64: Buffer.alloc(999, 7).toString('base64'),
        },
        { name: 'c.png', contentType: 'image/png', contentBase64: 'AAAA', inline: true, contentId: 'logo' },
      ],
    });
    expect(sendMailRequestBytes(req)).toBe(Buffer.byteLength(JSON.stringify(sendMailJson(req))));
    expect(sendMailRequestBytes(request({ to: ['a@example.com'] }))).toBe(
      Buffer.byteLength(JSON.stringify(sendMailJson(request({ to: ['a@example.com'] })))),
    );
  });

  it('takes the draft path only once the measured request exceeds the budget', () => {
    const withNames = (nameBytes: number) =>
      request({
        to: Array.from({ length: 500 }, (_, i) => ({ address: `r${i}@example.com`, name: '€'.repeat(nameBytes / 3) })),
        attachments: [
          {
            name: 'a.bin',
            contentType: 'application/octet-stream',
            contentBase64: Buffer.alloc(2_900_000).toString('base64'),
          },
        ],
      });
    const small = withNames(30); // ~3.9 MB: one request
    const large = withNames(750);
    expect(sendMailRequestBytes(small)).toBeLessThan(SINGLE_REQUEST_BUDGET_BYTES);
    expect(needsDraftPath(small)).toBe(false);
    expect(sendMailRequestBytes(large)).toBeGreaterThan(SINGLE_REQUEST_BUDGET_BYTES);
    expect(needsDraftPath(large)).toBe(true);
  });
});
