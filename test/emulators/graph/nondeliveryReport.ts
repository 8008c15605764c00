/**
 * Non-delivery reports (NDRs) the way Exchange Online writes them into the sender's Inbox. Graph answered 202 long
 * before, so an NDR is the only way a product learns that a submission failed after acceptance.
 */
import type { InternetMessageHeader, Recipient } from '@microsoft/microsoft-graph-types';
import type { TenantUser } from '../tenant';
import type { SubmittedMessage } from './delivery';
import { graphDateTime, type NewMessage } from './mailboxStore';
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

/** Why Exchange refused a submission: the mailbox's recipients or the tenant's external recipients in 24 h. */
export type SubmissionRefusal = 'recipientLimit' | 'tenantExternalLimit';

const REFUSALS: Record<SubmissionRefusal, { status: string; diagnostic: string; headline: string }> = {
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
};

/** The enhanced status code of a refusal. */
export function refusalStatus(refusal: SubmissionRefusal): string {
  return REFUSALS[refusal].status;
}

/**
 * Local part of the address Exchange Online sends NDRs from (display name "Microsoft Outlook"); the same fixed value
 * appears in every Exchange Online tenant, at the tenant's domain.
 */
const NDR_SENDER_LOCAL_PART = 'MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e';

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
  /** Emulated time the NDR was written. */
  at: Date;
}

/** The NDR for `original`, which `mailbox` submitted and Exchange refused for the daily recipient limit. */
export function recipientLimitNdr(mailbox: TenantUser, original: SubmittedMessage, now: Date): NewMessage {
  return refusalNdr(mailbox, original, now, 'recipientLimit');
}

/** The NDR for `original`, which `mailbox` submitted and Exchange refused for `refusal`. */
export function refusalNdr(
  mailbox: TenantUser,
  original: SubmittedMessage,
  now: Date,
  refusal: SubmissionRefusal,
): NewMessage {
  const { headline, diagnostic } = REFUSALS[refusal];
  const domain = mailbox.mail.split('@')[1] ?? 'localhost';
  const postmaster: Recipient = {
    emailAddress: { name: 'Microsoft Outlook', address: `${NDR_SENDER_LOCAL_PART}@${domain}` },
  };
  const subject = `Undeliverable: ${original.subject ?? ''}`;
  const when = graphDateTime(now);
  const recipients = allRecipients(original)
    .map((r) => escapeHtml(r.emailAddress?.address ?? ''))
    .join('<br>');
  const content =
    '<html><body>' +
    `<p><b>${headline}</b></p>` +
    "<p>Your message wasn't delivered to these recipients:</p>" +
    `<p>${recipients}</p>` +
    '<p>Diagnostic information for administrators:</p>' +
    `<p>Generating server: emulator.prod.outlook.com</p>` +
    `<p>Remote server returned '${diagnostic}'</p>` +
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
  };
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
