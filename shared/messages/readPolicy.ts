/**
 * Which mailboxes' received mail callers may read, answer and file (`ALLOWED_READ_MAILBOXES`): judged before any
 * Graph call, so a caller can never use the gateway's tenant-wide permission on a mailbox the operator did not list.
 */
import type { GatewayConfig } from '../platform/config';
import { HttpProblem } from '../platform/problems/httpProblem';
import { isMailboxAllowed } from '../platform/mailboxPolicy';
import { problem } from '../platform/problems/problem';

/** Throws 403 `mailbox-not-readable` unless `mailbox` (already parsed) is in ALLOWED_READ_MAILBOXES. */
export function requireReadableMailbox(config: GatewayConfig, mailbox: string): void {
  if (isMailboxAllowed(config.messages.allowedMailboxes, mailbox)) return;
  throw new HttpProblem(
    problem(
      403,
      'mailbox-not-readable',
      "This mailbox's mail may not be read",
      `'${mailbox}' is not in ALLOWED_READ_MAILBOXES; add it (or its *@domain) to the setting to read, answer and file its mail.`,
      { mailbox },
    ),
  );
}
