/**
 * Message bodies as Exchange serves them: stored as HTML or text, converted on the way out to what the client
 * prefers (`Prefer: outlook.body-content-type`), HTML when it says nothing, and a 255-character text preview.
 *
 * Doc: api-reference/v1.0/api/message-get.md, "Request headers": `Prefer: outlook.body-content-type` takes "text" or
 * "html", converts **body** and **uniqueBody**, and a `Preference-Applied` header confirms it; without the header both
 * are returned in HTML format. resources/message.md: bodyPreview is "the first 255 characters of the message body.
 * It is in text format."
 */
import type { ItemBody } from '@microsoft/microsoft-graph-types';

/** A body type the client can ask for. */
export type BodyType = 'text' | 'html';

/** Longest bodyPreview (resources/message.md). */
export const BODY_PREVIEW_CHARS = 255;

/**
 * The body type `Prefer` asks for, when it names `outlook.body-content-type`; undefined otherwise. The header may carry
 * several comma-separated preferences (odata.maxpagesize among them), and the value may be quoted or not.
 */
export function preferredBodyType(prefer: string | undefined): BodyType | undefined {
  for (const part of (prefer ?? '').split(',')) {
    const match = /^\s*outlook\.body-content-type\s*=\s*"?([A-Za-z]+)"?\s*$/i.exec(part);
    if (!match) continue;
    const value = match[1].toLowerCase();
    // An unknown value is ignored, as for any preference the server does not understand (RFC 7240 section 2).
    if (value === 'text' || value === 'html') return value;
  }
  return undefined;
}

/** The `Preference-Applied` header confirming `type` (message-get.md, example 3). */
export function preferenceApplied(type: BodyType): Record<string, string> {
  return { 'preference-applied': `outlook.body-content-type="${type}"` };
}

/** `body` as `type` (HTML when undefined, Graph's default). */
export function convertBody(body: ItemBody | null | undefined, type: BodyType | undefined): ItemBody {
  const target = type ?? 'html';
  const source = (body?.contentType ?? 'text').toLowerCase() === 'html' ? 'html' : 'text';
  const content = body?.content ?? '';
  if (source === target) return { contentType: target, content };
  return { contentType: target, content: target === 'text' ? htmlToText(content) : textToHtml(content) };
}

/** The first 255 characters of the body as text, whitespace runs collapsed. */
export function bodyPreview(body: ItemBody | null | undefined): string {
  const text = convertBody(body, 'text').content ?? '';
  return text.replace(/\s+/g, ' ').trim().slice(0, BODY_PREVIEW_CHARS);
}

/** Plain text as Exchange wraps it into HTML: escaped, line breaks as `<br>`, in a minimal document. */
export function textToHtml(text: string): string {
  const escaped = escapeHtml(text).replace(/\r?\n/g, '<br>\r\n');
  return (
    '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n' +
    `<body>\r\n<div>${escaped}</div>\r\n</body>\r\n</html>\r\n`
  );
}

/** HTML reduced to its text: head, styles and scripts dropped, block ends as line breaks, entities decoded. */
export function htmlToText(html: string): string {
  const text = html
    .replace(/<(head|style|script)\b[^>]*>[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\r\n')
    .replace(/<\/(p|div|tr|li|h[1-6]|blockquote)>/gi, '\r\n')
    .replace(/<[^>]*>/g, '');
  return decodeEntities(text)
    .replace(/[ \t]+\r\n/g, '\r\n')
    .replace(/(\r\n){3,}/g, '\r\n\r\n')
    .trim();
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function decodeEntities(text: string): string {
  return text
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&amp;/g, '&');
}
