/**
 * Route declarations and path matching for the paths below `/v1.0`. Features add routes; the pipeline applies
 * authentication, permissions, mailbox resolution and throttling from what each route declares, so handlers only
 * implement the resource's behaviour.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { TenantUser } from '../tenant';
import type { MailboxStore } from './mailboxStore';
import type { EmulatedRequest, FinishedResponse, GraphResponse } from './graphResponse';

/** HTTP methods routes can declare. */
export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

/** What a route handler gets. */
export interface GraphRequestContext {
  readonly request: EmulatedRequest;
  /** Upper-case method. */
  readonly method: string;
  /** The full request URL against the emulator's origin. */
  readonly url: URL;
  /** Decoded path segments below `/v1.0` with `name('key')` already split into `name/key`. */
  readonly segments: readonly string[];
  /** Values of the pattern's `{name}` segments, decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The request body (already capped by the route's `maxBodyBytes`). */
  readonly body: Buffer;
  /** The token's app id; undefined only on anonymous routes. */
  readonly appId: string | undefined;
  /** The token's application permissions. */
  readonly roles: ReadonlySet<string>;
  /** The user named by `{user}`; throws on routes without that segment (an emulator bug, not a client error). */
  readonly user: TenantUser;
  /** The mailbox of {@link user}; throws like `user`. */
  readonly mailbox: MailboxStore;
  /** `https://127.0.0.1:PORT/v1.0`, for links the response hands out (`@odata.nextLink`, upload URLs). */
  readonly baseUrl: string;
  /** A header's value (first one when repeated). */
  header(name: string): string | undefined;
  /** The body parsed as JSON; answers 400 BadRequest when it is not. */
  readJson(): unknown;
  /** Builds a JSON response. */
  json(status: number, value: unknown, headers?: Record<string, string>): GraphResponse;
  /** Builds a Graph error response. */
  error(status: number, code: string, message: string, headers?: Record<string, string>): GraphResponse;
  /** Builds a response without a body. */
  empty(status: number, headers?: Record<string, string>): GraphResponse;
  /** Runs another request through the whole pipeline (auth, throttling, faults), as `$batch` items are. */
  dispatch(request: EmulatedRequest): Promise<FinishedResponse>;
}

/** A route handler. It may also throw a `GraphError`. */
export type RouteHandler = (context: GraphRequestContext) => GraphResponse | Promise<GraphResponse>;

/** A route below `/v1.0`. */
export interface GraphRoute {
  method: HttpMethod;
  /** Pattern below `/v1.0`, e.g. `/users/{user}/messages/{id}`; fixed segments match case-insensitively. */
  path: string;
  /** Application permissions of which the token needs at least one; empty means any valid token will do. */
  roles: readonly string[];
  /**
   * True for Exchange mailbox APIs: `{user}` must be a mailbox (ErrorInvalidUser, MailboxNotEnabledForRESTAPI),
   * a missing permission is ErrorAccessDenied, and requests count against the (app, mailbox) throttling limits.
   * False for directory APIs: an unknown `{user}` is Request_ResourceNotFound and a missing permission is
   * Authorization_RequestDenied.
   */
  mailbox: boolean;
  /** True for pre-authenticated URLs (upload sessions) that must be called without a token. */
  anonymous?: boolean;
  /**
   * OData system query options the route implements (e.g. `$select`). Any other `$` option fails loudly with 501,
   * so a product relying on something the emulator ignores finds out instead of getting unfiltered data.
   */
  queryOptions?: readonly string[];
  /** Largest body accepted (default 4 MB, about Graph's JSON request limit); larger answers 413. */
  maxBodyBytes?: number;
  /** Overrides the 403 error for a token that lacks every one of {@link roles}. */
  forbidden?: { code: string; message: string };
  handler: RouteHandler;
}

type PatternSegment = { literal: string } | { param: string };

interface CompiledRoute {
  def: GraphRoute;
  pattern: PatternSegment[];
}

