/** Which mailboxes callers may send as (`ALLOWED_SENDERS`): checked before any Graph call. */
import type { GatewayConfig } from '../platform/config';

/** True when `from` is an allowed address or in an allowed `*@domain`. */
export function isAllowedSender(policy: GatewayConfig['allowedSenders'], from: string): boolean {
  const address = from.toLowerCase();
  const domain = address.slice(address.lastIndexOf('@') + 1);
  return policy.addresses.has(address) || policy.domains.has(domain);
}
