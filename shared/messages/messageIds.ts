/**
 * Message and attachment ids named in a URL path. Graph's ids are base64 (Exchange's entry ids, URL-safe or not, with
 * `=` padding); anything outside that alphabet or longer than any id Graph hands out is refused with a 400 before
 * Graph is called, and what passes is percent-encoded into the Graph path, so a path segment can never add a
 * segment, a query or a fragment to the Graph request.
 */
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';

/** Longest id accepted: Exchange's message ids are about 152 characters and attachment ids about 200. */
export const MAX_GRAPH_ID_LENGTH = 512;

const GRAPH_ID = /^[A-Za-z0-9+/_=-]+$/;

/** What an id names, for the problem's wording and its field. */
export type IdKind = 'message' | 'attachment';

/** `value` when it is shaped like a Graph id; throws 400 `invalid-message-id` otherwise. */
export function parseGraphId(value: string | undefined, kind: IdKind): string {
  const field = kind === 'message' ? 'id' : 'attachmentId';
  const reason =
    value === undefined || value === ''
      ? 'is missing'
      : value.length > MAX_GRAPH_ID_LENGTH
        ? `is ${value.length} characters long; Graph's ids are at most ${MAX_GRAPH_ID_LENGTH}`
        : GRAPH_ID.test(value)
          ? undefined
          : "has characters outside Graph's id alphabet (letters, digits, +, /, _, - and = padding)";
  if (reason === undefined) return value as string;
  throw new HttpProblem(
    problem(400, 'invalid-message-id', `Not a ${kind} id`, `The ${kind} id in the path ${reason}.`, {
      errors: [{ field, message: reason }],
    }),
  );
}

/** The id as one Graph path segment. */
export function graphIdSegment(id: string): string {
  return encodeURIComponent(id);
}
