/**
 * The listing's paging cursor. Graph pages with an `@odata.nextLink` URL; handing that URL to a caller and following
 * whatever comes back would let a caller point the gateway (with its token) at any host, path or mailbox. So the
 * cursor never holds a URL: it holds the listing's own parameters and mailbox plus the one value of Graph's link that
 * moves to the next page (`$skip`, or `$skiptoken`), and the gateway rebuilds the Graph request from them itself,
 * always on its configured Graph root and the path's mailbox. A cursor that does not decode to exactly that, or names
 * another mailbox, is a 400 before Graph is called.
 */
import { z } from 'zod';
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import { MAX_TOP, validListParams, type ListParams } from './listQuery';

/** Where the next page starts, as Graph's nextLink said. */
export type PageStart = { skip: number } | { skiptoken: string };

/** What a cursor carries. */
export interface CursorState {
  mailbox: string;
  params: ListParams;
  start: PageStart;
}

const PREFIX = 'c1.';
/** Longest cursor accepted (a skiptoken is opaque but short; this bounds the work a garbage cursor can cause). */
export const MAX_CURSOR_LENGTH = 4096;
/** Graph's skiptokens: URL-safe text without anything that could end the query value. */
const SKIPTOKEN = /^[A-Za-z0-9+/=_.~%-]{1,2048}$/;

const cursorSchema = z
  .object({
    m: z.string().min(3).max(254),
    f: z.string(),
    s: z.string().optional(),
    u: z.boolean(),
    t: z.int().min(1).max(MAX_TOP),
    k: z.union([
      z.object({ skip: z.int().min(1).max(1_000_000_000) }).strict(),
      z.object({ skiptoken: z.string().regex(SKIPTOKEN) }).strict(),
    ]),
  })
  .strict();

/** The opaque cursor for `state`. */
export function encodeCursor(state: CursorState): string {
  const { folder, since, unread, top } = state.params;
  const json = {
    m: state.mailbox,
    f: folder,
    ...(since === undefined ? {} : { s: since }),
    u: unread,
    t: top,
    k: state.start,
  };
  return PREFIX + Buffer.from(JSON.stringify(json), 'utf8').toString('base64url');
}

/** The state `cursor` carries for a listing of `mailbox`; throws 400 `invalid-cursor` for anything else. */
export function decodeCursor(cursor: string, mailbox: string): CursorState {
  const parsed = parse(cursor);
  if (!parsed) throw invalidCursor('It is not a cursor this gateway handed out; start the listing again without one.');
  const params: ListParams = {
    folder: parsed.f,
    ...(parsed.s === undefined ? {} : { since: parsed.s }),
    unread: parsed.u,
    top: parsed.t,
  };
  if (!validListParams(params)) throw invalidCursor('Its listing parameters are not valid; start the listing again.');
  if (parsed.m !== mailbox) throw invalidCursor('It belongs to the listing of another mailbox.');
  return { mailbox, params, start: parsed.k };
}

/**
 * Where Graph's `nextLink` says the next page starts, or undefined when it says nothing the gateway can carry (then
 * the answer has no next cursor rather than one the gateway could not follow).
 */
export function pageStartOf(nextLink: string | undefined): PageStart | undefined {
  if (!nextLink) return undefined;
  let url: URL;
  try {
    url = new URL(nextLink);
  } catch {
    return undefined;
  }
  const skip = url.searchParams.get('$skip');
  if (skip !== null && /^\d{1,10}$/.test(skip) && Number(skip) >= 1) return { skip: Number(skip) };
  const token = url.searchParams.get('$skiptoken');
  if (token !== null && SKIPTOKEN.test(token)) return { skiptoken: token };
  return undefined;
}

function parse(cursor: string): z.infer<typeof cursorSchema> | undefined {
  if (cursor.length > MAX_CURSOR_LENGTH || !cursor.startsWith(PREFIX)) return undefined;
  const body = cursor.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) return undefined;
  try {
    const result = cursorSchema.safeParse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

function invalidCursor(reason: string): HttpProblem {
  return new HttpProblem(
    problem(400, 'invalid-cursor', 'Not a valid cursor', `The cursor was refused: ${reason}`, {
      errors: [{ field: 'cursor', message: reason }],
    }),
  );
}
