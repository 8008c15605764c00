/**
 * Every way a send can fail, as the problem document the caller gets: validation, policy, size, idempotency, and
 * Graph failures mapped to what the operator must fix. Graph's `code`, `request-id`, our `client-request-id` and
 * any `x-ms-diagnostics` travel along; the token and the message never do.
 */
import { GraphError } from '@microsoft/microsoft-graph-client';
import { GraphFailure } from '../graph/graphFailure';
import { graphFailureProblem, type GraphProblemCases } from '../graph/graphProblems';
import { HttpProblem } from '../platform/problems/httpProblem';
import { logValue } from '../platform/logSafe';
import { problem } from '../platform/problems/problem';
import type { AdminConsentMissingError } from '../identity/tokenClaims';
import type { FieldProblem } from './sendRequest';

/** At most this many field problems are listed in `errors`; `errorCount` gives the total. */
export const MAX_LISTED_PROBLEMS = 50;

/** At most this many are spelled out in `detail`. */
const MAX_PROBLEMS_IN_DETAIL = 10;

/** How much of one field problem's message the log quotes: all of the gateway's own, a bounded part of zod's. */
const LOGGED_MESSAGE_MAX_CHARS = 240;

/**
 * 400 listing the invalid fields: the first {@link MAX_LISTED_PROBLEMS} in `errors` and the total in `errorCount`,
 * so 10,000 bad recipients give a small answer rather than a megabyte.
 */
export function validationProblem(problems: FieldProblem[]): HttpProblem {
  const rest = problems.length - MAX_PROBLEMS_IN_DETAIL;
  const detail = (text: (p: FieldProblem) => string) =>
    problems.slice(0, MAX_PROBLEMS_IN_DETAIL).map(text).join('; ') +
    (rest > 0 ? `; and ${rest} more (${problems.length} in all)` : '');
  return new HttpProblem(
    problem(
      400,
      'validation',
      'The send request is invalid',
      detail((p) => (p.field ? `${p.field}: ${p.message}` : p.message)),
      {
        errors: problems.slice(0, MAX_LISTED_PROBLEMS),
        errorCount: problems.length,
      },
    ),
    {
      // Field paths hold the caller's keys, and zod's messages quote unknown ones: each is cut for the log.
      logDetail: detail((p) =>
        p.field
          ? `${logValue(p.field)}: ${logValue(p.message, LOGGED_MESSAGE_MAX_CHARS)}`
          : logValue(p.message, LOGGED_MESSAGE_MAX_CHARS),
      ),
    },
  );
}

/** 400 for a body that is not JSON (or not an object). */
export function notJsonProblem(reason: string): HttpProblem {
  return new HttpProblem(
    problem(
      400,
      'not-json',
      'The body is not a JSON object',
      `${reason} Send Content-Type: application/json with a JSON object.`,
    ),
  );
}

/** 400 for a body nested deeper than the gateway reads (refused at the first bracket past the cap). */
export function tooDeepProblem(maxDepth: number): HttpProblem {
  return new HttpProblem(
    problem(
      400,
      'too-deep',
      'The JSON nests too deep',
      `The body nests arrays and objects more than ${maxDepth} levels deep, the gateway's limit; a send request ` +
        'nests 3 (attachments[0].name). Nothing was read past that point.',
      { maxDepth },
    ),
  );
}

/** 415 for a body that is not declared as JSON. */
export function unsupportedMediaProblem(contentType: string | null): HttpProblem {
  return new HttpProblem(
    problem(
      415,
      'unsupported-media-type',
      'The body must be JSON',
      `Content-Type is '${contentType === null ? '(none)' : logValue(contentType)}'; send application/json.`,
    ),
  );
}

/**
 * 415 for a body sent with a content coding (gzip, br, ...): the gateway decodes none, so it would read compressed
 * bytes as JSON, or take a body labelled compressed as plain. `Accept-Encoding` says what it takes (RFC 9110 15.5.16).
 */
