/**
 * Graph's refusals as problem documents, one mapper for every concern that calls Graph. The refusals all of them meet
 * (access denied, a mailbox Graph cannot use or does not know, throttling, anything else) have one status and type
 * everywhere; each concern words them for its own caller and adds the cases only it meets. Every problem made here
 * carries Graph's code and ids in its `graph` member and the {@link GraphFailure} as its `cause`.
 */
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import type { ProblemSlug } from '../platform/problems/problemCatalogue';
import type { GraphFailure } from './graphFailure';

/** A problem's title and detail. */
export interface ProblemWords {
  title: string;
  detail: string;
}

/** Makes a problem from `failure` with the `graph` member and the cause filled in. */
export type GraphProblemMaker = (
  status: number,
  slug: ProblemSlug,
  title: string,
  detail: string,
  retryAfterSeconds?: number,
) => HttpProblem;

/** How one concern words the shared refusals, and its own cases. */
export interface GraphProblemCases {
  /** The concern's own cases, tried first: Graph codes only it meets. */
  before?(failure: GraphFailure, make: GraphProblemMaker): HttpProblem | undefined;
  /** `403 mailbox-out-of-scope` (`ErrorAccessDenied`). */
  accessDenied(failure: GraphFailure): ProblemWords;
  /** `422 mailbox-not-enabled` (`MailboxNotEnabledForRESTAPI`); Graph's own words when absent. */
  mailboxNotEnabled?(failure: GraphFailure): ProblemWords;
  /** `422 mailbox-not-found` (`ErrorInvalidUser`, `Request_ResourceNotFound`); Graph's own words when absent. */
  mailboxNotFound?(failure: GraphFailure): ProblemWords;
  /** The concern's own cases by status, tried after Graph's codes (a code says more than a status). */
  after?(failure: GraphFailure, make: GraphProblemMaker): HttpProblem | undefined;
  /** `503 graph-throttled` (Graph kept answering 429, 503 or 504), with the `Retry-After` to answer. */
  throttled(failure: GraphFailure): ProblemWords & { retryAfterSeconds: number };
  /** Whether the `graph` member quotes Graph's `x-ms-diagnostics`. */
  quoteDiagnostics?: boolean;
}

const MAILBOX_NOT_ENABLED = (failure: GraphFailure): ProblemWords => ({
  title: 'The mailbox cannot be used through Graph',
  detail: failure.message,
});
const MAILBOX_NOT_FOUND = (failure: GraphFailure): ProblemWords => ({
  title: 'No such mailbox',
  detail: `The tenant has no such mailbox ("${failure.message}").`,
});

/**
 * `403 graph-forbidden` for a 403 no code explained (not `ErrorAccessDenied`): an `after` case for concerns whose
 * caller should see Graph's refusal as it is.
 */
export function graphForbidden(failure: GraphFailure, make: GraphProblemMaker): HttpProblem | undefined {
  if (failure.status !== 403) return undefined;
  return make(
    403,
    'graph-forbidden',
    'Microsoft Graph refused',
    `Graph answered 403 ${failure.code ?? ''}: ${failure.message}`,
  );
}

/** The problem for a call Graph answered with a failure, as `cases` words it. */
export function graphFailureProblem(failure: GraphFailure, cases: GraphProblemCases): HttpProblem {
  const graph = {
    code: failure.code,
    requestId: failure.requestId,
    clientRequestId: failure.clientRequestId,
    ...(cases.quoteDiagnostics ? { diagnostics: failure.diagnostics } : {}),
    status: failure.status,
  };
  const make: GraphProblemMaker = (status, slug, title, detail, retryAfterSeconds) =>
    new HttpProblem(problem(status, slug, title, detail, { graph }), { retryAfterSeconds, cause: failure });
  const own = cases.before?.(failure, make);
  if (own) return own;
  switch (failure.code) {
    case 'ErrorAccessDenied': {
      const { title, detail } = cases.accessDenied(failure);
      return make(403, 'mailbox-out-of-scope', title, detail);
    }
    case 'MailboxNotEnabledForRESTAPI': {
      const { title, detail } = (cases.mailboxNotEnabled ?? MAILBOX_NOT_ENABLED)(failure);
      return make(422, 'mailbox-not-enabled', title, detail);
    }
    case 'ErrorInvalidUser':
    case 'Request_ResourceNotFound': {
      const { title, detail } = (cases.mailboxNotFound ?? MAILBOX_NOT_FOUND)(failure);
      return make(422, 'mailbox-not-found', title, detail);
    }
  }
  const byStatus = cases.after?.(failure, make);
  if (byStatus) return byStatus;
  if (failure.status === 429 || failure.status === 503 || failure.status === 504) {
    const { title, detail, retryAfterSeconds } = cases.throttled(failure);
    return make(503, 'graph-throttled', title, detail, retryAfterSeconds);
  }
  return make(
    502,
    'graph-error',
    'Microsoft Graph refused the request',
    `Graph answered ${failure.status} ${failure.code ?? ''}: ${failure.message}`,
  );
}
