/**
 * The message API's own bad-input problem: a query parameter or a body field it cannot use. One slug for all of them
 * (`invalid-message-request`), with `errors` naming each field, so that a caller fixes its request from the answer.
 */
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';

/** One refused field: its name (`top`, `flag`, ...) and what is wrong with it. */
export interface FieldError {
  field: string;
  message: string;
}

/** The 400 for `errors`; Graph was not called. */
export function invalidMessageRequest(errors: readonly FieldError[]): HttpProblem {
  return new HttpProblem(
    problem(
      400,
      'invalid-message-request',
      'The request is invalid',
      errors.map((e) => `${e.field} ${e.message}`).join('; '),
      { errors: [...errors] },
    ),
  );
}
