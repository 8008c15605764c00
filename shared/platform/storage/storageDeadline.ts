/**
 * Deadlines for storage calls. The storage SDKs put no client-side limit on a request (the queue and blob SDKs'
 * `tryTimeoutInMs` only asks the *server* to give up), so a storage account that accepts connections but does not
 * answer holds every caller until it answers again; and their retries with exponential back-off make one call last
 * far longer than one try. A pipeline policy in every storage client (storage.ts) runs before the SDK's retry
 * policy and aborts the whole call, retries and back-off included, when its deadline passes:
 *
 * - On a request path (an HTTP invocation, see {@link withStorageCallLimit}), each call gets
 *   {@link REQUEST_STORAGE_CALL_MS}: the first call that storage leaves unanswered ends the request with a 503. Per
 *   call, not per request: a request's Graph and Key Vault work must not eat its storage time.
 * - Graph's webhook must answer within 3 s however many calls it makes: all its storage calls share one deadline
 *   ({@link withStorageDeadline}, {@link WEBHOOK_STORAGE_DEADLINE_MS}).
 * - Anywhere else (queue and timer triggers: no caller is waiting, the message stays in its queue), each call gets
 *   {@link BACKGROUND_STORAGE_CALL_MS}: long enough for the SDK's retries to ride out a short storage hiccup instead
 *   of failing the invocation (which costs the message a dequeue), short enough not to pin an instance until the
 *   host's function timeout while storage is frozen.
 *
 * Every error a storage call ends with is remembered with its service and resource, so the HTTP layer can tell a
 * storage failure from anything else and answer `503 storage-unavailable` ({@link storageFailureOf}).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Readable, Transform } from 'node:stream';
import { RestError, type PipelinePolicy, type PipelineRequest } from '@azure/core-rest-pipeline';
import type { RequestPolicyFactory, WebResource } from '@azure/storage-queue';

/** Limit of one storage call (all its tries) in an HTTP request (Functions' own request timeout is far longer). */
export const REQUEST_STORAGE_CALL_MS = 5_000;
/** Budget of all the webhook's storage calls together: Graph drops a notification POST not answered within 3 s. */
export const WEBHOOK_STORAGE_DEADLINE_MS = 2_000;
/** Limit of one storage call (all its tries) outside a request: queue and timer triggers. */
const BACKGROUND_STORAGE_CALL_MS = 60_000;

/** A storage service. */
export type StorageService = 'table' | 'queue' | 'blob';

/** Which storage call failed. */
export interface StorageFailure {
  service: StorageService;
  /** The table, queue or container. */
  resource: string;
}

/**
 * A storage call cut off by its deadline; a RestError without status, like the SDKs' network failures (so code that
 * maps those maps this too). Recognise it with {@link isStorageTimeout}.
 */
export class StorageTimeoutError extends RestError {
  constructor(
    readonly service: StorageService,
    readonly resource: string,
    readonly budgetMs: number,
  ) {
    super(`${service} storage did not answer '${resource}' within ${budgetMs} ms`, { code: 'StorageTimeout' });
    this.name = 'StorageTimeoutError';
  }
}

/** The abort signal the SDKs take. */
type AbortSignalLike = NonNullable<PipelineRequest['abortSignal']>;

/**
 * True for a call cut off by its deadline. (Not `instanceof`: RestError's constructor resets the prototype to its
 * own, so an instance is a RestError but not a StorageTimeoutError.)
 */
export function isStorageTimeout(err: unknown): err is StorageTimeoutError {
  return err instanceof Error && err.name === 'StorageTimeoutError' && 'budgetMs' in err;
}

/** The limits in force: per call, and optionally a deadline shared by every call. */
interface Limits {
  callMs: number;
  shared?: { at: number; budgetMs: number };
}

const limits = new AsyncLocalStorage<Limits>();
const failures = new WeakMap<object, StorageFailure>();

/**
 * Runs `fn` with every storage call it makes (awaited or not) limited to `callMs` each; a lower limit already in
 * force stays.
 */
export function withStorageCallLimit<T>(callMs: number, fn: () => T): T {
  const current = limits.getStore();
  if (current && current.callMs <= callMs) return fn();
  return limits.run({ ...current, callMs }, fn);
}

/**
 * Runs `fn` with every storage call it makes (awaited or not) sharing a deadline `budgetMs` from now; an enclosing
 * deadline that ends earlier stays in force.
 */
