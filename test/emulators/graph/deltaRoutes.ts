/**
 * `GET /users/{user}/mailFolders/{folder}/messages/delta` (api-reference/v1.0/api/message-delta.md,
 * concepts/delta-query-messages.md): a first round pages through the folder with `@odata.nextLink` ($skiptoken) and
 * ends with an `@odata.deltaLink` ($deltatoken); a deltaLink returns what was created, changed or removed since.
 *
 * Tokens are opaque handles to state kept here: the folder's messages and change keys when the round started, the
 * original `$select`/`$filter`/`changeType`, and the page position. {@link DeltaTokens.invalidate} makes every token
 * of a mailbox fail as Graph does when it loses sync state.
 */
import { randomBytes } from 'node:crypto';
import { GraphError } from './graphResponse';
import { preferredBodyType } from './mailBody';
import type { StoredMessage } from './mailboxStore';
import { MAIL_READ_ROLES, MESSAGE_TYPE, messageJson, resolveFolder } from './mailReadRoutes';
import { selectedProperties } from './odataQuery';
import type { GraphRequestContext, GraphRoute } from './router';

/** Page size without `Prefer: odata.maxpagesize` (Exchange's default page of 10). */
export const DEFAULT_DELTA_PAGE_SIZE = 10;
/** Largest `odata.maxpagesize` honoured; larger values are capped, as preferences are hints. */
export const MAX_DELTA_PAGE_SIZE = 1000;

interface QueryState {
  select: string | null;
  filter: { op: 'ge' | 'gt'; at: number; raw: string } | null;
  /** The `changeType` custom query option (created, updated or deleted), when given. */
  changeType: string | null;
}

/** One entry of a round: a message to render in its current state, or one that left the folder. */
interface RoundEntry {
  id: string;
  removed: boolean;
}

interface TokenState {
  mailboxId: string;
  folderId: string;
  generation: number;
  query: QueryState;
  /** The folder's matching messages (id → changeKey) when this round started: the baseline of the next round. */
  baseline: Map<string, string>;
  /** Skip tokens only: the round's entries and where the next page starts. */
  entries?: RoundEntry[];
  offset?: number;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** Sync state behind delta tokens. */
export class DeltaTokens {
  private readonly tokens = new Map<string, TokenState>();
  private readonly generations = new Map<string, number>();

  /** Makes every token issued so far for the mailbox (user id) fail with Graph's sync-state error. */
  invalidate(mailboxId: string): void {
    this.generations.set(mailboxId, this.generation(mailboxId) + 1);
    for (const [token, state] of this.tokens) if (state.mailboxId === mailboxId) this.tokens.delete(token);
  }

  generation(mailboxId: string): number {
    return this.generations.get(mailboxId) ?? 0;
  }

  issue(state: TokenState): string {
    const token = randomBytes(32).toString('base64url');
    this.tokens.set(token, state);
    return token;
  }

