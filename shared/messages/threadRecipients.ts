/**
 * Who a reply or reply-all goes to besides the caller's Cc and Bcc, read from the original before the mail is stored,
 * so that the pacer counts what Exchange will count against the mailbox's daily recipients (and the tenant's external
 * ones). Graph builds the recipients only when the processor drafts the reply (createReply: the original's Reply-To,
 * else its sender; createReplyAll: those and the original's To and Cc, without the mailbox itself).
 */
import type { Client } from '@microsoft/microsoft-graph-client';
import type { Message, Recipient } from '@microsoft/microsoft-graph-types';
import { graphIdSegment } from './messageIds';

/**
 * The addresses Graph's draft will add for `kind`, lower case and each once; undefined when the original could not
 * be read (the caller then counts one recipient, as before, and the processor's own Graph call reports the problem).
 */
export async function answeredRecipients(
  graph: Client,
  mailbox: string,
  messageId: string,
  kind: 'reply' | 'replyAll',
): Promise<string[] | undefined> {
  let original: Pick<Message, 'from' | 'replyTo' | 'toRecipients' | 'ccRecipients'>;
  try {
    original = (await graph
      .api(`/users/${encodeURIComponent(mailbox)}/messages/${graphIdSegment(messageId)}`)
      .select('from,replyTo,toRecipients,ccRecipients')
      .get()) as typeof original;
  } catch {
    return undefined;
  }
  const answered = original.replyTo?.length ? original.replyTo : original.from ? [original.from] : [];
  const all =
    kind === 'replyAll' ? [...answered, ...(original.toRecipients ?? []), ...(original.ccRecipients ?? [])] : answered;
  const self = mailbox.toLowerCase();
  const addresses = all.map((r: Recipient) => r.emailAddress?.address?.trim().toLowerCase()).filter((a) => !!a);
  // Graph leaves the mailbox itself out of a reply-all; a plain reply to one's own mail still goes to oneself.
  return [...new Set(addresses as string[])].filter((a) => kind === 'reply' || a !== self);
}
