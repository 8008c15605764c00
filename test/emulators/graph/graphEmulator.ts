/**
 * A strict Microsoft Graph emulator on loopback HTTPS. It enforces Graph's token, permission, mailbox and
 * throttling rules (see /work/shared/GRAPH-FACTS.md) so the product meets the failures it will meet in production,
 * and lets tests look inside: requests seen, peak concurrency per mailbox, mailbox contents, injected faults.
 *
 * Mail reading, drafts, attachments, upload sessions and sending (with delivery into the tenant's Inboxes) are built
 * in; further features (subscriptions, delta, `$batch`) plug in as more routes through {@link GraphEmulator.route}, and
 * the pipeline applies the common rules to them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody, sendJson, startHttpsServer, type RunningServer } from '../httpServer';
import type { EmulatedTenant, TenantUser } from '../tenant';
import type { PemPair } from '../testCa';
import type { TokenIssuer } from '../tokenIssuer';
import { attachmentRoutes } from './attachmentRoutes';
import { DEFAULT_GRAPH_AUDIENCES } from './auth';
import { MailDelivery, type OutboundMail } from './delivery';
import { draftRoutes } from './draftRoutes';
import { FaultInjector, type FaultSpec } from './faults';
import type { EmulatedRequest, FinishedResponse } from './graphResponse';
import { isInspectionPath, serveInspection } from './inspection';
import { MailboxStore, type StoredMessage } from './mailboxStore';
import { mailReadRoutes } from './mailReadRoutes';
import { mailSendRoutes } from './mailSendRoutes';
import { GraphPipeline } from './pipeline';
import type { SeenRequest } from './requestLog';
import { RouteTable, type GraphRoute } from './router';
import { EXCHANGE_LIMITS, MailboxThrottle } from './throttle';
import { EXCHANGE_UPLOAD_LIMITS, UploadBudget } from './uploadBudget';
import { DEFAULT_UPLOAD_SESSION_LIFETIME_MS, UploadSessions, uploadSessionRoutes } from './uploadSessions';
import { userRoutes } from './userRoutes';

export type { FaultSpec } from './faults';
export type { SeenRequest } from './requestLog';
export type { GraphRoute, GraphRequestContext, HttpMethod, RouteHandler } from './router';
export type { EmulatedRequest, FinishedResponse, GraphResponse } from './graphResponse';
export { GraphError } from './graphResponse';
export { MailboxStore } from './mailboxStore';
export type { MailboxChange, NewMessage, StoredAttachment, StoredFolder, StoredMessage } from './mailboxStore';
export type { OutboundMail } from './delivery';

/** Options of {@link GraphEmulator.start}. */
export interface GraphEmulatorOptions {
  /** The organisation whose users and mailboxes Graph serves. */
  tenant: EmulatedTenant;
  /** Verifies access tokens (signature, lifetime, audience). */
  issuer: TokenIssuer;
  /** Issues the server certificate; clients trust it through NODE_EXTRA_CA_CERTS. */
  ca: PemPair;
  /** Accepted token audiences (default: Graph's resource URI and app id). */
  audiences?: string[];
  /** Emulated service time per request, while the request counts as in flight (default 0). */
  latencyMs?: { min: number; max: number };
  /**
   * Per (app, mailbox) limits (default: Exchange Online's 4 concurrent, 10,000 requests per 10 minutes, 150 MB of
   * request bodies per 5 minutes) and the lifetime of attachment upload URLs (default 2 hours).
   */
  limits?: GraphLimits;
}

/** The numbers {@link GraphEmulatorOptions.limits} can change; all must be positive. */
export interface GraphLimits {
  /** Requests in flight at once per (app, mailbox). */
  concurrentPerMailbox?: number;
  /** Requests per {@link windowMs} per (app, mailbox). */
  requestsPerWindow?: number;
  /** The sliding window of {@link requestsPerWindow}, in milliseconds. */
  windowMs?: number;
  /** Request-body bytes (POST/PUT/PATCH, upload-session chunks included) per {@link uploadWindowMs} per (app, mailbox). */
  uploadBytesPerWindow?: number;
  /** The sliding window of {@link uploadBytesPerWindow}, in milliseconds. */
  uploadWindowMs?: number;
  /** How long an attachment upload URL stays valid. */
  uploadSessionLifetimeMs?: number;
}

/** Body cap at the socket; routes apply their own (smaller) caps. */
const SOCKET_BODY_LIMIT = 200 * 1024 * 1024;

/** A running Graph emulator. */
export class GraphEmulator {
  /** HTTPS origin, e.g. `https://127.0.0.1:43123`; Graph's routes are under `/v1.0`. */
  readonly url: string;
  /** Every Graph request answered (inspection calls excluded), oldest first. */
  readonly requests: SeenRequest[] = [];
  /** Mail sent to recipients outside the tenant, oldest first (also at `GET /_emulator/outbound`). */
  readonly outbound: OutboundMail[];

  private readonly tenant: EmulatedTenant;
  private readonly routes = new RouteTable();
  private readonly throttle: MailboxThrottle;
  private readonly uploads: UploadBudget;
  private readonly faults = new FaultInjector();
  private readonly mailboxes = new Map<string, MailboxStore>();
  private readonly pipeline: GraphPipeline;