/** Result of {@link RouteTable.match}. */
export type RouteMatch =
  | { kind: 'found'; route: GraphRoute; params: Record<string, string> }
  /** The path exists but not for this method. */
  | { kind: 'method'; allowed: string[] }
  /** No route has this path; `segment` is the first one that matched nothing, for Graph's error message. */
  | { kind: 'none'; segment: string };

/** The routes registered below `/v1.0`. */
export class RouteTable {
  private readonly routes: CompiledRoute[] = [];

  /** Adds a route; throws when the same method and pattern is already registered. */
  add(def: GraphRoute): void {
    const pattern = compile(def.path);
    const key = (p: PatternSegment[]) => p.map((s) => ('literal' in s ? s.literal : '{}')).join('/');
    if (this.routes.some((r) => r.def.method === def.method && key(r.pattern) === key(pattern))) {
      throw new Error(`route ${def.method} ${def.path} is already registered`);
    }
    this.routes.push({ def, pattern });
  }

  /** Finds the route for `method` and decoded `segments`, preferring fixed segments over parameters. */
  match(method: string, segments: readonly string[]): RouteMatch {
    const candidates = this.routes.filter((r) => fits(r.pattern, segments));
    if (candidates.length === 0) return { kind: 'none', segment: this.firstUnmatched(segments) };
    const sameMethod = candidates.filter((r) => r.def.method === method);
    if (sameMethod.length === 0) {
      return { kind: 'method', allowed: [...new Set(candidates.map((r) => r.def.method))] };
    }
    const best = sameMethod.reduce((a, b) => (moreSpecific(b.pattern, a.pattern) ? b : a));
    const params: Record<string, string> = {};
    best.pattern.forEach((s, i) => {
      if ('param' in s) params[s.param] = segments[i];
    });
    return { kind: 'found', route: best.def, params };
  }

  private firstUnmatched(segments: readonly string[]): string {
    let longest = 0;
    for (const { pattern } of this.routes) {
      let n = 0;
      while (n < segments.length && n < pattern.length && segmentFits(pattern[n], segments[n])) n++;
      longest = Math.max(longest, n);
    }
    // A path that is a prefix of a route (e.g. a collection the emulator lacks) names its last segment.
    return segments[Math.min(longest, segments.length - 1)] ?? '';
  }
}

function compile(path: string): PatternSegment[] {
  return path
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      const param = /^\{(\w+)\}$/.exec(s);
      return param ? { param: param[1] } : { literal: s.toLowerCase() };
    });
}

function segmentFits(pattern: PatternSegment, segment: string): boolean {
  return 'literal' in pattern ? pattern.literal === segment.toLowerCase() : segment !== '';
}

function fits(pattern: PatternSegment[], segments: readonly string[]): boolean {
  return pattern.length === segments.length && pattern.every((p, i) => segmentFits(p, segments[i]));
}

/** True when `a` has a fixed segment where `b` first has a parameter (`messages/delta` beats `messages/{id}`). */
function moreSpecific(a: PatternSegment[], b: PatternSegment[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const aLiteral = 'literal' in a[i];
    const bLiteral = 'literal' in b[i];
    if (aLiteral !== bLiteral) return aLiteral;
  }
  return false;
}

/**
 * Splits a raw path below the version segment into decoded segments. OData key syntax `mailFolders('inbox')` becomes
 * `mailFolders/inbox` (with `''` unescaped to `'`), so routes need only the slash form. Returns undefined when a
 * segment's percent-encoding is invalid.
 */
export function splitPath(rawPath: string): string[] | undefined {
  const raw = rawPath.split('/');
  if (raw[0] === '') raw.shift();
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  const segments: string[] = [];
  for (const part of raw) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return undefined;
    }
    const key = /^([^(]+)\('(.*)'\)$/.exec(decoded);
    if (key) segments.push(key[1], key[2].replace(/''/g, "'"));
    else segments.push(decoded);
  }
  return segments;
}
