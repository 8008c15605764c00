/**
 * Injected failures: tests reproduce throttling storms and outages on demand. A fault only hits requests that
 * passed authentication, permissions and mailbox resolution, so a faulted answer never hides a product bug in those.
 */
import { errorResponse, type GraphResponse } from './graphResponse';

/** A failure to inject. */
export interface FaultSpec {
  /** HTTP status to answer with, e.g. 429 or 503. */
  status: number;
  /** `Retry-After` value in seconds (fractional allowed, as Graph sends); omitted when absent. */
  retryAfter?: string | number;
  /** How many matching requests fail (default 1; `Infinity` until cleared). */
  times?: number;
  /** Only requests to this mailbox (id, UPN or mail). */
  mailbox?: string;
  /** Only this HTTP method (case-insensitive). */
  method?: string;
  /** Only paths (with `/v1.0`, without the query) this pattern matches. */
  pathPattern?: RegExp;
  /** Error code; defaults by status (`TooManyRequests` for 429, `ServiceUnavailable` for 503, ...). */
  code?: string;
  /** Error message; defaults by status. */
  message?: string;
}

/** What a request looks like to fault matching. */
export interface FaultTarget {
  method: string;
  path: string;
  /** The resolved mailbox's user id, when the route names one. */
  mailboxId?: string;
}

const DEFAULTS: Record<number, { code: string; message: string }> = {
  400: { code: 'BadRequest', message: 'The request is malformed or incorrect.' },
  401: { code: 'InvalidAuthenticationToken', message: 'Access token validation failure.' },
  403: { code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' },
  404: { code: 'ErrorItemNotFound', message: 'The specified object was not found in the store.' },
  409: { code: 'ErrorIrresolvableConflict', message: 'The send or update operation could not be performed.' },
  429: { code: 'TooManyRequests', message: 'Too many requests.' },
  500: { code: 'InternalServerError', message: 'An internal server error occurred.' },
  502: { code: 'BadGateway', message: 'Bad gateway.' },
  503: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' },
  504: { code: 'GatewayTimeout', message: 'The gateway timed out.' },
};

interface ActiveFault {
  spec: FaultSpec;
  remaining: number;
}

/** The faults waiting to fire, in the order they were injected. */
export class FaultInjector {
  private faults: ActiveFault[] = [];

  /** Adds a fault; it fires on the next `times` matching requests. */
  add(spec: FaultSpec): void {
    const remaining = spec.times ?? 1;
    if (!(remaining > 0)) throw new Error('FaultSpec.times must be positive');
    this.faults.push({ spec, remaining });
  }

  /** Removes every fault. */
  clear(): void {
    this.faults = [];
  }

  /** Number of faults still armed. */
  get pending(): number {
    return this.faults.length;
  }

  /**
   * Consumes the first fault matching `target` and returns its response, or undefined. `resolveMailbox` turns a
   * fault's mailbox (address or id) into a user id, so faults may name mailboxes any way Graph accepts.
   */
  take(target: FaultTarget, resolveMailbox: (addressOrId: string) => string | undefined): GraphResponse | undefined {
    const index = this.faults.findIndex(({ spec }) => {
      if (spec.method && spec.method.toUpperCase() !== target.method) return false;
      if (spec.pathPattern) {
        spec.pathPattern.lastIndex = 0;
        if (!spec.pathPattern.test(target.path)) return false;
      }
      if (spec.mailbox !== undefined) {
        const wanted = resolveMailbox(spec.mailbox);
        if (!wanted || wanted !== target.mailboxId) return false;
      }
      return true;
    });
    if (index < 0) return undefined;
    const fault = this.faults[index];
    fault.remaining--;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    const { spec } = fault;
    const defaults = DEFAULTS[spec.status] ?? { code: 'UnknownError', message: 'An error occurred.' };
    const headers: Record<string, string> = {};
    if (spec.retryAfter !== undefined) headers['retry-after'] = String(spec.retryAfter);
    return errorResponse(spec.status, spec.code ?? defaults.code, spec.message ?? defaults.message, headers);
  }
}
