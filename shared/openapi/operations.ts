/**
 * The HTTP API's route table: one entry per operation the functions register. A new HTTP function gets an entry
 * here (method, path, auth level, its request schema, its answers); the public OpenAPI test fails while the
 * functions the host registers and this table disagree.
 */
import { z } from 'zod';
import { MAX_SEND_JSON_DEPTH, sendRequestSchema } from '../mail/sendRequest';
import { forwardRequestSchema, replyRequestSchema } from '../mail/threadRequest';
import { MESSAGE_OPERATIONS } from './messageOperations';
import { jsonResponse, problemResponse, type OperationSpec, type ParameterSpec } from './operationSpec';
import { notificationCollectionSchema } from '../watch/notifications/notificationReceiver';
import { watchRequestSchema } from '../watch/content/eventContent';
import {
  diagnosticsReportSchema,
  healthSchema,
  mailboxListSchema,
  mailboxViewSchema,
  mailboxWatchedSchema,
  mailStatusSchema,
  problemTypeDocumentSchema,
  sendMailQueuedSchema,
  sendMailSentSchema,
} from './responseSchemas';

const retryAfter = {
  description: 'Seconds to wait before retrying.',
  required: true,
  schema: z.int().min(1),
};

/** `Retry-After` on an answer that carries it only for some of its problem types. */
const retryAfterWhenStorage = {
  description: 'Seconds to wait before retrying; sent when storage failed (`storage-unavailable`).',
  required: false,
  schema: z.int().min(1),
};

/** The 503 every storage-backed route answers when storage fails or does not answer in time. */
const storageUnavailable = problemResponse(
  'Storage failed or did not answer within 5 s (`storage-unavailable`); `detail` says what to check.',
  { 'Retry-After': retryAfter },
);

const mailboxParameter = {
  name: 'mailbox',
  in: 'path' as const,
  description: 'The mailbox address, e.g. `support@contoso.com`.',
  schema: z.string().max(254),
};

/** `Prefer: wait=N` of the accepting routes. */
const preferWait: ParameterSpec = {
  name: 'Prefer',
  in: 'header',
  description:
    '`wait=N` (RFC 7240, N capped at 60): wait up to N seconds for the outcome: 200 when sent, the ' +
    "failure's problem document, or 202 (with Preference-Applied) when the mail is still in the outbox.",
  schema: z.string(),
};

/** `Idempotency-Key` of the accepting routes. */
const idempotencyKey: ParameterSpec = {
  name: 'Idempotency-Key',
  in: 'header',
  description:
    'A repeat of the same request with the same key (compared as parsed JSON: whitespace, key order and ' +
    'escapes do not matter) sends nothing again and answers with the first mail as it is now: 200 once ' +
    'sent, its problem once failed, else 202 with its status. The same key with another request is 409.',
  // The handler's rule (shared/outbox/accept/sendMailHandler.ts): 1 to 255 visible ASCII characters.
  schema: z.string().regex(/^[\x21-\x7e]{1,255}$/),
};

/** One of Graph's two webhook endpoints: the same handler, the same contract. */
function graphWebhook(operationId: string, path: string, kind: 'change' | 'lifecycle'): OperationSpec {
  return {
    operationId,
    method: 'post',
    path,
    auth: 'anonymous',
    tags: ['graph webhooks'],
    summary: `Microsoft Graph's ${kind} notifications (called by Graph, not by you)`,
    description:
      'With `validationToken` in the query: the validation handshake (200, text/plain, the decoded token). ' +
      "Otherwise Graph's notification collection: every item is checked against its subscription's clientState " +
      '(failures are dropped), the rest is queued before the answer.',
    parameters: [
      {
        name: 'validationToken',
        in: 'query',
        description: "Graph's validation request: answered with this token, decoded, as text/plain.",
        schema: z.string(),
      },
    ],
    requestBody: {
      name: 'GraphNotificationCollection',
      schema: notificationCollectionSchema,
      description: 'What Graph POSTs: `{ value: [ notification, ... ] }`.',
    },
    responses: {
      200: { description: 'The validation handshake: the decoded token as text/plain.' },
      202: { description: 'The notifications that passed the checks are queued.' },
      400: problemResponse("The body is not Graph's notification collection (`not-a-graph-notification`)."),
      413: problemResponse('The body is too large (`too-large`).'),
      503: problemResponse('Storage is unavailable (`storage-unavailable`); Graph retries.', {
        'Retry-After': retryAfter,
      }),
    },
  };
}

