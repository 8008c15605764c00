/**
 * The `mail.received` event of a mailbox watched with content, cut to fit a `mail-events` queue message (48 KiB of
 * JSON, which base64 makes 64 KiB): the body first, on a character boundary, then attachments from the end; links
 * to the message always stay.
 */
import { QUEUE_EVENT_MAX_JSON_BYTES } from '../../shared/events/eventPublisher';
import type { MailAttachment } from '../../shared/events/cloudEvent';
import { fitMailReceived, mailLinks, mailReceivedEvent } from '../../shared/watch/content/mailReceived';
import { cutUtf8 } from '../../shared/watch/content/utf8Cut';

const MESSAGE = {
  id: 'AAMkAGI2+/abc=',
  subject: 'Printer on fire',
  from: { emailAddress: { address: 'someone@example.org' } },
  toRecipients: [{ emailAddress: { address: 'support@contoso.com' } }],
  receivedDateTime: '2026-12-07T05:00:00Z',
  hasAttachments: true,
};

const attachment = (i: number): MailAttachment => ({
  id: `AAMkAGattachment${i}${'x'.repeat(150)}=`,
  name: `file ${i}.pdf`,
  contentType: 'application/pdf',
  size: 1000 + i,
  isInline: false,
  kind: 'file',
});

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

describe('cutUtf8', () => {
  it('keeps whole characters only', () => {
    expect(cutUtf8('äöü', 3)).toBe('ä'); // 2 bytes each: the second would need bytes 3 and 4
    expect(cutUtf8('日本語', 5)).toBe('日');
    expect(cutUtf8('😀x', 3)).toBe('');
    expect(cutUtf8('abc', 10)).toBe('abc');
    expect(cutUtf8('abc', 0)).toBe('');
  });
});

describe('links', () => {
  it('are gateway API paths with each id one percent-encoded segment, the mailbox keeping its @', () => {
    expect(mailLinks('Support@Contoso.com', 'AAMk/a+b=', [attachment(1)])).toEqual({
      message: '/api/mailboxes/support@contoso.com/messages/AAMk%2Fa%2Bb%3D',
      mime: '/api/mailboxes/support@contoso.com/messages/AAMk%2Fa%2Bb%3D/mime',
      attachments: [
        {
          id: attachment(1).id,
          href: `/api/mailboxes/support@contoso.com/messages/AAMk%2Fa%2Bb%3D/attachments/${encodeURIComponent(attachment(1).id)}`,
        },
      ],
    });
  });
});

describe('fitting a queue message', () => {
  it('leaves an event that fits as it is', () => {
    const event = mailReceivedEvent('support@contoso.com', MESSAGE, {
      body: { contentType: 'text', content: 'short', truncated: false },
    });
    expect(fitMailReceived(event, QUEUE_EVENT_MAX_JSON_BYTES)).toBe(event);
  });

  it('cuts the body to fill the message, escapes and multi-byte characters counted', () => {
    const content = 'Zeile "mit" Umlauten äöü\n\t\u0001 und 日本語 '.repeat(10_000);
    const event = mailReceivedEvent('support@contoso.com', MESSAGE, {
      body: { contentType: 'text', content, truncated: false },
    });
    const fitted = fitMailReceived(event, QUEUE_EVENT_MAX_JSON_BYTES);
    expect(jsonBytes(fitted)).toBeLessThanOrEqual(QUEUE_EVENT_MAX_JSON_BYTES);
    expect(jsonBytes(fitted)).toBeGreaterThan(QUEUE_EVENT_MAX_JSON_BYTES - 8);
    expect(fitted.data.body?.truncated).toBe(true);
    expect(content.startsWith(fitted.data.body!.content)).toBe(true);
    // base64 of the fitted JSON is a queue message of at most 64 KiB.
    expect(Buffer.from(JSON.stringify(fitted)).toString('base64').length).toBeLessThanOrEqual(65_536);
    // The webhook's event is not touched.
    expect(event.data.body?.content).toBe(content);
    expect(fitted.id).toBe(event.id);
  });

  it('leaves attachments out from the end when the body alone is not enough, and keeps the message links', () => {
    const attachments = Array.from({ length: 400 }, (_, i) => attachment(i));
    const event = mailReceivedEvent('support@contoso.com', MESSAGE, {
      body: { contentType: 'html', content: '<p>x</p>'.repeat(1000), truncated: false },
      attachments,
    });
    const fitted = fitMailReceived(event, QUEUE_EVENT_MAX_JSON_BYTES);
    expect(jsonBytes(fitted)).toBeLessThanOrEqual(QUEUE_EVENT_MAX_JSON_BYTES);
    expect(fitted.data.body).toEqual({ contentType: 'html', content: '', truncated: true });
    expect(fitted.data.attachmentsTruncated).toBe(true);
    const kept = fitted.data.attachments!;
    expect(kept.length).toBeGreaterThan(10);
    expect(kept).toEqual(attachments.slice(0, kept.length));
    expect(fitted.data.links.attachments!.map((l) => l.id)).toEqual(kept.map((a) => a.id));
    expect(fitted.data.links.message).toBe(event.data.links.message);
    expect(fitted.data.links.mime).toBe(event.data.links.mime);
  });
});
