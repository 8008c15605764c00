/** Allow-lists of mailboxes (`ALLOWED_SENDERS`, `ALLOWED_WATCH_MAILBOXES`): exact addresses and `*@domain` patterns. */
import type { MailboxPolicy } from './config';

/** True when `address` is listed, or its domain is, in `policy` (case-insensitive). */
export function isMailboxAllowed(policy: MailboxPolicy, address: string): boolean {
  const lower = address.toLowerCase();
  const domain = lower.slice(lower.lastIndexOf('@') + 1);
  return policy.addresses.has(lower) || policy.domains.has(domain);
}