  private constructor(
    options: GraphEmulatorOptions,
    private readonly server: RunningServer,
  ) {
    this.url = server.url;
    this.tenant = options.tenant;
    const limits = {
      ...EXCHANGE_LIMITS,
      ...EXCHANGE_UPLOAD_LIMITS,
      uploadSessionLifetimeMs: DEFAULT_UPLOAD_SESSION_LIFETIME_MS,
      ...definedOnly(options.limits ?? {}),
    };
    for (const [name, value] of Object.entries(limits)) {
      if (!(value > 0)) throw new Error(`GraphEmulator limits.${name} must be positive`);
    }
    this.throttle = new MailboxThrottle(limits);
    this.uploads = new UploadBudget(limits);
    const delivery = new MailDelivery(options.tenant, (user) => this.mailboxOf(user));
    this.outbound = delivery.outbound;
    const latencyMs = options.latencyMs ?? { min: 0, max: 0 };
    if (latencyMs.min < 0 || latencyMs.max < latencyMs.min)
      throw new Error('GraphEmulator latencyMs needs 0 <= min <= max');
    this.pipeline = new GraphPipeline({
      tenant: options.tenant,
      issuer: options.issuer,
      audiences: options.audiences ?? DEFAULT_GRAPH_AUDIENCES,
      latencyMs,
      routes: this.routes,
      throttle: this.throttle,
      uploads: this.uploads,
      faults: this.faults,
      log: this.requests,
      mailboxOf: (user) => this.mailboxOf(user),
      origin: server.url,
    });
    const sessions = new UploadSessions(limits.uploadSessionLifetimeMs);
    for (const def of [
      ...userRoutes(),
      ...mailReadRoutes(),
      ...draftRoutes(),
      ...attachmentRoutes(),
      ...mailSendRoutes({ tenant: options.tenant, delivery }),
      ...uploadSessionRoutes({
        tenant: options.tenant,
        sessions,
        budget: this.uploads,
        mailboxOf: (user) => this.mailboxOf(user),
      }),
    ]) {
      this.routes.add(def);
    }
  }

  /** Starts the emulator on a free loopback port. */
  static async start(options: GraphEmulatorOptions): Promise<GraphEmulator> {
    let emulator: GraphEmulator | undefined;
    const server = await startHttpsServer(options.ca, (req, res) => {
      if (!emulator) throw new Error('Graph emulator is still starting');
      return emulator.serve(req, res);
    });
    try {
      emulator = new GraphEmulator(options, server);
    } catch (err) {
      await server.close();
      throw err;
    }
    return emulator;
  }

  /** Stops the server, cutting open connections. */
  close(): Promise<void> {
    return this.server.close();
  }

  /** Adds a route below `/v1.0`; throws when the same method and pattern exists. */
  route(def: GraphRoute): void {
    this.routes.add(def);
  }

  /** Runs a request through Graph's rules without HTTP (for `$batch`-style callers and tests). */
  dispatch(request: EmulatedRequest): Promise<FinishedResponse> {
    return this.pipeline.handle(request);
  }

  /** Peak in-flight requests any single app had against the mailbox (user id, UPN or mail); 0 when unknown. */
  peakConcurrency(mailbox: string): number {
    const user = this.tenant.findUser(mailbox);
    return user ? this.throttle.peak(user.id) : 0;
  }

  /** The mailbox of the user with this id, UPN or mail; throws when the tenant has no such user. */
  mailbox(addressOrId: string): MailboxStore {
    const user = this.tenant.findUser(addressOrId);
    if (!user) throw new Error(`the emulated tenant has no user '${addressOrId}'`);
    return this.mailboxOf(user);
  }

  /**
   * The Inbox of the user with this id, UPN or mail, newest first, each message with its attachments (base64
   * `contentBytes`) and internet headers; throws when the tenant has no such user.
   */
  inbox(addressOrId: string): StoredMessage[] {
    return this.mailbox(addressOrId).listMessages('inbox');
  }

  /** Arms a fault for the next matching authenticated requests. */
  injectFaults(fault: FaultSpec): void {
    this.faults.add(fault);
  }

  /** Disarms every fault. */
  clearFaults(): void {
    this.faults.clear();
  }

  /**
   * Forgets seen requests, concurrency peaks, request and upload budgets and faults (mailbox contents, outbound mail
   * and open upload sessions stay).
   */
  reset(): void {
    this.requests.length = 0;
    this.throttle.reset();
    this.uploads.reset();
    this.faults.clear();
  }

  private mailboxOf(user: TenantUser): MailboxStore {
    let store = this.mailboxes.get(user.id);
    if (!store) {
      store = new MailboxStore(user);
      this.mailboxes.set(user.id, store);
    }
    return store;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', this.url).pathname;
    if (isInspectionPath(pathname)) {
      serveInspection(req, res, {
        tenant: this.tenant,
        requests: this.requests,
        outbound: this.outbound,
        mailboxOf: (u) => this.mailboxOf(u),
      });
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, SOCKET_BODY_LIMIT);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      sendJson(res, 413, { error: { code: 'RequestEntityTooLarge', message: err.message } }, { connection: 'close' });
      return;
    }
    const answer = await this.pipeline.handle({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body,
    });
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
    res.end(answer.body);
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
