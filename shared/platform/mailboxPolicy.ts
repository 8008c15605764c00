/** Allow-lists of mailboxes (`ALLOWED_SENDERS`, `ALLOWED_WATCH_MAILBOXES`): exact addresses and `*@domain` patterns. */

/** Exact addresses (lower case) and domains allowed by `*@domain` patterns (lower case). */
export interface MailboxPolicy {
  addresses: ReadonlySet<string>;
  domains: ReadonlySet<string>;
}

/** Reads a comma-separated list of addresses and `*@domain` patterns; blanks are skipped, case is ignored. */
export function parseMailboxPolicy(value: string): MailboxPolicy {
  const addresses = new Set<string>();
  const domains = new Set<string>();
  for (const entry of value.split(',').map((e) => e.trim().toLowerCase())) {
    if (entry === '') continue;
    if (entry.startsWith('*@')) domains.add(entry.slice(2));
    else addresses.add(entry);
  }
  return { addresses, domains };
}

/** True when `address` is listed, or its domain is, in `policy` (case-insensitive). */
export function isMailboxAllowed(policy: MailboxPolicy, address: string): boolean {
  const lower = address.toLowerCase();
  const domain = lower.slice(lower.lastIndexOf('@') + 1);
  return policy.addresses.has(lower) || policy.domains.has(domain);
}
