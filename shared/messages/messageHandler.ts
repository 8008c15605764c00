/**
 * What every message API route does around its own work: the path's mailbox is parsed and must be in
 * ALLOWED_READ_MAILBOXES before anything else happens, and whatever goes wrong is answered as a problem (Graph's
 * refusals through the shared mapper with the message API's cases, anything unforeseen as `500 internal`).
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import { GraphFailure } from '../graph/graphFailure';
import { graphFailureProblem } from '../graph/graphProblems';
import type { AppCredential } from '../identity/appCredential';
import { parseMailboxPath } from '../mail/mailboxPath';
import type { GatewayConfig } from '../platform/config';
import { HttpProblem } from '../platform/problems/httpProblem';
import { internalProblem } from '../platform/problems/internalProblem';
import { MESSAGE_GRAPH_CASES } from './messageProblems';
import { requireReadableMailbox } from './readPolicy';

/** What the message API needs. */
export interface MessageApiDependencies {
  config: GatewayConfig;
  credential: Pick<AppCredential, 'explainGraphToken'>;
  /** The Graph client of the HTTP routes (it waits out throttling within GRAPH_MAX_WAIT_SECONDS). */
  graph: Client;
}

/** One route's work, given the checked mailbox. */
export type MessageRoute = (
  mailbox: string,
  request: HttpRequest,
  context: InvocationContext,
  deps: MessageApiDependencies,
) => Promise<HttpResponseInit>;

/** The HTTP handler running `route` for `operation` (named in log lines). */
export function messageHandler(
  operation: string,
  route: MessageRoute,
): (request: HttpRequest, context: InvocationContext, deps: MessageApiDependencies) => Promise<HttpResponseInit> {
  return async (request, context, deps) => {
    try {
      const mailbox = parseMailboxPath(request.params.mailbox ?? '');
      requireReadableMailbox(deps.config, mailbox);
      return await route(mailbox, request, context, deps);
    } catch (err) {
      if (err instanceof HttpProblem) return err.toResponse();
      if (err instanceof GraphError) {
        const failure = GraphFailure.of(err);
        const mapped = graphFailureProblem(failure, MESSAGE_GRAPH_CASES);
        context.warn(`${operation}: Graph answered ${failure.status} ${failure.code ?? ''} (${mapped.slug})`);
        return mapped.toResponse();
      }
      return internalProblem(context, err, { operation }).toResponse();
    }
  };
}

/** A JSON answer. */
export function jsonAnswer(status: number, body: unknown): HttpResponseInit {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}
