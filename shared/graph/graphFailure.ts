/**
 * A failed Microsoft Graph call as the gateway decides on it: Graph's status and error code, the request ids both
 * sides gave it, its `x-ms-diagnostics` and how long it asked to wait. Read once from the SDK's `GraphError` (or the
 * error thrown before any answer), and carried as the `cause` of the problem it was answered with, so that a later
 * decision (the outbox's retry or not) reads these fields, not the problem document.
 */
import { GraphError } from '@microsoft/microsoft-graph-client';
import { retryAfterSeconds } from './graphClient';

/** Status of a call that got no answer (network, TLS, DNS, or no token): the Graph SDK's own convention. */
const NO_ANSWER = -1;

/** One failed Graph call. */
export class GraphFailure {
  private constructor(
    /** Graph's HTTP status, or -1 when no answer came. */
    readonly status: number,
    /** What went wrong: Graph's error message, or the error thrown before an answer. */
    readonly message: string,
    /** Graph's error code (`ErrorAccessDenied`), or the SDK's name of the error thrown before an answer. */
    readonly code?: string,
    /** Graph's `request-id`. */
    readonly requestId?: string,
    /** The call's `client-request-id`, as Graph echoed it or as the gateway sent it. */
    readonly clientRequestId?: string,
    /** Graph's `x-ms-diagnostics` header. */
    readonly diagnostics?: string,
    /** Seconds Graph's `Retry-After` asked for, when it sent one. */
    readonly retryAfterSeconds?: number,
  ) {}

  /**
   * The failure behind `err`, a `GraphError` or whatever a Graph call threw before an answer; `clientRequestId` is
   * the one the gateway sent, used when Graph did not echo it.
   */
  static of(err: unknown, clientRequestId?: string): GraphFailure {
    if (!(err instanceof GraphError)) {
      return new GraphFailure(
        NO_ANSWER,
        err instanceof Error ? err.message : String(err),
        undefined,
        undefined,
        clientRequestId,
      );
    }
    return new GraphFailure(
      err.statusCode,
      err.message,
      err.code ?? undefined,
      err.requestId ?? err.headers?.get('request-id') ?? undefined,
      err.headers?.get('client-request-id') ?? clientRequestId,
      err.headers?.get('x-ms-diagnostics') ?? undefined,
      retryAfterSeconds(err.headers),
    );
  }

  /** Whether Graph answered at all (when not, it may or may not have acted on the call). */
  get answered(): boolean {
    return this.status !== NO_ANSWER;
  }
}

/** The Graph failure a problem was made from, if it was made from one. */
export function graphFailureOf(err: unknown): GraphFailure | undefined {
  return err instanceof Error && err.cause instanceof GraphFailure ? err.cause : undefined;
}
