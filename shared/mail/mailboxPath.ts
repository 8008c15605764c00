/**
 * A mailbox named in a URL path (`/api/mailboxes/{mailbox}/...`): judged by the send API's address rules, and on top
 * of them its domain must be plain DNS labels, since the address goes into a Graph resource path. Anything else is
 * a 400 before Graph is called.
 */
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import { addressProblems } from './textRules';

const MAILBOX_DOMAIN = /@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/i;

/** The mailbox address of a path segment, trimmed and lower case; throws 400 `invalid-mailbox` naming the rule. */
export function parseMailboxPath(value: string): string {
  const address = value.trim().toLowerCase();
  const problems = addressProblems(address);
  if (problems.length === 0 && !MAILBOX_DOMAIN.test(address)) {
    problems.push('must end in a domain of letters, digits and hyphens, such as @contoso.com');
  }
  if (problems.length > 0) {
    throw new HttpProblem(
      problem(
        400,
        'invalid-mailbox',
        'Not a mailbox address',
        `The path must name a mailbox address such as support@contoso.com; the mailbox ${problems.join('; ')}.`,
        { errors: problems.map((message) => ({ field: 'mailbox', message })) },
      ),
    );
  }
  return address;
}
