/**
 * The HTTP API's route table: one entry per operation the functions register. A new HTTP function gets an entry
 * here (method, path, auth level, its request schema, its answers); the public OpenAPI test fails while the
 * functions the host registers and this table disagree.
 */
import { z } from 'zod';
import { sendRequestSchema } from '../mail/sendRequest';
import { jsonResponse, problemResponse, type OperationSpec } from './operationSpec';
import { diagnosticsReportSchema, healthSchema, sendMailAcceptedSchema } from './responseSchemas';

const retryAfter = {
  description: 'Seconds to wait before retrying.',
  required: true,
  schema: z.int().min(1),
};

/** Every operation of the HTTP API. */
export const OPERATIONS: readonly OperationSpec[] = [
  {
    operationId: 'sendMail',
    method: 'post',
    path: '/api/mail/send',
    auth: 'function',
    tags: ['mail'],
    summary: 'Send a mail as a permitted mailbox',
    description:
      'Validates the request, applies the sender policy (ALLOWED_SENDERS) and sends through Microsoft Graph as ' +
      'the `from` mailbox: one sendMail call, or a draft with upload sessions for attachments of 3 MB or more.',
    parameters: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        description:
          'A repeat with the same key and body gets the first answer without sending again; the same key with ' +
          'another body is 409.',
        // The handler's rule (shared/mail/sendMailHandler.ts): 1 to 255 visible ASCII characters.
        schema: z.string().regex(/^[\x21-\x7e]{1,255}$/),
      },
    ],
    requestBody: {
      name: 'SendMailRequest',
      schema: sendRequestSchema,
      // The schema's refinements have no JSON Schema form; the 400 answer enforces them.
      description:
        'The message to send. Also required: exactly one of `text` and `html`; 1 to 500 recipients in `to`, `cc` ' +
        'and `bcc` together; a `contentId` on every inline attachment; header names starting with `X-`.',
    },
    responses: {
      202: jsonResponse('Exchange accepted the message.', 'SendMailAccepted', sendMailAcceptedSchema, {
        'idempotent-replayed': {
          description: '`true` when this is the stored answer of an earlier request with the same Idempotency-Key.',
          schema: z.literal('true'),
        },
      }),
      400: problemResponse(
        'The body is not a JSON object (`not-json`), or fields are invalid (`validation`, every one listed in `errors`).',
      ),
      403: problemResponse(
        'The sender is not allowed (`sender-not-allowed`), Exchange refused Send-As (`send-as-denied`), or the ' +
          "mailbox is outside the app's Exchange scope (`mailbox-out-of-scope`, `graph-access-denied`).",
      ),
      409: problemResponse(
        'The Idempotency-Key was used with another body (`idempotency-key-reused`), or its first request is still ' +
          'running (`idempotency-key-in-progress`, with Retry-After).',
      ),
      413: problemResponse('The body exceeds MAX_SEND_REQUEST_MB, or Graph refused the message as too large.'),
      415: problemResponse('The body is not declared as JSON.'),
      422: problemResponse(
        'Exchange cannot use the mailbox (`mailbox-not-enabled`, `mailbox-not-found`) or refused a recipient or ' +
          'header (`invalid-recipient`, `invalid-header`).',
      ),
      500: problemResponse('The gateway failed; `incident` names its log entry. Nothing was sent.'),
      502: problemResponse(
        'Microsoft Graph refused the gateway (`admin-consent-missing`, `graph-auth-failed`, `graph-error`) or ' +
          'could not be reached (`graph-unreachable`). Nothing was sent.',
      ),
      503: problemResponse('Graph kept throttling past GRAPH_MAX_WAIT_SECONDS (`graph-throttled`). Nothing was sent.', {
        'Retry-After': retryAfter,
      }),
    },
  },
  {
    operationId: 'health',
    method: 'get',
    path: '/api/health',
    auth: 'anonymous',
    tags: ['operations'],
    summary: 'Liveness: is the configuration valid?',
    description: 'Calls no Graph, Key Vault or storage.',
    responses: {
      200: jsonResponse('Running and configured.', 'Health', healthSchema),
      503: problemResponse('Settings are missing or malformed (`configuration-invalid`); `settings` names them.'),
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
      ),
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
