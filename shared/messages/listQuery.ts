/**
 * The listing's parameters (`folder`, `since`, `unread`, `top`) as the query string gives them, checked, and the
 * Graph query they become. Graph refuses a `$orderby` whose property does not lead `$filter` (400 InefficientFilter),
 * so the filter always starts with `receivedDateTime`, from `since` or from the beginning of time.
 */
import { invalidMessageRequest, type FieldError } from './messageRequest';

/** Messages per page when `top` is not given. */
export const DEFAULT_TOP = 50;
/** Most messages per page (Graph's own page limit for messages is larger; a gateway page stays small). */
export const MAX_TOP = 100;

/** What a listing shows, as the caller asked for it (and as a cursor carries it). */
export interface ListParams {
  /** A well-known folder name (`inbox`, `archive`, ...) or a folder id. */
  folder: string;
  /** Only mail received at or after this instant (ISO 8601, UTC). */
  since?: string;
  /** Only unread mail. */
  unread: boolean;
  top: number;
}

/** A folder name or id: Graph's id alphabet (well-known names are letters), at most 512 characters. */
export const FOLDER = /^[A-Za-z0-9+/_=-]{1,512}$/;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/;
/** The earliest instant Graph's filter takes, for "since the beginning". */
const BEGINNING = '1900-01-01T00:00:00Z';

/** The listing parameters of `query`; throws 400 `invalid-message-request` naming every bad one. */
export function parseListParams(query: URLSearchParams): ListParams {
  const errors: FieldError[] = [];
  const folder = query.get('folder') ?? 'inbox';
  if (!FOLDER.test(folder))
    errors.push({ field: 'folder', message: 'must be a well-known folder name or a folder id' });
  const since = parseSince(query.get('since'), errors);
  const unread = parseBoolean(query.get('unread'), 'unread', errors);
  const top = parseTop(query.get('top'), errors);
  if (errors.length > 0) throw invalidMessageRequest(errors);
  return { folder, ...(since === undefined ? {} : { since }), unread, top };
}

/** Whether `params` could have come from {@link parseListParams} (a decoded cursor is held to the same rules). */
export function validListParams(params: ListParams): boolean {
  return (
    FOLDER.test(params.folder) &&
    (params.since === undefined || (ISO_INSTANT.test(params.since) && !Number.isNaN(Date.parse(params.since)))) &&
    Number.isInteger(params.top) &&
    params.top >= 1 &&
    params.top <= MAX_TOP
  );
}

/** Graph's `$filter` and `$orderby` for `params`: newest first. */
export function graphListQuery(params: ListParams): { $filter: string; $orderby: string; $top: number } {
  const clauses = [`receivedDateTime ge ${params.since ?? BEGINNING}`];
  if (params.unread) clauses.push('isRead eq false');
  return { $filter: clauses.join(' and '), $orderby: 'receivedDateTime desc', $top: params.top };
}

function parseSince(value: string | null, errors: FieldError[]): string | undefined {
  if (value === null) return undefined;
  const time = Date.parse(value);
  if (!ISO_INSTANT.test(value) || Number.isNaN(time)) {
    errors.push({ field: 'since', message: 'must be an ISO 8601 date-time with a zone, e.g. 2026-03-01T09:00:00Z' });
    return undefined;
  }
  // Graph's filter literal: UTC, whole seconds unless the caller gave fractions.
  return new Date(time).toISOString().replace('.000Z', 'Z');
}

function parseBoolean(value: string | null, field: string, errors: FieldError[]): boolean {
  if (value === null || value === 'false') return false;
  if (value === 'true') return true;
  errors.push({ field, message: 'must be true or false' });
  return false;
}

function parseTop(value: string | null, errors: FieldError[]): number {
  if (value === null) return DEFAULT_TOP;
  const top = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
  if (top >= 1 && top <= MAX_TOP) return top;
  errors.push({ field: 'top', message: `must be a whole number from 1 to ${MAX_TOP}` });
  return DEFAULT_TOP;
}
