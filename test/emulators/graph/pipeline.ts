/**
 * The order in which Graph judges a request, as one function from request to response: version and route,
 * token, permissions, query options, user/mailbox, injected faults, (app, mailbox) throttling, latency, handler.
 * Every answer leaves with `request-id`, `client-request-id`, `Date` and `x-ms-ags-diagnostic`, and is logged.
 * It does not touch sockets, so `$batch` can run its items through the same rules.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { gzipSync } from 'node:zlib';
import { delay } from '../httpServer';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { TokenIssuer } from '../tokenIssuer';
import { authenticate, authorize, type Caller } from './auth';
import type { FaultInjector } from './faults';
import {
  emptyResponse,
  errorResponse,
  fromGraphError,
  GraphError,
  jsonResponse,
  renderErrorBody,
  type EmulatedRequest,
  type FinishedResponse,
  type GraphResponse,
} from './graphResponse';
import type { MailboxStore } from './mailboxStore';
import { assertQueryOptions } from './odataQuery';
import { loggableQuery, type SeenRequest } from './requestLog';
import { splitPath, type GraphRequestContext, type GraphRoute, type RouteTable } from './router';
import type { MailboxThrottle } from './throttle';
import { UPLOAD_METHODS, UPLOAD_THROTTLED_MESSAGE, type UploadBudget } from './uploadBudget';

/** Default cap on request bodies: Graph refuses JSON requests of more than about 4 MB. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** What the pipeline works with; the emulator owns all of it. */
export interface PipelineDeps {
  tenant: EmulatedTenant;
  issuer: TokenIssuer;
  audiences: readonly string[];
  latencyMs: { min: number; max: number };
  routes: RouteTable;
  throttle: MailboxThrottle;
  /** Request-body bytes per (app, mailbox); upload-session routes charge it themselves (they carry no token). */
  uploads: UploadBudget;
  faults: FaultInjector;
  log: SeenRequest[];
  mailboxOf: (user: TenantUser) => MailboxStore;
  /** The emulator's origin, e.g. `https://127.0.0.1:43123`. */
  origin: string;
}

// Real Graph names the serving front end; clients log it in support cases, so the shape matters more than values.
const AGS_DIAGNOSTIC = JSON.stringify({
  ServerInfo: { DataCenter: 'Emulator', Slice: 'E', Ring: '5', ScaleUnit: '000', RoleInstance: 'EMULATOR0001' },
});

/** Facts learned while judging a request, for the log. */
interface Facts {
  appId?: string;
  mailbox?: string;
  release?: () => void;
}

/** Runs requests through Graph's rules. */
export class GraphPipeline {
  constructor(private readonly deps: PipelineDeps) {}

  /**
   * Answers `request` and logs it (`batched` for an item of a `$batch`). Never throws: emulator bugs become 500
   * `EmulatorBug` answers.
   */
  async handle(request: EmulatedRequest, batched = false): Promise<FinishedResponse> {
    const startedAt = new Date();
    // Fractions of a millisecond: benchmarks subtract this from a caller's latency of a few milliseconds.
    const started = performance.now();
    const requestId = randomUUID();
    const clientRequestId = firstHeader(request.headers, 'client-request-id') || randomUUID();
    const method = request.method.toUpperCase();
    const url = new URL(request.url, this.deps.origin);
    const facts: Facts = {};
    let response: GraphResponse;
    try {
      response = await this.judge(method, url, request, facts);
    } catch (err) {
      response =
        err instanceof GraphError
          ? fromGraphError(err)
          : errorResponse(500, 'EmulatorBug', String(err instanceof Error ? err.stack : err));
    } finally {
      // Released before the bytes go out, so a client that sends its next request on receipt never finds its own
      // previous request still counted.
      facts.release?.();
    }
    const now = new Date();
    const finished = this.finish(response, { requestId, clientRequestId }, now);
    // Compressed when the client accepts gzip, as Graph answers (a `$batch`'s inner answers are compressed with it).
    if (!batched) compressIfAccepted(finished, firstHeader(request.headers, 'accept-encoding'));
    this.deps.log.push({
      method,
      path: url.pathname,
      query: loggableQuery(url),
      mailbox: facts.mailbox,
      appId: facts.appId,
      status: finished.status,
      errorCode: response.error?.code,
      clientRequestId,
      requestId,
      hadAuthorization: firstHeader(request.headers, 'authorization') !== undefined,
      startedAt,
      startedAtMs: performance.timeOrigin + started,
      durationMs: performance.now() - started,
      ...(batched ? { batched } : {}),
    });
    return finished;
  }

