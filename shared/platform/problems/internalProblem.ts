/**
 * The answer to a failure nobody foresaw (a bug): `500 internal` with an incident id, and the error with the same id
 * in the log, so that the caller learns nothing of the gateway's insides and the operator finds the stack from the id.
 */
import { randomUUID } from 'node:crypto';
import type { InvocationContext } from '@azure/functions';
import { HttpProblem } from './httpProblem';
import { describeForLog } from '../logSafe';
import { problem } from './problem';

/** How the incident is told: in the log line and in the caller's detail. */
export interface IncidentWording {
  /** What failed, first in the log line: `send`, `mailbox API`. */
  operation: string;
  /** Whom it concerns, logged as `for <about>`; already safe to log. */
  about?: string;
  /** What did not happen, ending the caller's detail (e.g. "Nothing was sent."). */
  consequence?: string;
}

/** Logs `err` under a new incident id as an error of `context`, and returns the `500 internal` naming that id. */
export function internalProblem(context: InvocationContext, err: unknown, wording: IncidentWording): HttpProblem {
  const incident = randomUUID();
  const about = wording.about === undefined ? '' : ` for ${wording.about}`;
  context.error(`${wording.operation} failed unexpectedly (incident ${incident})${about}: ${describeForLog(err)}`);
  const consequence = wording.consequence === undefined ? '' : ` ${wording.consequence}`;
  return new HttpProblem(
    problem(
      500,
      'internal',
      'The gateway failed',
      `An unexpected error occurred; incident ${incident} is in the gateway's logs.${consequence}`,
      { incident },
    ),
  );
}
