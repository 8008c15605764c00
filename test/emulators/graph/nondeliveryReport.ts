/**
 * Non-delivery reports (NDRs) the way Exchange Online writes them into the sender's Inbox. Graph answered 202 long
 * before, so an NDR is the only way a product learns that a submission failed after acceptance.
 */
import type { InternetMessageHeader, Recipient } from '@microsoft/microsoft-graph-types';
import type { TenantUser } from '../tenant';
import type { SubmittedMessage } from './delivery';
import { graphDateTime, type AttachmentInput, type NewMessage } from './mailboxStore';
import { allRecipients } from './messageInput';

/** Enhanced status code of the recipient rate limit (learn: outbound-spam-sending-limits-troubleshoot). */
export const RECIPIENT_LIMIT_STATUS = '5.1.90';

/** The diagnostic line of the recipient-rate-limit NDR (as quoted in GRAPH-FACTS.md). */
export const RECIPIENT_LIMIT_DIAGNOSTIC =
  "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients";

/**
 * Enhanced status code of the tenant external recipient rate limit, TERRL (learn: non-delivery-reports-in-exchange-online:
 * 5.7.233 for a paid tenant, 5.7.232 for a trial tenant).
 */
export const TENANT_EXTERNAL_LIMIT_STATUS = '5.7.233';

/** The diagnostic line of the TERRL NDR (the NDR reference's text for 5.7.233). */
export const TENANT_EXTERNAL_LIMIT_DIAGNOSTIC =
  "550 5.7.233 Your message can't be sent because your tenant exceeded its daily limit for sending email to external recipients (tenant external recipient rate limit)";

/** Enhanced status code of a recipient that does not exist in the tenant's accepted domain (RFC 3463: bad mailbox). */
export const RECIPIENT_NOT_FOUND_STATUS = '5.1.1';

/** The diagnostic line Exchange writes for an unknown recipient of its own organisation. */
export const RECIPIENT_NOT_FOUND_DIAGNOSTIC = '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found';

/** Why Exchange refused a submission: the mailbox's recipients or the tenant's external recipients in 24 h. */
export type SubmissionRefusal = 'recipientLimit' | 'tenantExternalLimit';

/** Why one recipient's copy was not delivered: a refusal of the whole submission, or an unknown address. */
export type NondeliveryReason = SubmissionRefusal | 'recipientNotFound';

const REASONS: Record<NondeliveryReason, { status: string; diagnostic: string; headline: string }> = {
  recipientLimit: {
    status: RECIPIENT_LIMIT_STATUS,
    diagnostic: RECIPIENT_LIMIT_DIAGNOSTIC,
    headline: "Your message can't be sent because you've reached your daily limit for message recipients.",
  },
  tenantExternalLimit: {
    status: TENANT_EXTERNAL_LIMIT_STATUS,
    diagnostic: TENANT_EXTERNAL_LIMIT_DIAGNOSTIC,
    headline:
      "Your message can't be sent because your tenant exceeded its daily limit for sending email to external recipients.",
  },
  recipientNotFound: {
    status: RECIPIENT_NOT_FOUND_STATUS,
    diagnostic: RECIPIENT_NOT_FOUND_DIAGNOSTIC,
    headline: "Your message couldn't be delivered. The email address wasn't found at the destination domain.",
  },
};

/** The enhanced status code of a refusal or non-delivery. */
export function refusalStatus(reason: NondeliveryReason): string {
  return REASONS[reason].status;
}

/**
 * Local part of the address Exchange Online sends NDRs from (display name "Microsoft Outlook"); the same fixed value
 * appears in every Exchange Online tenant, at the tenant's domain.
 */
const NDR_SENDER_LOCAL_PART = 'MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e';

/** The message class of an NDR (PidTagMessageClass, 0x001A): REPORT.<class of the original>.NDR. */
export const NDR_MESSAGE_CLASS = 'REPORT.IPM.Note.NDR';