  private async judge(method: string, url: URL, request: EmulatedRequest, facts: Facts): Promise<GraphResponse> {
    const all = splitPath(url.pathname);
    if (!all) return errorResponse(400, 'BadRequest', 'Bad Request - Invalid URL');
    const version = all[0] ?? '';
    if (version.toLowerCase() !== 'v1.0') {
      return version.toLowerCase() === 'beta'
        ? errorResponse(501, 'NotImplemented', 'The Graph emulator implements only /v1.0.')
        : errorResponse(400, 'BadRequest', `Invalid version: ${version}`);
    }
    const segments = all.slice(1);
    const match = this.deps.routes.match(method, segments);

    let caller: Caller | undefined;
    if (match.kind !== 'found' || !match.route.anonymous) {
      const auth = authenticate(
        firstHeader(request.headers, 'authorization'),
        this.deps.issuer,
        this.deps.tenant,
        this.deps.audiences,
      );
      if (!auth.ok) return auth.response;
      caller = auth.caller;
      facts.appId = caller.appId;
    }
    if (match.kind === 'none') {
      return errorResponse(400, 'BadRequest', `Resource not found for the segment '${match.segment}'.`, {
        'x-emulator-note': 'no such route in the Graph emulator',
      });
    }
    if (match.kind === 'method') {
      return errorResponse(405, 'BadRequest', 'Specified HTTP method is not allowed for the request target.', {
        allow: match.allowed.join(', '),
      });
    }
    const { route, params } = match;
    if (caller) {
      const denied = authorize(caller, route);
      if (denied) return denied;
    }
    assertQueryOptions(url.searchParams, route.queryOptions ?? []);
    const maxBody = route.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (request.body.length > maxBody) {
      return errorResponse(413, 'RequestEntityTooLarge', `The request body exceeds ${maxBody} bytes.`);
    }

    let user: TenantUser | undefined;
    if (params.user !== undefined) {
      user = this.deps.tenant.findUser(params.user);
      if (!user) {
        return route.mailbox
          ? errorResponse(404, 'ErrorInvalidUser', `The requested user '${params.user}' is invalid.`)
          : errorResponse(
              404,
              'Request_ResourceNotFound',
              `Resource '${params.user}' does not exist or one of its queried reference-property objects are not present.`,
            );
      }
      facts.mailbox = user.id;
      if (route.mailbox && !user.restEnabled) {
        return errorResponse(
          404,
          'MailboxNotEnabledForRESTAPI',
          'The mailbox is either inactive, soft-deleted, or is hosted on-premise.',
        );
      }
    }

    const fault = this.deps.faults.take(
      { method, path: url.pathname, mailboxId: user?.id },
      (m) => this.deps.tenant.findUser(m)?.id,
    );
    if (fault) return fault;

    if (route.mailbox && user && caller) {
      const uploadBytes = UPLOAD_METHODS.has(method) ? request.body.length : 0;
      const upload = this.deps.uploads.check(caller.appId, user.id, uploadBytes);
      if (!upload.ok) {
        return errorResponse(429, 'ApplicationThrottled', UPLOAD_THROTTLED_MESSAGE, {
          'retry-after': String(upload.retryAfterSeconds),
        });
      }
      const admission = this.deps.throttle.acquire(caller.appId, user.id);
      if (!admission.ok) {
        const message =
          admission.limit === 'concurrency'
            ? 'Application is over its MailboxConcurrency limit.'
            : 'Application is over its MailboxRequestRate limit.';
        return errorResponse(429, 'ApplicationThrottled', message, {
          'retry-after': String(admission.retryAfterSeconds),
        });
      }
      facts.release = admission.release;
      this.deps.uploads.charge(caller.appId, user.id, uploadBytes);
    }

    const { min, max } = this.deps.latencyMs;
    await delay(min + Math.random() * Math.max(0, max - min));
    return route.handler(this.context(method, url, segments, params, request, route, caller, user));
  }

  private context(
    method: string,
    url: URL,
    segments: string[],
    params: Record<string, string>,
    request: EmulatedRequest,
    route: GraphRoute,
    caller: Caller | undefined,
    user: TenantUser | undefined,
  ): GraphRequestContext {
    const deps = this.deps;
    const requireUser = (): TenantUser => {
      if (!user) throw new Error(`route ${route.method} ${route.path} has no {user} segment`);
      return user;
    };
    return {
      request,
      method,
      url,
      segments,
      params,
      query: url.searchParams,
      headers: request.headers,
      body: request.body,
      appId: caller?.appId,
      roles: caller?.roles ?? new Set<string>(),
      get user() {
        return requireUser();
      },
      get mailbox() {
        return deps.mailboxOf(requireUser());
      },
      baseUrl: `${deps.origin}/v1.0`,
      header: (name) => firstHeader(request.headers, name),
      readJson: () => {
        try {
          return JSON.parse(request.body.toString('utf8')) as unknown;
        } catch {
          throw new GraphError(
            400,
            'BadRequest',
            'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
          );
        }
      },
      json: jsonResponse,
      error: errorResponse,
      empty: emptyResponse,
      dispatch: (inner) => this.handle(inner, true),
    };
  }

  private finish(
    response: GraphResponse,
    ids: { requestId: string; clientRequestId: string },
    now: Date,
  ): FinishedResponse {
    const headers: Record<string, string> = {
      ...response.headers,
      'request-id': ids.requestId,
      'client-request-id': ids.clientRequestId,
      date: now.toUTCString(),
      'x-ms-ags-diagnostic': AGS_DIAGNOSTIC,
    };
    if (response.error) {
      headers['content-type'] = 'application/json';
      return {
        status: response.status,
        headers,
        body: Buffer.from(JSON.stringify(renderErrorBody(response.error, ids, now))),
      };
    }
    return { status: response.status, headers, body: response.body ?? Buffer.alloc(0), stream: response.stream };
  }
}

/**
 * Gzips a JSON answer in place when `acceptEncoding` names gzip (with a non-zero q). Streamed bodies (`$value`) are
 * left as they are.
 */
function compressIfAccepted(response: FinishedResponse, acceptEncoding: string | undefined): void {
  if (response.stream || response.body.length === 0 || !acceptEncoding) return;
  if (!/^application\/json\b/i.test(response.headers['content-type'] ?? '')) return;
  const gzip = acceptEncoding
    .split(',')
    .map((part) => part.trim().toLowerCase().split(';'))
    .some(([coding, ...params]) => coding === 'gzip' && !params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(p)));
  if (!gzip) return;
  response.body = gzipSync(response.body);
  response.headers['content-encoding'] = 'gzip';
  response.headers.vary = 'Accept-Encoding';
}

function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