export function withStorageDeadline<T>(budgetMs: number, fn: () => T): T {
  const at = Date.now() + budgetMs;
  const current = limits.getStore();
  if (current?.shared && current.shared.at <= at) return fn();
  return limits.run({ callMs: current?.callMs ?? BACKGROUND_STORAGE_CALL_MS, shared: { at, budgetMs } }, fn);
}

/** The storage call that `err` ended, or undefined when `err` did not come from a storage client. */
export function storageFailureOf(err: unknown): StorageFailure | undefined {
  return typeof err === 'object' && err !== null ? failures.get(err) : undefined;
}

/** Sends one storage call under its deadline: `send` gives the request an abort signal that fires at the deadline. */
async function underDeadline<T>(
  failure: StorageFailure,
  callerSignal: AbortSignalLike | undefined,
  send: (signal: AbortSignalLike) => Promise<T>,
): Promise<T> {
  const { callMs, shared } = limits.getStore() ?? { callMs: BACKGROUND_STORAGE_CALL_MS };
  const sharedLeft = shared ? Math.max(0, shared.at - Date.now()) : Infinity;
  // The limit that ends the call names itself in the error: the call's own, or the shared budget.
  const [remaining, budgetMs] = sharedLeft < callMs ? [sharedLeft, shared!.budgetMs] : [callMs, callMs];
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, remaining);
  const onCallerAbort = () => controller.abort();
  if (callerSignal?.aborted) controller.abort();
  callerSignal?.addEventListener('abort', onCallerAbort);
  try {
    const response = await send(controller.signal);
    guardStreamedBody(response, callMs, failure);
    return response;
  } catch (err) {
    const thrown =
      timedOut && !callerSignal?.aborted ? new StorageTimeoutError(failure.service, failure.resource, budgetMs) : err;
    if (typeof thrown === 'object' && thrown !== null) failures.set(thrown, failure);
    throw thrown;
  } finally {
    clearTimeout(timer);
    callerSignal?.removeEventListener('abort', onCallerAbort);
  }
}

/**
 * A streamed answer (a blob download) arrives after its headers, when the call's own deadline is over: a storage
 * account that sends the headers and then stalls would hold the reader for good. So its body is read through a
 * stream that fails with a {@link StorageTimeoutError} when no byte arrives for `idleMs` (the call limit in force).
 */
function guardStreamedBody(response: unknown, idleMs: number, failure: StorageFailure): void {
  const holder = response as { readableStreamBody?: NodeJS.ReadableStream } | undefined;
  const body = holder?.readableStreamBody;
  if (!(body instanceof Readable)) return;
  const timer = setTimeout(() => {
    // Bytes waiting for the reader: it is the reader that is slow, not storage.
    if (guarded.readableLength > 0 || guarded.writableLength > 0) {
      timer.refresh();
      return;
    }
    const err = new StorageTimeoutError(failure.service, failure.resource, idleMs);
    failures.set(err, failure);
    body.destroy();
    guarded.destroy(err);
  }, idleMs);
  const guarded = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      timer.refresh();
      done(null, chunk);
    },
  });
  guarded.once('close', () => clearTimeout(timer));
  body.once('error', (err) => guarded.destroy(err));
  body.pipe(guarded);
  holder!.readableStreamBody = guarded;
}

/** The deadline as a pipeline policy for `@azure/data-tables` (`additionalPolicies`, position `perCall`). */
export function storageDeadlinePolicy(failure: StorageFailure): PipelinePolicy {
  return {
    name: 'storageDeadline',
    sendRequest: (request, next) => {
      const callerSignal = request.abortSignal;
      return underDeadline(failure, callerSignal, (signal) => {
        request.abortSignal = signal;
        return next(request);
      }).finally(() => {
        request.abortSignal = callerSignal;
      });
    },
  };
}

/**
 * The deadline as a request policy factory for `@azure/storage-queue` and `@azure/storage-blob` (pushed onto their
 * `Pipeline`'s factories, which those SDKs run before their retry policy). Setting `abortSignal` on their request
 * object sets it on the request the retry policy and the HTTP client see.
 */
export function storageDeadlineFactory(failure: StorageFailure): RequestPolicyFactory {
  return {
    create: (nextPolicy) => ({
      sendRequest: (webResource: WebResource) => {
        const callerSignal = webResource.abortSignal;
        return underDeadline(failure, callerSignal, (signal) => {
          webResource.abortSignal = signal;
          return nextPolicy.sendRequest(webResource);
        }).finally(() => {
          webResource.abortSignal = callerSignal;
        });
      },
    }),
  };
}
