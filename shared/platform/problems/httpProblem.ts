/**
 * The one error type for a failure the gateway answers: its problem document, the headers that go with it, and what
 * caused it. Thrown anywhere below an HTTP handler (or the outbox), caught once and answered with `toResponse()`;
 * code that decides on a failure reads the typed fields (`retryAfterSeconds`, `cause`), never the document's text.
 */
import type { HttpResponseInit } from '@azure/functions';
import { PROBLEM_TYPE_BASE, problemResponse, type ProblemDocument } from './problem';

/** What a problem carries besides its document. */
export interface HttpProblemOptions {
  /** Seconds the caller should wait before retrying; answered as `Retry-After`. */
  retryAfterSeconds?: number;
  /** Other headers to answer with (e.g. `Accept-Encoding`). */
  headers?: Record<string, string>;
  /**
   * The detail for the log when the document's quotes the caller's values at length (field names, keys): the same
   * text with each value cut.
   */
  logDetail?: string;
  /** What the problem was made from (e.g. the Graph failure), for code that decides on it. */
  cause?: unknown;
}

/** A failure answered as an RFC 9457 problem document. */
export class HttpProblem extends Error {
  /** The headers to answer with, `Retry-After` among them when the problem has one. */
  readonly headers: Record<string, string>;
  /** Seconds the caller should wait before retrying, when the problem says. */
  readonly retryAfterSeconds?: number;
  /** The detail for the log, when it differs from the document's. */
  readonly logDetail?: string;

  constructor(
    readonly doc: ProblemDocument,
    options: HttpProblemOptions = {},
  ) {
    super(doc.detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HttpProblem';
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.logDetail = options.logDetail;
    this.headers = {
      ...options.headers,
      ...(options.retryAfterSeconds === undefined ? {} : { 'retry-after': String(options.retryAfterSeconds) }),
    };
  }

  /** The problem type's catalogue slug (the last segment of `doc.type`), for log lines and status reasons. */
  get slug(): string {
    return this.doc.type.startsWith(PROBLEM_TYPE_BASE) ? this.doc.type.slice(PROBLEM_TYPE_BASE.length) : this.doc.type;
  }

  /** The HTTP answer: the document as `application/problem+json` with the problem's headers and `extraHeaders`. */
  toResponse(extraHeaders: Record<string, string> = {}): HttpResponseInit {
    return problemResponse(this.doc, { ...this.headers, ...extraHeaders });
  }
}