  /**
   * The state behind `token` for this mailbox and folder: 400 when the token is not one Graph could have issued,
   * 410 when its sync state is gone (invalidated, or issued for another folder).
   */
  resolve(token: string, mailboxId: string, folderId: string): TokenState {
    if (!TOKEN_SHAPE.test(token)) {
      // Exchange's name for unreadable sync state; the exact Graph text is not documented.
      throw new GraphError(
        400,
        'ErrorInvalidSyncStateData',
        'Synchronization state data is corrupt or otherwise invalid.',
      );
    }
    const state = this.tokens.get(token);
    if (
      !state ||
      state.mailboxId !== mailboxId ||
      state.folderId !== folderId ||
      state.generation !== this.generation(mailboxId)
    ) {
      // concepts/delta-query-overview.md (synchronization reset): 410 Gone, syncStateNotFound / resyncRequired, and
      // the client starts over with a full sync.
      throw new GraphError(
        410,
        'syncStateNotFound',
        'The sync state generation is not found. The delta token is expired and data must be synchronized again.',
      );
    }
    return state;
  }
}

/** The messages delta route. */
export function deltaRoutes(tokens: DeltaTokens): GraphRoute[] {
  return [
    {
      method: 'GET',
      path: '/users/{user}/mailFolders/{folder}/messages/delta',
      roles: MAIL_READ_ROLES,
      mailbox: true,
      queryOptions: ['$select', '$filter', '$skiptoken', '$deltatoken'],
      handler: (ctx) => delta(ctx, tokens),
    },
  ];
}

function delta(ctx: GraphRequestContext, tokens: DeltaTokens) {
  const folder = resolveFolder(ctx.mailbox, ctx.params.folder);
  const skip = ctx.query.get('$skiptoken');
  const deltaToken = ctx.query.get('$deltatoken');
  if (skip !== null && deltaToken !== null) {
    throw new GraphError(400, 'BadRequest', 'A request can carry $skiptoken or $deltatoken, not both.');
  }
  const pageSize = readPageSize(ctx.header('prefer'));
  let state: TokenState;
  if (skip !== null) {
    state = tokens.resolve(skip, ctx.user.id, folder.id);
    if (!state.entries)
      throw new GraphError(
        400,
        'ErrorInvalidSyncStateData',
        'Synchronization state data is corrupt or otherwise invalid.',
      );
  } else {
    const query = deltaToken !== null ? tokens.resolve(deltaToken, ctx.user.id, folder.id).query : readQuery(ctx);
    const previous = deltaToken !== null ? tokens.resolve(deltaToken, ctx.user.id, folder.id).baseline : undefined;
    const current = matching(ctx.mailbox.listMessages(folder.id), query);
    const baseline = new Map(current.map((m) => [m.id, m.changeKey]));
    state = {
      mailboxId: ctx.user.id,
      folderId: folder.id,
      generation: tokens.generation(ctx.user.id),
      query,
      baseline,
      entries: roundEntries(current, previous, query.changeType),
      offset: 0,
    };
  }

  const entries = state.entries ?? [];
  const offset = state.offset ?? 0;
  const page = entries.slice(offset, offset + pageSize);
  const properties = state.query.select === null ? [...MESSAGE_TYPE.defaults] : selectedFrom(state.query.select);
  const value = page.map((entry) => {
    const message = ctx.mailbox.getMessage(entry.id);
    if (entry.removed || !message || message.parentFolderId !== folder.id) {
      return { '@odata.type': '#microsoft.graph.message', id: entry.id, '@removed': { reason: 'deleted' } };
    }
    return {
      '@odata.type': '#microsoft.graph.message',
      ...messageJson(message, properties, ctx.roles, preferredBodyType(ctx.header('prefer'))),
    };
  });
  const link = `${ctx.baseUrl}/users/${ctx.user.id}/mailFolders('${folder.id}')/messages/delta`;
  const more = offset + pageSize < entries.length;
  const next = more
    ? { '@odata.nextLink': `${link}?$skiptoken=${tokens.issue({ ...state, offset: offset + pageSize })}` }
    : {
        '@odata.deltaLink': `${link}?$deltatoken=${tokens.issue({
          mailboxId: state.mailboxId,
          folderId: state.folderId,
          generation: state.generation,
          query: state.query,
          baseline: state.baseline,
        })}`,
      };
  const headers: Record<string, string> = {};
  if (ctx.header('prefer') !== undefined && /odata\.maxpagesize/i.test(ctx.header('prefer') ?? '')) {
    headers['preference-applied'] = `odata.maxpagesize=${pageSize}`;
  }
  return ctx.json(200, { '@odata.context': `${ctx.baseUrl}/$metadata#Collection(message)`, ...next, value }, headers);
}

/** Entries of a round: everything matching on a first round; otherwise what differs from the previous baseline. */
function roundEntries(
  current: StoredMessage[],
  previous: Map<string, string> | undefined,
  changeType: string | null,
): RoundEntry[] {
  if (!previous) return current.map((m) => ({ id: m.id, removed: false }));
  const entries: RoundEntry[] = [];
  const wants = (type: string) => changeType === null || changeType === type;
  for (const message of current) {
    const before = previous.get(message.id);
    if (before === undefined ? wants('created') : before !== message.changeKey && wants('updated')) {
      entries.push({ id: message.id, removed: false });
    }
  }
  const present = new Set(current.map((m) => m.id));
  if (wants('deleted')) {
    for (const id of previous.keys()) if (!present.has(id)) entries.push({ id, removed: true });
  }
  return entries;
}

function readQuery(ctx: GraphRequestContext): QueryState {
  const select = ctx.query.get('$select');
  if (select !== null) selectedProperties(ctx.query, MESSAGE_TYPE); // validates now, as Graph does
  const rawFilter = ctx.query.get('$filter');
  let filter: QueryState['filter'] = null;
  if (rawFilter !== null) {
    // concepts/delta-query-messages.md: only receivedDateTime ge|gt {value} is supported.
    const match = /^\s*receivedDateTime\s+(ge|gt)\s+(\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))\s*$/i.exec(
      rawFilter,
    );
    const at = match ? Date.parse(match[2]) : NaN;
    if (!match || Number.isNaN(at)) {
      throw new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.');
    }
    filter = { op: match[1].toLowerCase() as 'ge' | 'gt', at, raw: rawFilter };
  }
  const changeType = ctx.query.get('changeType');
  if (changeType !== null && !['created', 'updated', 'deleted'].includes(changeType)) {
    throw new GraphError(
      400,
      'BadRequest',
      `'${changeType}' is not a valid changeType: use created, updated or deleted.`,
    );
  }
  return { select, filter, changeType };
}

function selectedFrom(select: string): string[] {
  return selectedProperties(new URLSearchParams({ $select: select }), MESSAGE_TYPE);
}

function matching(messages: StoredMessage[], query: QueryState): StoredMessage[] {
  const filter = query.filter;
  if (!filter) return messages;
  return messages.filter((m) => {
    const received = Date.parse(m.receivedDateTime);
    return filter.op === 'ge' ? received >= filter.at : received > filter.at;
  });
}

/** `Prefer: odata.maxpagesize=N` (other preferences ignored); default {@link DEFAULT_DELTA_PAGE_SIZE}. */
function readPageSize(prefer: string | undefined): number {
  const match = /odata\.maxpagesize\s*=\s*"?(\d+)"?/i.exec(prefer ?? '');
  if (!match) return DEFAULT_DELTA_PAGE_SIZE;
  const size = Number(match[1]);
  return size < 1 ? DEFAULT_DELTA_PAGE_SIZE : Math.min(size, MAX_DELTA_PAGE_SIZE);
}
