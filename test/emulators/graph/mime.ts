/**
 * A stored message as MIME, the way Exchange builds it on the fly for `$value` (Outlook keeps no original MIME):
 * RFC 5322 headers from the message's properties (From, To, Cc, Subject, Date, Message-ID, In-Reply-To, References,
 * its `x-` headers), `multipart/alternative` (text and HTML) for an HTML body, `multipart/mixed` around the body when
 * there are attachments, files in base64, attached messages as `message/rfc822`.
 *
 * Doc: concepts/outlook-get-mime-message.md and api-reference/v1.0/api/message-get.md example 4 (a multipart/mixed
 * message with a multipart/alternative body in quoted-printable and a base64 file); attachment-get.md example 8 (an
 * attached message's MIME).
 */
import type { Recipient } from '@microsoft/microsoft-graph-types';
import { convertBody } from './mailBody';
import type { NewMessage, StoredAttachment } from './mailboxStore';

const ITEM_ATTACHMENT_TYPE = '#microsoft.graph.itemAttachment';
const FILE_ATTACHMENT_TYPE = '#microsoft.graph.fileAttachment';

/** Headers the emulator writes from properties; the same names among the stored headers are not repeated. */
const BUILT_HEADERS = new Set([
  'from',
  'sender',
  'to',
  'cc',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'content-type',
  'content-transfer-encoding',
  'mime-version',
]);

/** The message as MIME parts (buffers, so that large attachments are not copied into one string twice). */
export function messageMime(message: NewMessage): Buffer[] {
  const parts: Buffer[] = [];
  const write = (text: string) => parts.push(Buffer.from(text, 'utf8'));
  const headers: Array<[string, string]> = [];
  if (message.from) headers.push(['From', address(message.from)]);
  if (message.sender && address(message.sender) !== address(message.from)) {
    headers.push(['Sender', address(message.sender)]);
  }
  if ((message.toRecipients ?? []).length > 0) headers.push(['To', addressList(message.toRecipients)]);
  if ((message.ccRecipients ?? []).length > 0) headers.push(['CC', addressList(message.ccRecipients)]);
  if ((message.replyTo ?? []).length > 0) headers.push(['Reply-To', addressList(message.replyTo)]);
  headers.push(['Subject', encodeWord(message.subject ?? '')]);
  const date = message.sentDateTime ?? message.receivedDateTime;
  if (date) headers.push(['Date', new Date(date).toUTCString().replace('GMT', '+0000')]);
  if (message.internetMessageId) headers.push(['Message-ID', message.internetMessageId]);
  for (const header of message.internetMessageHeaders ?? []) {
    const name = header.name ?? '';
    if (name === '' || BUILT_HEADERS.has(name.toLowerCase()) || /^received$/i.test(name)) continue;
    headers.push([name, header.value ?? '']);
  }
  const attachments = (message.attachments ?? []) as StoredAttachment[];
  const mimeable = attachments.filter((a) => a['@odata.type'] !== '#microsoft.graph.referenceAttachment');
  const mixed = mimeable.length > 0 ? boundary('004', message) : undefined;
  if (mixed) headers.push(['Content-Type', `multipart/mixed;\r\n\tboundary="${mixed}"`]);
  headers.push(['MIME-Version', '1.0']);
  write(headers.map(([n, v]) => `${n}: ${v}\r\n`).join(''));

  if (mixed) write(`\r\n--${mixed}\r\n`);
  write(bodyPart(message));
  if (!mixed) return parts;
  for (const attachment of mimeable) {
    write(`\r\n--${mixed}\r\n`);
    if (attachment['@odata.type'] === ITEM_ATTACHMENT_TYPE && attachment.item) {
      write(`Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n`);
      parts.push(...messageMime(attachment.item));
      continue;
    }
    if (attachment['@odata.type'] !== FILE_ATTACHMENT_TYPE) continue;
    const name = attachment.name ?? 'attachment';
    const disposition = attachment.isInline ? 'inline' : 'attachment';
    let head = `Content-Type: ${attachment.contentType ?? 'application/octet-stream'}; ${param('name', name)}\r\n`;
    head += `Content-Description: ${encodeWord(name)}\r\n`;
    head += `Content-Disposition: ${disposition}; ${param('filename', name)}; size=${attachment.size ?? 0}\r\n`;
    if (attachment.contentId) head += `Content-ID: <${attachment.contentId}>\r\n`;
    head += 'Content-Transfer-Encoding: base64\r\n\r\n';
    write(head);
    parts.push(base64Lines(Buffer.from(attachment.contentBytes ?? '', 'base64')));
  }
  write(`\r\n--${mixed}--\r\n`);
  return parts;
}