/** `POST /api/mailboxes/{mailbox}/messages/{id}/reply` or `.../forward`: accepted as a mail is, built in the thread. */
function threadMailOperation(action: 'reply' | 'forward'): OperationSpec {
  const reply = action === 'reply';
  const location = { description: 'The status URL, `/api/mail/{id}`.', required: true, schema: z.string() };
  return {
    operationId: reply ? 'messageReply' : 'messageForward',
    method: 'post',
    path: `/api/mailboxes/{mailbox}/messages/{id}/${action}`,
    auth: 'function',
    tags: ['messages'],
    summary: reply
      ? 'Reply (or reply all) to a received message, in its thread (through the outbox)'
      : 'Forward a received message, with its attachments, in its thread (through the outbox)',
    description:
      'Accepted exactly as `POST /api/mail/send` (validation, Idempotency-Key, permission check, 202 with the ' +
      'status URL, `Prefer: wait`, pacing, at most once, `mail.sent`/`mail.failed`). The mailbox must be in ' +
      'ALLOWED_READ_MAILBOXES and allowed by ALLOWED_SENDERS (403 before Graph is called). The outbox builds the ' +
      `mail with Graph's ${reply ? 'createReply (createReplyAll with `replyAll`)' : 'createForward'}, so Exchange ` +
      'keeps the conversation (conversationId, In-Reply-To, References) and quotes the original below the new text. ' +
      'The status document and `mail.sent` carry `inReplyTo` and the `conversationId`.',
    parameters: [
      mailboxParameter,
      {
        name: 'id',
        in: 'path' as const,
        description:
          "The message's Graph id (from a listing or a `mail.received` event); it changes when the message moves.",
        schema: z.string().max(512),
      },
      preferWait,
      idempotencyKey,
    ],
    requestBody: {
      name: reply ? 'ReplyRequest' : 'ForwardRequest',
      schema: reply ? replyRequestSchema : forwardRequestSchema,
      description: reply
        ? 'The new text above the quoted original. Also required: exactly one of `text` and `html`. Exchange ' +
          'addresses the reply (the sender or Reply-To; with `replyAll` everyone but the mailbox); `cc` and `bcc` add to it.'
        : "The recipients and the new text above the quoted original; the original's attachments travel with it. " +
          'Also required: exactly one of `text` and `html`; 1 to 500 recipients in `to`, `cc` and `bcc` together.',
    },
    responses: {
      200: jsonResponse(
        'With `Prefer: wait`: Exchange accepted the message in time.',
        'SendMailSent',
        sendMailSentSchema,
        {
          Location: location,
        },
      ),
      202: jsonResponse('The mail is in the outbox.', 'SendMailQueued', sendMailQueuedSchema, { Location: location }),
      400: problemResponse(
        'The mailbox (`invalid-mailbox`) or message id (`invalid-message-id`) in the path is malformed, the body is ' +
          'not a JSON object (`not-json`, `too-deep`), or fields are invalid (`validation`).',
      ),
      403: problemResponse(
        'The mailbox is not in ALLOWED_READ_MAILBOXES (`mailbox-not-readable`) or ALLOWED_SENDERS ' +
          '(`sender-not-allowed`), or Exchange refused it (`mailbox-out-of-scope`, `send-as-denied`).',
      ),
      404: problemResponse(
        'With `Prefer: wait`: the message is not in the mailbox (`message-not-found`: moved, which changes its id, or deleted).',
      ),
      409: problemResponse('The Idempotency-Key was used with another request, or its first request is still running.'),
      413: problemResponse('The body exceeds MAX_SEND_REQUEST_MB, or Exchange refused the message as too large.'),
      415: problemResponse('The body is not declared as JSON, or carries a Content-Encoding other than `identity`.'),
      422: problemResponse('With `Prefer: wait`: Exchange refused a recipient or header, or cannot use the mailbox.'),
      500: problemResponse('The gateway failed; `incident` names its log entry. Nothing was stored.'),
      502: problemResponse('With `Prefer: wait`: Microsoft Graph refused the gateway (`admin-consent-missing`, ...).'),
      503: problemResponse('Storage or the credential is unavailable. Nothing was stored.', {
        'Retry-After': retryAfterWhenStorage,
      }),
      504: problemResponse(
        'With `Prefer: wait`: the mail was not sent within OUTBOX_MAX_AGE_HOURS (`outbox-expired`).',
      ),
    },
  };
}

