/**
 * `$filter` and `$orderby` on message listings, the subset a product uses: `receivedDateTime` compared with a
 * date-time, `isRead eq|ne true|false` and `internetMessageId eq '...'`, joined by `and`; ordering by
 * `receivedDateTime`. Anything else fails loudly with 501 (a product relying on it finds out), and Exchange's
 * InefficientFilter rule is enforced.
 *
 * Doc: api-reference/v1.0/api/user-list-messages.md, "Using filter and orderby in the same query": properties in
 * `$orderby` must also appear in `$filter`, in the same order and before any other property, else 400
 * InefficientFilter ("The restriction or sort order is too complex for this operation.", the message Microsoft's
 * "Update to filtering and sorting REST API" post quotes).
 */
import { GraphError } from './graphResponse';
import type { StoredMessage } from './mailboxStore';

/** One `$filter` comparison. */
type Clause =
  | { property: 'receivedDateTime'; op: 'eq' | 'ne' | 'ge' | 'gt' | 'le' | 'lt'; value: number }
  | { property: 'isRead'; op: 'eq' | 'ne'; value: boolean }
  | { property: 'internetMessageId'; op: 'eq'; value: string };

/** One `$orderby` key. */
interface OrderKey {
  property: 'receivedDateTime';
  descending: boolean;
}

/** The parsed `$filter` and `$orderby` of a listing. */
export interface MessageQuery {
  clauses: Clause[];
  order: OrderKey[];
}

const INEFFICIENT_FILTER_MESSAGE = 'The restriction or sort order is too complex for this operation.';

/** Reads `$filter` and `$orderby`; throws Graph's errors for what Graph refuses, 501 for what the emulator lacks. */
export function readMessageQuery(query: URLSearchParams): MessageQuery {
  const filter = query.get('$filter');
  const orderby = query.get('$orderby');
  const clauses = filter === null ? [] : parseFilter(filter);
  const order = orderby === null ? [] : parseOrderBy(orderby);
  if (clauses.length > 0 && order.length > 0) {
    // Each $orderby property must lead $filter, in the same order (user-list-messages.md).
    order.forEach((key, i) => {
      if (clauses[i]?.property !== key.property) {
        throw new GraphError(400, 'InefficientFilter', INEFFICIENT_FILTER_MESSAGE);
      }
    });
  }
  return { clauses, order };
}

/** The messages (newest first, as the store lists them) that pass the filter, in the requested order. */
export function applyMessageQuery(messages: StoredMessage[], query: MessageQuery): StoredMessage[] {
  const kept = messages.filter((m) => query.clauses.every((c) => matches(m, c)));
  const [key] = query.order;
  if (!key) return kept;
  // The store's order is newest first with ties by arrival; ascending is its exact reverse, so ties stay stable.
  return key.descending ? kept : [...kept].reverse();
}

function matches(message: StoredMessage, clause: Clause): boolean {
  switch (clause.property) {
    case 'receivedDateTime': {
      const t = Date.parse(message.receivedDateTime);
      const v = clause.value;
      return { eq: t === v, ne: t !== v, ge: t >= v, gt: t > v, le: t <= v, lt: t < v }[clause.op];
    }
    case 'isRead':
      return clause.op === 'eq' ? Boolean(message.isRead) === clause.value : Boolean(message.isRead) !== clause.value;
    case 'internetMessageId':
      return message.internetMessageId === clause.value;
  }
}

function notImplemented(what: string): GraphError {
  return new GraphError(
    501,
    'NotImplemented',
    `The Graph emulator implements $filter on messages only for receivedDateTime, isRead and internetMessageId joined by 'and', and $orderby only on receivedDateTime, not '${what}'.`,
  );
}

function invalidFilter(): GraphError {
  return new GraphError(400, 'BadRequest', 'Invalid filter clause');
}

/** Splits on ` and ` outside string literals. */
function splitAnd(filter: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < filter.length; i++) {
    const ch = filter[i];
    if (ch === "'") quoted = !quoted;
    if (!quoted && /^\s+and\s+/i.test(filter.slice(i)) && /\s/.test(ch)) {
      const skip = /^\s+and\s+/i.exec(filter.slice(i))![0].length;
      parts.push(current);
      current = '';
      i += skip - 1;
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

function parseFilter(filter: string): Clause[] {
  if (filter.trim() === '') throw invalidFilter();
  return splitAnd(filter).map((part) => {
    const match = /^(\w+)\s+(eq|ne|ge|gt|le|lt)\s+(.+)$/i.exec(part);
    if (!match) throw notImplemented(part);
    const [, rawProperty, rawOp, literal] = match;
    const property = rawProperty.toLowerCase();
    const op = rawOp.toLowerCase() as 'eq' | 'ne' | 'ge' | 'gt' | 'le' | 'lt';
    if (property === 'receiveddatetime') {
      // Edm.DateTimeOffset literals are unquoted; a quoted one is a type mismatch, which Graph refuses.
      if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(literal)) throw invalidFilter();
      const value = Date.parse(literal);
      if (Number.isNaN(value)) throw invalidFilter();
      return { property: 'receivedDateTime', op, value };
    }
    if (property === 'isread') {
      if (op !== 'eq' && op !== 'ne') throw notImplemented(part);
      if (!/^(true|false)$/i.test(literal)) throw invalidFilter();
      return { property: 'isRead', op, value: literal.toLowerCase() === 'true' };
    }
    if (property === 'internetmessageid') {
      if (op !== 'eq') throw notImplemented(part);
      const quoted = /^'((?:[^']|'')*)'$/.exec(literal);
      // An unquoted literal is a syntax error Graph refuses; the emulator has long answered it with 501, which fails
      // just as loudly.
      if (!quoted) throw notImplemented(part);
      return { property: 'internetMessageId', op, value: quoted[1].replace(/''/g, "'") };
    }
    throw notImplemented(part);
  });
}

function parseOrderBy(orderby: string): OrderKey[] {
  const keys = orderby.split(',').map((part) => {
    const match = /^\s*(\w+)(?:\s+(asc|desc))?\s*$/i.exec(part);
    if (!match || match[1].toLowerCase() !== 'receiveddatetime') throw notImplemented(orderby);
    return { property: 'receivedDateTime' as const, descending: (match[2] ?? 'asc').toLowerCase() === 'desc' };
  });
  if (keys.length > 1) throw notImplemented(orderby);
  return keys;
}