/** The body: text/plain, or multipart/alternative with text and HTML when it is HTML, quoted-printable. */
function bodyPart(message: NewMessage): string {
  const isHtml = (message.body?.contentType ?? 'text').toLowerCase() === 'html';
  const text = convertBody(message.body, 'text').content ?? '';
  const textPart = `Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${quotedPrintable(text)}\r\n`;
  if (!isHtml) return textPart;
  const alternative = boundary('000', message);
  const html = message.body?.content ?? '';
  return (
    `Content-Type: multipart/alternative;\r\n\tboundary="${alternative}"\r\n\r\n` +
    `--${alternative}\r\n${textPart}\r\n--${alternative}\r\n` +
    `Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${quotedPrintable(html)}\r\n` +
    `\r\n--${alternative}--\r\n`
  );
}

/** Exchange-style boundaries (`_000_<message id>_`), unique per message and part. */
function boundary(kind: string, message: NewMessage): string {
  const id = (message.internetMessageId ?? 'emulator').replace(/[^A-Za-z0-9]/g, '').slice(0, 60);
  return `_${kind}_${id}_`;
}

function address(recipient: Recipient | null | undefined): string {
  const name = recipient?.emailAddress?.name;
  const mail = recipient?.emailAddress?.address ?? '';
  return name && name !== mail ? `${encodeWord(name)} <${mail}>` : `<${mail}>`;
}

function addressList(recipients: Recipient[] | null | undefined): string {
  return (recipients ?? []).map(address).join(', ');
}

/** RFC 2047 encoded word for non-ASCII header text. */
function encodeWord(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?utf-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

/** A MIME parameter, RFC 2231-encoded when not plain ASCII. */
function param(name: string, value: string): string {
  if (/^[\x20-\x7e]*$/.test(value) && !/["\\]/.test(value)) return `${name}="${value}"`;
  return `${name}*=utf-8''${encodeURIComponent(value)}`;
}

/** Base64 in 76-character lines (RFC 2045 section 6.8). */
function base64Lines(bytes: Buffer): Buffer {
  const text = bytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
  return Buffer.from(lines.join('\r\n') + '\r\n', 'ascii');
}

/** Quoted-printable (RFC 2045 section 6.7) of UTF-8 text, with soft breaks before 76 characters. */
export function quotedPrintable(text: string): string {
  const lines = text.split(/\r?\n/);
  return lines
    .map((line) => {
      let encoded = '';
      const bytes = Buffer.from(line, 'utf8');
      bytes.forEach((byte, i) => {
        const last = i === bytes.length - 1;
        const printable = byte >= 33 && byte <= 126 && byte !== 61;
        const space = (byte === 32 || byte === 9) && !last;
        encoded +=
          printable || space ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      });
      const wrapped: string[] = [];
      while (encoded.length > 75) {
        let cut = 75;
        // Never split an =XX escape.
        const escape = encoded.lastIndexOf('=', cut);
        if (escape > cut - 3) cut = escape;
        wrapped.push(encoded.slice(0, cut) + '=');
        encoded = encoded.slice(cut);
      }
      wrapped.push(encoded);
      return wrapped.join('\r\n');
    })
    .join('\r\n');
}
