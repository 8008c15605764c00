/** Which mailboxes callers may send as (`ALLOWED_SENDERS`): checked before any Graph call. */
import type { GatewayConfig } from '../platform/config';
import { isMailboxAllowed } from '../platform/mailboxPolicy';

/** True when `from` is an allowed address or in an allowed `*@domain`. */
export function isAllowedSender(policy: GatewayConfig['allowedSenders'], from: string): boolean {
  return isMailboxAllowed(policy, from);
}