/** Every operation of the HTTP API. */
export const OPERATIONS: readonly OperationSpec[] = [
  {
    operationId: 'sendMail',
    method: 'post',
    path: '/api/mail/send',
    auth: 'function',
    tags: ['mail'],
    summary: 'Send a mail as a permitted mailbox (through the outbox)',
    description:
      'Validates the request, applies the sender policy (ALLOWED_SENDERS) and the permission check, stores the ' +
      'mail in the outbox and answers 202 with its status URL. The outbox processor sends it through Microsoft ' +
      'Graph as the `from` mailbox, paced per mailbox (MAILBOX_MESSAGES_PER_MINUTE, MAILBOX_RECIPIENTS_PER_DAY). ' +
      '`Prefer: wait=N` waits up to N seconds for the outcome.',
    parameters: [preferWait, idempotencyKey],
    requestBody: {
      name: 'SendMailRequest',
      schema: sendRequestSchema,
      // The schema's refinements have no JSON Schema form; the 400 answer enforces them.
      description:
        'The message to send. Also required: exactly one of `text` and `html`; 1 to 500 recipients in `to`, `cc` ' +
        'and `bcc` together; a `contentId` on every inline attachment; header names starting with `X-`.',
    },
    responses: {
      200: jsonResponse(
        'With `Prefer: wait`: Exchange accepted the message in time; or a repeat with an Idempotency-Key whose mail ' +
          'was sent.',
        'SendMailSent',
        sendMailSentSchema,
        {
          Location: { description: 'The status URL, `/api/mail/{id}`.', required: true, schema: z.string() },
          'idempotent-replayed': {
            description: '`true` when this answers a repeat of an earlier request with the same Idempotency-Key.',
            schema: z.literal('true'),
          },
        },
      ),
      202: jsonResponse('The mail is in the outbox.', 'SendMailQueued', sendMailQueuedSchema, {
        Location: { description: 'The status URL, `/api/mail/{id}`.', required: true, schema: z.string() },
        'idempotent-replayed': {
          description: '`true` when this answers a repeat of an earlier request with the same Idempotency-Key.',
          schema: z.literal('true'),
        },
        'preference-applied': {
          description: '`wait=N` when the request waited for the outcome.',
          schema: z.string(),
        },
      }),
      400: problemResponse(
        `The body is not a JSON object (\`not-json\`), nests arrays and objects more than ${MAX_SEND_JSON_DEPTH} levels ` +
          'deep (`too-deep`, with `maxDepth`), or fields are invalid (`validation`, every one listed in `errors`).',
      ),
      403: problemResponse(
        'The sender is not allowed (`sender-not-allowed`), Exchange refused Send-As (`send-as-denied`), or the ' +
          "mailbox is outside the app's Exchange scope (`mailbox-out-of-scope`, `graph-access-denied`).",
      ),
      409: problemResponse(
        'The Idempotency-Key was used with another request (`idempotency-key-reused`), or its first request is still ' +
          'running (`idempotency-key-in-progress`, with Retry-After).',
      ),
      413: problemResponse(
        'The body exceeds MAX_SEND_REQUEST_MB, or Exchange refused the message as larger than the mailbox may send ' +
          '(`too-large`, naming the limit and `Set-Mailbox -MaxSendSize`).',
      ),
      415: problemResponse(
        'The body is not declared as JSON (`unsupported-media-type`), or carries a Content-Encoding other than ' +
          '`identity` (`unsupported-content-encoding`, answered with `Accept-Encoding: identity`): the gateway ' +
          'decodes none.',
      ),
      422: problemResponse(
        'Exchange cannot use the mailbox (`mailbox-not-enabled`, `mailbox-not-found`) or refused a recipient or ' +
          'header (`invalid-recipient`, `invalid-header`).',
      ),
      500: problemResponse('The gateway failed; `incident` names its log entry. Nothing was stored.'),
      502: problemResponse(
        'With `Prefer: wait`: Microsoft Graph refused the gateway (`admin-consent-missing`, `graph-auth-failed`, ' +
          '`graph-error`), or an interrupted attempt could not be checked (`outcome-unknown`).',
      ),
      503: problemResponse(
        'Storage or the credential is unavailable (`storage-unavailable`, ...). Nothing was stored.',
        { 'Retry-After': retryAfter },
      ),
      504: problemResponse(
        'With `Prefer: wait`: the mail was not sent within OUTBOX_MAX_AGE_HOURS (`outbox-expired`).',
      ),
    },
  },
  {
    operationId: 'mailStatus',
    method: 'get',
    path: '/api/mail/{id}',
    auth: 'function',
    tags: ['mail'],
    summary: "A mail's status in the outbox",
    description:
      'Status (`queued`, `scheduled`, `deferred`, `sending`, `sent`, `failed`), attempts, timestamps, Graph ' +
      "request-ids and the problem on failure. Never the mail's content or recipients.",
    parameters: [
      {
        name: 'id',
        in: 'path' as const,
        description: 'The id `POST /api/mail/send` answered.',
        schema: z.string(),
      },
    ],
    responses: {
      200: jsonResponse("The mail's status.", 'MailStatus', mailStatusSchema),
      404: problemResponse('No such mail (`mail-not-found`).'),
      503: problemResponse('Storage is unavailable (`storage-unavailable`).', { 'Retry-After': retryAfter }),
    },
  },
  threadMailOperation('reply'),
  threadMailOperation('forward'),
  {
    operationId: 'mailboxList',
    method: 'get',
    path: '/api/mailboxes',
    auth: 'function',
    tags: ['watch'],
    summary: 'List watched mailboxes',
    responses: {
      200: jsonResponse('Every watched mailbox.', 'MailboxList', mailboxListSchema),
      503: storageUnavailable,
    },
  },
  {
    operationId: 'getMailbox',
    method: 'get',
    path: '/api/mailboxes/{mailbox}',
    auth: 'function',
    tags: ['watch'],
    summary: 'Show a watched mailbox',
    parameters: [mailboxParameter],
    responses: {
      200: jsonResponse('The watched mailbox.', 'MailboxView', mailboxViewSchema),
      400: problemResponse('Not a mailbox address (`invalid-mailbox`).'),
      404: problemResponse('The mailbox is not watched (`mailbox-not-watched`).'),
      503: storageUnavailable,
    },
  },
  {
    operationId: 'watchMailbox',
    method: 'put',
    path: '/api/mailboxes/{mailbox}',
    auth: 'function',
    tags: ['watch'],
    summary: 'Watch a mailbox (create or repair its subscription)',
    description:
      'For each folder asked for (default the Inbox): under push, creates a Graph subscription on its messages with ' +
      'the longest expiry Graph accepts, or renews it, or recreates it (then catches up) when Graph lost it; under ' +
      'poll, reads it by delta every POLL_INTERVAL_SECONDS instead; auto (default) pushes and falls back to polling ' +
      'while Graph cannot validate the webhook or WEBHOOK_BASE_URL is unset. Idempotent. The optional body also says ' +
      "what the mailbox's mail.received events carry of the mail (body, attachment list); a PUT states the whole " +
      'watch, so one without `content` turns content off and folders it does not name stop being watched. Content ' +
      'needs Mail.Read (`permission-missing` otherwise); delivery push needs WEBHOOK_BASE_URL (`watch-not-configured`).',
    parameters: [mailboxParameter],
    requestBody: {
      name: 'WatchMailboxRequest',
      schema: watchRequestSchema,
      required: false,
      description:
        'Optional: `{ "content": { "body": "text", "maxBodyBytes": 65536, "attachments": "list" }, "folders": ["inbox", "sentitems"], "delivery": "auto" }`.',
    },
    responses: {
      200: jsonResponse('Already watched: renewed or recreated.', 'MailboxWatched', mailboxWatchedSchema),
      201: jsonResponse('Now watched.', 'MailboxWatched', mailboxWatchedSchema),
      400: problemResponse(
        'Not a mailbox address (`invalid-mailbox`), a body that is not JSON (`not-json`) or breaks the schema ' +
          '(`validation`, naming the field).',
      ),
      403: problemResponse(
        'Outside ALLOWED_WATCH_MAILBOXES (`mailbox-not-allowed`), consent missing (`admin-consent-missing`), ' +
          'content asked for without Mail.Read (`permission-missing`), or ' +
          "outside the app's Exchange scope (`mailbox-out-of-scope`).",
      ),
      413: problemResponse('The body is over 16,384 bytes (`too-large`).'),
      422: problemResponse('Exchange cannot use the mailbox (`mailbox-not-enabled`, `mailbox-not-found`).'),
      500: problemResponse('The gateway failed; `incident` names its log entry.'),
      502: problemResponse(
        "Graph could not validate the gateway's webhook (`webhook-validation-failed`) or refused (`graph-error`).",
      ),
      503: problemResponse(
        'WEBHOOK_BASE_URL is unset (`watch-not-configured`), Graph is busy (`graph-throttled`), or storage failed ' +
          'or did not answer within 5 s (`storage-unavailable`).',
        { 'Retry-After': retryAfterWhenStorage },
      ),
    },
  },
  {
    operationId: 'unwatchMailbox',
    method: 'delete',
    path: '/api/mailboxes/{mailbox}',
    auth: 'function',
    tags: ['watch'],
    summary: 'Stop watching a mailbox',
    parameters: [mailboxParameter],
    responses: {
      204: { description: 'The subscription is deleted in Graph and in storage.' },
      400: problemResponse('Not a mailbox address (`invalid-mailbox`).'),
      404: problemResponse('The mailbox is not watched (`mailbox-not-watched`).'),
      503: storageUnavailable,
    },
  },
  ...MESSAGE_OPERATIONS,
  graphWebhook('graphNotifications', '/api/graph/notifications', 'change'),
  graphWebhook('graphLifecycle', '/api/graph/lifecycle', 'lifecycle'),
  {
    operationId: 'health',
    method: 'get',
    path: '/api/health',
    auth: 'anonymous',
    tags: ['operations'],
    summary: 'Liveness: is the configuration valid?',
    description: 'Calls no Graph or Key Vault; probes table and queue storage (the answer is reused for 5 s).',
    responses: {
      200: jsonResponse('Running and configured.', 'Health', healthSchema),
      503: problemResponse(
        'Settings are missing or malformed (`configuration-invalid`; `settings` names them), or storage failed or ' +
          'did not answer within 5 s (`storage-unavailable`; `storage` names the service).',
        { 'Retry-After': retryAfterWhenStorage },
      ),
    },
  },
  {
    operationId: 'diagnostics',
    method: 'get',
    path: '/api/diagnostics',
    auth: 'admin',
    tags: ['operations'],
    summary: 'Is the deployment wired right? Key Vault, credential expiry, token, Graph permissions',
    responses: {
      200: jsonResponse('No check failed (some may warn).', 'DiagnosticsReport', diagnosticsReportSchema),
      503: jsonResponse(
        'At least one check failed; its `detail` says what to fix.',
        'DiagnosticsReport',
        diagnosticsReportSchema,
        { 'Retry-After': retryAfterWhenStorage },
      ),
    },
  },
  {
    operationId: 'problems',
    method: 'get',
    path: '/api/problems/{slug}',
    auth: 'anonymous',
    tags: ['operations'],
    summary: "Documentation of a problem type: what a problem document's `type` points to",
    description:
      'JSON by default; an HTML page when `Accept` prefers `text/html` (a browser). Every `type` the gateway answers ' +
      'with is `/api/problems/{slug}`, relative to the answer.',
    parameters: [
      {
        name: 'slug',
        in: 'path',
        description: 'The problem type, e.g. `validation`: the last segment of a `type`.',
        schema: z.string().max(64),
      },
    ],
    responses: {
      200: jsonResponse('What the problem means and what to do about it.', 'ProblemType', problemTypeDocumentSchema),
      404: problemResponse('No such problem type (`problem-type-unknown`).'),
    },
  },
  {
    operationId: 'openapi',
    method: 'get',
    path: '/api/openapi.json',
    auth: 'anonymous',
    tags: ['operations'],
    summary: 'This OpenAPI 3.1 document',
    responses: {
      200: jsonResponse(
        'The OpenAPI document of the HTTP API.',
        'OpenApiDocument',
        z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) }),
      ),
    },
  },
];