/** An NDR the emulator wrote, for tests and benchmarks (`GraphEmulator.ndrs`). */
export interface NdrRecord {
  /** The sending mailbox's address (where the NDR landed). */
  mailbox: string;
  /** Message-ID of the message that was not delivered. */
  internetMessageId: string;
  /** Its subject. */
  subject: string;
  /** Enhanced status code, e.g. `5.1.90`. */
  status: string;
  /** The recipients it reports (every recipient for a refused submission, the unknown ones for 5.1.1). */
  recipients: string[];
  /** Emulated time the NDR was written. */
  at: Date;
}

/** The NDR for `original`, which `mailbox` submitted and Exchange refused for the daily recipient limit. */
export function recipientLimitNdr(mailbox: TenantUser, original: SubmittedMessage, now: Date): NewMessage {
  return refusalNdr(mailbox, original, now, 'recipientLimit');
}

/** The NDR for `original`, which `mailbox` submitted and Exchange refused for `refusal` (for every recipient). */
export function refusalNdr(
  mailbox: TenantUser,
  original: SubmittedMessage,
  now: Date,
  refusal: NondeliveryReason,
  failed: readonly string[] = allRecipients(original).map((r) => r.emailAddress?.address ?? ''),
): NewMessage {
  const { headline, diagnostic } = REASONS[refusal];
  const domain = mailbox.mail.split('@')[1] ?? 'localhost';
  const postmaster: Recipient = {
    emailAddress: { name: 'Microsoft Outlook', address: `${NDR_SENDER_LOCAL_PART}@${domain}` },
  };
  const subject = `Undeliverable: ${original.subject ?? ''}`;
  const when = graphDateTime(now);
  // Exchange lists each failed recipient in the administrators' section followed by the line the server returned.
  const perRecipient = failed
    .map((address) => `<p>${escapeHtml(address)}<br>Remote Server returned '${escapeHtml(diagnostic)}'</p>`)
    .join('');
  const content =
    '<html><body>' +
    `<p><b>${headline}</b></p>` +
    "<p>Your message wasn't delivered to these recipients:</p>" +
    `<p>${failed.map(escapeHtml).join('<br>')}</p>` +
    '<p>Diagnostic information for administrators:</p>' +
    `<p>Generating server: emulator.prod.outlook.com</p>` +
    perRecipient +
    `<p>Original message headers:</p><pre>Message-ID: ${escapeHtml(original.internetMessageId)}\n` +
    `Subject: ${escapeHtml(original.subject ?? '')}</pre>` +
    '</body></html>';
  const headers: InternetMessageHeader[] = [
    { name: 'From', value: `"Microsoft Outlook" <${postmaster.emailAddress?.address ?? ''}>` },
    { name: 'To', value: `<${mailbox.mail}>` },
    { name: 'Subject', value: subject },
    { name: 'Date', value: now.toUTCString().replace('GMT', '+0000') },
    { name: 'Content-Type', value: 'multipart/report; report-type=delivery-status' },
    // Exchange ties the report to the failed message, so a client can match the two without parsing the body.
    { name: 'In-Reply-To', value: original.internetMessageId },
    { name: 'References', value: original.internetMessageId },
    { name: 'X-MS-Exchange-Message-Is-Ndr', value: '' },
    { name: 'MIME-Version', value: '1.0' },
  ];
  // The original travels with the report as an attached item (Outlook shows it under the report).
  const attached: AttachmentInput = {
    '@odata.type': '#microsoft.graph.itemAttachment',
    name: original.subject ?? '',
    isInline: false,
    item: { ...original, attachments: [] },
  };
  return {
    subject,
    from: postmaster,
    sender: postmaster,
    toRecipients: [{ emailAddress: { name: mailbox.displayName, address: mailbox.mail } }],
    body: { contentType: 'html', content },
    importance: 'high',
    isRead: false,
    isDraft: false,
    sentDateTime: when,
    receivedDateTime: when,
    internetMessageHeaders: headers,
    attachments: [attached],
  };
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
