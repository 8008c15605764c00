/**
 * Non-delivery reports (NDRs, bounces) as a mailbox receives them: is a message one, which message did it report, and
 * which recipients failed with which enhanced status code (RFC 3463, e.g. `5.1.1`). Pure: the caller reads the
 * message through Graph.
 *
 * What it relies on, as Exchange Online writes NDRs (see the README's "Bounces" for the sources):
 * - the sender `MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@<tenant domain>` ("Microsoft Outlook"), or a
 *   remote `mailer-daemon`/`postmaster`, or a subject such as `Undeliverable: ...` (only a hint, to decide whether
 *   reading the message is worth a request; subjects are localised);
 * - proof it is a report: the `X-MS-Exchange-Message-Is-Ndr` header, or `Content-Type: multipart/report;
 *   report-type=delivery-status` (RFC 3462), or the Exchange NDR sender;
 * - the original's Message-ID in `In-Reply-To`/`References`, else in the quoted "Original message headers";
 * - per failed recipient, its address followed by `Remote Server returned '550 5.1.1 ...'` (or the older
 *   `#550 5.1.1 ... ##`), or an RFC 3464 block (`Final-Recipient: rfc822;addr` ... `Status: 5.1.1`).
 */
import type { InternetMessageHeader, ItemBody, Recipient } from '@microsoft/microsoft-graph-types';

/** The local part Exchange Online sends its NDRs from, in every tenant (lower case). */
export const EXCHANGE_NDR_SENDER = 'microsoftexchange329e71ec88ae4615bbc36ab6ce41109e';

/** Senders of remote servers' bounces (local parts, lower case). */
const BOUNCE_SENDERS = new Set([EXCHANGE_NDR_SENDER, 'mailer-daemon', 'postmaster']);

/** Subjects of NDRs in English (Exchange's `Undeliverable:`, other servers' usual ones). */
const BOUNCE_SUBJECT =
  /^\s*(undeliverable|undelivered mail|delivery status notification|mail delivery failed|returned mail)\b/i;

/** One recipient the report says failed. */
export interface FailedRecipient {
  address: string;
  /** The enhanced status code, e.g. `5.1.1`. */
  status: string;
  /** The server's line, e.g. `550 5.1.1 RESOLVER.ADR.RecipNotFound; not found` (at most 300 characters). */
  diagnostic?: string;
}

/** What a report says. */
export interface NondeliveryReport {
  /** Message-IDs the report refers to, most trustworthy first (headers, then the quoted original headers). */
  originalMessageIds: string[];
  recipients: FailedRecipient[];
}

/** The message properties {@link parseNondeliveryReport} reads. */
export interface ReportMessage {
  from?: Recipient | null;
  subject?: string | null;
  internetMessageHeaders?: InternetMessageHeader[] | null;
  body?: ItemBody | null;
}

/** What the listed metadata says: worth reading the message to see whether it is a report. */
export function mayBeNondeliveryReport(message: Pick<ReportMessage, 'from' | 'subject'>): boolean {
  return BOUNCE_SENDERS.has(localPart(message.from)) || BOUNCE_SUBJECT.test(message.subject ?? '');
}

/** The report `message` is, or undefined when it is none (or names no original message). */
export function parseNondeliveryReport(message: ReportMessage): NondeliveryReport | undefined {
  const headers = message.internetMessageHeaders ?? [];
  const header = (name: string) => headers.filter((h) => h.name?.toLowerCase() === name).map((h) => h.value ?? '');
  const isReport =
    header('x-ms-exchange-message-is-ndr').length > 0 ||
    header('content-type').some((v) => /multipart\/report/i.test(v) && /delivery-status/i.test(v)) ||
    localPart(message.from) === EXCHANGE_NDR_SENDER;
  if (!isReport) return undefined;
  const text = bodyText(message.body);
  const ids = [
    ...[...header('in-reply-to'), ...header('references')].flatMap(messageIds),
    ...[...text.matchAll(/^\s*Message-ID:\s*(<[^>\s]+>)/gim)].map((m) => m[1]),
  ];
  const originalMessageIds = [...new Set(ids)];
  if (originalMessageIds.length === 0) return undefined;
  return { originalMessageIds, recipients: failedRecipients(text) };
}

/** The Message-IDs (`<...>`) in a header value. */
function messageIds(value: string): string[] {
  return [...value.matchAll(/<[^<>\s]+>/g)].map((m) => m[0]);
}

const ADDRESS = /[^\s<>"'@;:,]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const SERVER_LINE = /(?:Remote Server returned\s+'|#)\s*(\d{3}[ -]((?:[245])\.\d{1,3}\.\d{1,3})\b[^'#\r\n]*)/i;
const DIAGNOSTIC_MAX = 300;

/**
 * Each failed recipient with its status: an address line followed by the line the server returned, or an RFC 3464
 * per-recipient block. A recipient listed twice (summary and diagnostics) is reported once.
 */
function failedRecipients(text: string): FailedRecipient[] {
  const found = new Map<string, FailedRecipient>();
  const add = (address: string, status: string, diagnostic?: string) => {
    const key = address.toLowerCase();
    if (found.has(key)) return;
    found.set(key, { address, status, ...(diagnostic ? { diagnostic: diagnostic.slice(0, DIAGNOSTIC_MAX) } : {}) });
  };
  let lastAddress: string | undefined;
  // An RFC 3464 block names its recipient first; Status and Diagnostic-Code follow in either order.
  let block: { address: string; status?: string; diagnostic?: string } | undefined;
  const endBlock = () => {
    if (block?.status) add(block.address, block.status, block.diagnostic);
    block = undefined;
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const dsn = /^Final-Recipient:\s*rfc822;\s*(\S+)/i.exec(line);
    if (dsn) {
      endBlock();
      block = { address: dsn[1].replace(/^<|>$/g, '') };
      continue;
    }
    if (block) {
      const status = /^Status:\s*([245]\.\d{1,3}\.\d{1,3})/i.exec(line);
      if (status) block.status = status[1];
      const diagnosticCode = /^Diagnostic-Code:\s*[\w-]+;\s*(.+)$/i.exec(line);
      if (diagnosticCode) block.diagnostic = diagnosticCode[1].trim();
      if (status || diagnosticCode) continue;
    }
    const server = SERVER_LINE.exec(line);
    if (server && lastAddress) {
      add(lastAddress, server[2], server[1].trim());
      lastAddress = undefined;
      continue;
    }
    const address = ADDRESS.exec(line);
    // Only a line that is an address (the diagnostics list each one alone) names the next server line's recipient.
    if (address && line.replace(/^mailto:/i, '').replace(/[<>]/g, '') === address[0]) lastAddress = address[0];
  }
  endBlock();
  return [...found.values()];
}

/** The body as text: HTML reduced to lines (block ends and `<br>` as line breaks, tags dropped, entities decoded). */
function bodyText(body: ItemBody | null | undefined): string {
  const content = body?.content ?? '';
  if ((body?.contentType ?? 'text').toLowerCase() !== 'html') return content;
  return content
    .replace(/<(head|style|script)\b[^>]*>[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|tr|li|pre|h[1-6])>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

function localPart(recipient: Recipient | null | undefined): string {
  const address = recipient?.emailAddress?.address ?? '';
  const at = address.lastIndexOf('@');
  return (at < 0 ? address : address.slice(0, at)).toLowerCase();
}