export function unsupportedEncodingProblem(contentEncoding: string): HttpProblem {
  return new HttpProblem(
    problem(
      415,
      'unsupported-content-encoding',
      'The body must not be compressed',
      `Content-Encoding is '${logValue(contentEncoding)}'; the gateway takes identity only: send the JSON ` +
        'uncompressed, without Content-Encoding.',
      { acceptedEncodings: ['identity'] },
    ),
    { headers: { 'accept-encoding': 'identity' } },
  );
}

/** 413 naming the cap. */
export function tooLargeProblem(limitBytes: number): HttpProblem {
  const mb = limitBytes / 1024 / 1024;
  return new HttpProblem(
    problem(
      413,
      'too-large',
      'The send request is too large',
      `The body exceeds the gateway's cap of ${mb} MB (MAX_SEND_REQUEST_MB).`,
      { limitBytes },
    ),
  );
}

/** 403 for a `from` outside ALLOWED_SENDERS. */
export function senderNotAllowedProblem(from: string): HttpProblem {
  return new HttpProblem(
    problem(
      403,
      'sender-not-allowed',
      'This mailbox may not be sent from',
      `'${from}' is not in the gateway's sender policy (ALLOWED_SENDERS).`,
      {
        from,
      },
    ),
  );
}

/** 409 for an Idempotency-Key reused with another request (compared as parsed JSON, see requestHash.ts). */
export function idempotencyConflictProblem(): HttpProblem {
  return new HttpProblem(
    problem(
      409,
      'idempotency-key-reused',
      'Idempotency-Key reused with a different request',
      'This Idempotency-Key was first used with a different request (compared as parsed JSON: whitespace and key order do not matter); use a new key for a new message.',
    ),
  );
}

/** 409 while the first request with the same key is still running. */
export function idempotencyInProgressProblem(): HttpProblem {
  return new HttpProblem(
    problem(
      409,
      'idempotency-key-in-progress',
      'A request with this Idempotency-Key is still being processed',
      'Retry after a few seconds to get its result.',
    ),
    { retryAfterSeconds: 2 },
  );
}

/** 400 for an Idempotency-Key that cannot be one. */
export function badIdempotencyKeyProblem(): HttpProblem {
  return new HttpProblem(
    problem(
      400,
      'validation',
      'Invalid Idempotency-Key',
      'Idempotency-Key must be 1 to 255 visible ASCII characters.',
      {
        errors: [{ field: 'Idempotency-Key', message: 'must be 1 to 255 visible ASCII characters' }],
      },
    ),
  );
}

/** 502: the app lacks admin consent (found from the token, before Graph was called). */
export function consentProblem(err: AdminConsentMissingError): HttpProblem {
  return new HttpProblem(
    problem(502, 'admin-consent-missing', 'The gateway lacks a Microsoft Graph permission', err.message, {
      missingPermissions: err.missing,
    }),
  );
}

/** Seconds a caller is told to wait when Graph throttled the send without saying how long. */
const THROTTLED_RETRY_AFTER_SECONDS = 30;

/** What the gateway knows about one Graph call, for the problem document and logs. */
export interface GraphCallInfo {
  clientRequestId: string;
  /** The Graph id of the received message the call drafts a reply or forward from. */
  original?: string;
}

/**
 * Seconds a caller should wait after Graph throttled a send: Graph's `Retry-After` rounded up (at least 1 s), else
 * {@link THROTTLED_RETRY_AFTER_SECONDS}. The answer's `Retry-After`, and the outbox's wait before trying again.
 */
function throttledWaitSeconds(failure: GraphFailure): number {
  return Math.max(1, Math.ceil(failure.retryAfterSeconds ?? THROTTLED_RETRY_AFTER_SECONDS));
}

/** Maps a failed Graph call to the caller's problem document; the {@link GraphFailure} is its `cause`. */
export function graphProblem(err: unknown, call: GraphCallInfo, mailbox: string): HttpProblem {
  const failure = GraphFailure.of(err, call.clientRequestId);
  // Status -1: the SDK wrapped an error thrown before Graph answered (network, TLS, DNS).
  if (!(err instanceof GraphError) || !failure.answered) {
    return new HttpProblem(
      problem(
        502,
        'graph-unreachable',
        'Microsoft Graph could not be reached',
        `The call to Graph failed before an answer: ${failure.message}`,
        {
          clientRequestId: call.clientRequestId,
        },
      ),
      { retryAfterSeconds: 30, cause: failure },
    );
  }
  return graphFailureProblem(failure, sendCases(mailbox, call.original));
}

