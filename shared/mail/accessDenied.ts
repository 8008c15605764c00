/**
 * Graph's `ErrorAccessDenied` means either a missing permission or a mailbox outside the app's Exchange scope.
 * When the token lacks the permission, say so (with the permission check off, Graph is the first to notice).
 */
import type { AppCredential } from '../identity/appCredential';
import { AdminConsentMissingError } from '../identity/tokenClaims';
import { graphFailureOf } from '../graph/graphFailure';
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import { requiredGraphRoles } from './composeMessage';
import type { SendRequest } from './sendRequest';

/** Rethrows `err`, made specific when it is an access denial that the token's missing roles explain. */
export async function explainAccessDenied(
  err: unknown,
  request: SendRequest,
  credential: Pick<AppCredential, 'requireGraphPermissions'>,
): Promise<never> {
  if (!(err instanceof HttpProblem) || graphFailureOf(err)?.code !== 'ErrorAccessDenied') throw err;
  const roles = requiredGraphRoles(request);
  const missing = await credential
    .requireGraphPermissions(roles)
    .then(() => [])
    .catch((e: unknown) => (e instanceof AdminConsentMissingError ? [...e.missing] : []));
  if (missing.length === 0) throw err;
  throw new HttpProblem(
    problem(
      403,
      'graph-access-denied',
      'Microsoft Graph denied access',
      `admin consent not granted for ${missing.join(', ')} (the token lacks ${missing.length > 1 ? 'them' : 'it'}), unless Exchange RBAC for Applications grants ${missing.length > 1 ? 'them' : 'it'} and '${request.from}' is outside that scope. Grant admin consent in Entra ID, or add the mailbox to the scope (infra/Set-MailboxScope.ps1).`,
      { graph: err.doc.graph, missingPermissions: missing },
    ),
    { headers: err.headers, retryAfterSeconds: err.retryAfterSeconds, cause: err.cause },
  );
}