/** How a send words Graph's refusals, and the refusals only a send meets. */
function sendCases(mailbox: string, original: string | undefined): GraphProblemCases {
  return {
    quoteDiagnostics: true,
    before: (failure, make) => {
      if (original !== undefined && failure.code === 'ErrorItemNotFound') {
        return make(
          404,
          'message-not-found',
          'The message is not in the mailbox',
          `'${mailbox}' holds no message with the id answered (Graph: ErrorItemNotFound). A message's id changes when it is moved, and a deleted one has none; use the id from a recent listing or event.`,
        );
      }
      switch (failure.code) {
        case 'NoPermissionsInAccessToken':
          return make(
            502,
            'admin-consent-missing',
            'The gateway lacks a Microsoft Graph permission',
            "admin consent not granted for Mail.Send: the token carries no application permissions. Grant admin consent for the app registration's Microsoft Graph application permissions in Entra ID.",
          );
        case 'ErrorSendAsDenied':
          return make(
            403,
            'send-as-denied',
            'Send-As denied',
            `Exchange refused to send as '${mailbox}': grant the app's mailbox Send-As (or Send on behalf) on it, or send from the mailbox itself.`,
          );
        case 'ErrorInvalidRecipients':
        case 'ErrorInvalidRecipientsFormat':
          return make(
            422,
            'invalid-recipient',
            'Exchange refused a recipient',
            `Exchange refused the recipients: ${failure.message}`,
          );
        case 'InvalidInternetMessageHeader':
          return make(422, 'invalid-header', 'Exchange refused a header', failure.message);
        case 'ErrorMessageSizeExceeded':
          return make(
            413,
            'too-large',
            'The message is larger than the mailbox may send',
            `Exchange refused the message as larger than '${mailbox}' may send ("${failure.message}"). The limit is the mailbox's maximum send size: 35 MB by default in Exchange Online, at most 150 MB. An Exchange admin raises it with Exchange Online PowerShell, e.g. Set-Mailbox -Identity ${mailbox} -MaxSendSize 150MB; then send the mail again, or send smaller attachments (a link instead of the file).`,
          );
      }
      return undefined;
    },
    accessDenied: (failure) => ({
      title: 'The app may not use this mailbox',
      detail: `Graph denied access to '${mailbox}' ("${failure.message}"). The mailbox is outside the app's Exchange application access scope (RBAC for Applications / application access policy): add it to the scope (infra/Set-MailboxScope.ps1) or send from a mailbox inside it.`,
    }),
    mailboxNotEnabled: () => ({
      title: 'The mailbox cannot be used through Graph',
      detail: `'${mailbox}' is inactive, soft-deleted, on-premises or unlicensed for Exchange Online; use a cloud mailbox with an Exchange Online licence.`,
    }),
    mailboxNotFound: () => ({ title: 'No such mailbox', detail: `The tenant has no mailbox '${mailbox}'.` }),
    after: (failure, make) => {
      if (failure.status === 413) {
        return make(
          413,
          'too-large',
          'The message is too large for Microsoft Graph',
          `Graph refused the message as too large (${failure.message}). Exchange's limit is 35 MB by default (up to 150 MB if an admin raises it).`,
        );
      }
      if (failure.status === 401) {
        return make(
          502,
          'graph-auth-failed',
          "Microsoft Graph refused the gateway's token",
          `Graph answered 401 ${failure.code ?? ''}: ${failure.message}. Check /api/diagnostics.`,
        );
      }
      return undefined;
    },
    throttled: (failure) => {
      const wait = throttledWaitSeconds(failure);
      return {
        title: 'Microsoft Graph is throttling this mailbox',
        detail: `Graph kept answering ${failure.status} for '${mailbox}' past the gateway's wait budget (GRAPH_MAX_WAIT_SECONDS). Nothing was sent; retry after ${wait} s.`,
        retryAfterSeconds: wait,
      };
    },
  };
}
