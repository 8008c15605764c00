/**
 * The bodies the gateway answers, as zod schemas for the OpenAPI document. The handlers build these bodies from
 * TypeScript types, not from zod, so each schema is checked against its type at compile time (`satisfies`) and
 * the public OpenAPI test validates real answers against the published schemas: drift fails one or the other.
 */
import { z } from 'zod';
import type { DiagnosticsReport } from '../diagnostics/diagnostics';
import type { FieldProblem } from '../mail/sendRequest';
import type { FolderView, MailboxView } from '../watch/mailboxApi';
import { eventContentSchema } from '../watch/content/eventContent';
import { CLOUD_NAMES } from '../platform/clouds';
import { PROBLEM_TYPE_BASE, type ProblemDocument } from '../platform/problems/problem';

/** One invalid field of a `400 validation` problem. */
export const fieldProblemSchema = z
  .strictObject({
    field: z.string().meta({ description: 'JSON path of the field, e.g. `to[2].address`; empty for the whole body.' }),
    message: z.string(),
  })
  .meta({ description: 'One invalid field.' }) satisfies z.ZodType<FieldProblem>;

/** What the gateway knows about a failed Graph call (never the token or the message). */
export const graphFailureSchema = z
  .strictObject({
    code: z.string().optional().meta({ description: "Graph's error code, e.g. `ErrorSendAsDenied`." }),
    requestId: z.string().optional().meta({ description: "Graph's `request-id` of the failed call." }),
    clientRequestId: z.string().meta({ description: "The gateway's `client-request-id` of the failed call." }),
    diagnostics: z.string().optional().meta({ description: "Graph's `x-ms-diagnostics` header, when present." }),
    status: z.int().meta({ description: 'HTTP status Graph answered.' }),
  })
  .meta({ description: 'The failed Microsoft Graph call.' });

/**
 * RFC 9457 problem document (`application/problem+json`). Extension members appear only on the problems that
 * carry them; further members may be added, so clients must ignore unknown ones.
 */
export const problemDocumentSchema = z
  .looseObject({
    type: z.string().meta({
      format: 'uri-reference',
      description:
        `\`${PROBLEM_TYPE_BASE}{slug}\`, e.g. \`${PROBLEM_TYPE_BASE}validation\`: relative to the answer's URL, it is ` +
        '`GET /api/problems/{slug}` on this gateway, which documents the problem type.',
    }),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string().meta({ description: 'What went wrong and what to do about it.' }),
    errors: z
      .array(fieldProblemSchema)
      .optional()
      .meta({ description: 'Every invalid field (`validation` problems).' }),
    graph: graphFailureSchema.optional(),
    missingPermissions: z
      .array(z.string())
      .optional()
      .meta({ description: 'Microsoft Graph application permissions the token lacks.' }),
    limitBytes: z.int().optional().meta({ description: 'The size cap that was exceeded (`too-large`).' }),
    from: z.string().optional().meta({ description: 'The refused sender (`sender-not-allowed`).' }),
    incident: z.string().optional().meta({ description: "Id of the gateway's log entry (`internal`)." }),
    clientRequestId: z
      .string()
      .optional()
      .meta({ description: '`client-request-id` of a Graph call that got no answer (`graph-unreachable`).' }),
    settings: z
      .array(z.string())
      .optional()
      .meta({ description: 'Invalid settings, by name (`configuration-invalid`).' }),
  })
  .meta({ description: 'RFC 9457 problem document.' }) satisfies z.ZodType<ProblemDocument>;

const mailId = z.uuid().meta({ description: 'The outbox id of the mail; its status is at `/api/mail/{id}`.' });

/** `202` of `POST /api/mail/send`: the mail is in the outbox. */
export const sendMailQueuedSchema = z
  .strictObject({
    id: mailId,
    status: z
      .enum(['queued', 'scheduled', 'deferred', 'sending'])
      .meta({ description: '`queued`, or `scheduled` with `sendAt`; after `Prefer: wait`, where the mail got to.' }),
  })
  .meta({ description: 'The mail is stored in the outbox and will be sent; `Location` is its status URL.' });

/** `200` of `POST /api/mail/send` with `Prefer: wait` when the mail was sent in time. */
export const sendMailSentSchema = z
  .strictObject({
    id: mailId,
    status: z.literal('sent'),
    requestId: z
      .string()
      .nullable()
      .meta({ description: "Graph's `request-id` of the call that sent the message, null if Graph gave none." }),
  })
  .meta({ description: 'Exchange accepted the message; a later delivery failure arrives as a bounce.' });

/** `200` of `GET /api/mail/{id}`. */
export const mailStatusSchema = z
  .strictObject({
    id: mailId,
    status: z.enum(['queued', 'scheduled', 'deferred', 'sending', 'sent', 'failed']),
    from: z.string(),
    recipients: z.int().meta({ description: 'To + Cc + Bcc.' }),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    notBefore: z.iso
      .datetime()
      .optional()
      .meta({ description: 'Not sent before this time (`scheduled`, `deferred`, or waiting out a Retry-After).' }),
    reason: z.string().optional().meta({
      description:
        'Why the mail waits: `sendAt`, `rate` (its slot in the mailbox pace), `dailyRecipients`, `tenantExternalRecipients`, `graph 429`, ...',
    }),
    sentAt: z.iso.datetime().optional(),
    attempts: z.int().meta({ description: 'Submissions to Graph started.' }),
    requestIds: z.array(z.string()).meta({ description: "Graph's `request-id`s of this mail's calls." }),
    internetMessageId: z.string().meta({ description: 'The Message-ID the gateway gave the message.' }),
    problem: problemDocumentSchema.optional().meta({ description: 'Why the mail failed (`failed`).' }),
    bounces: z
      .array(
        z.strictObject({
          ndrMessageId: z.string().meta({ description: "The Graph id of the report in the sender's Inbox." }),
          receivedDateTime: z.string().nullable(),
          recipients: z.array(
            z.strictObject({
              address: z.string(),
              status: z.string().meta({ description: 'The enhanced status code (RFC 3463), e.g. `5.1.1`.' }),
              diagnostic: z
                .string()
                .optional()
                .meta({ description: "The server's line, e.g. `550 5.1.1 RESOLVER.ADR.RecipNotFound; not found`." }),
            }),
          ),
        }),
      )
      .optional()
      .meta({
        description:
          'Non-delivery reports that came back for the sent mail (seen in a watched Inbox, or with BOUNCE_TRACKING=on), oldest first; each also published as `mail.bounced`.',
      }),
    inReplyTo: z
      .strictObject({
        mailbox: z.string(),
        messageId: z.string().meta({ description: 'The Graph id of the message answered.' }),
        kind: z.enum(['reply', 'replyAll', 'forward']),
      })
      .optional()
      .meta({ description: 'For a reply or forward: the message it answers.' }),
    conversationId: z.string().optional().meta({
      description: "For a reply or forward, once sent: the Exchange conversation it joined (the original's).",
    }),
  })
  .meta({ description: "A mail's status in the outbox." });

/** `200` of `GET /api/health`. */
export const healthSchema = z
  .strictObject({
    status: z.literal('ok'),
    version: z.string().meta({ description: "The gateway's version (package.json)." }),
    cloud: z.enum(CLOUD_NAMES),
    uptimeSeconds: z.int().min(0),
    storage: z
      .strictObject({ table: z.enum(['ok', 'failed']), queue: z.enum(['ok', 'failed']) })
      .meta({ description: 'Whether table and queue storage answer (probed at most every few seconds).' }),
  })
  .meta({ description: 'The configuration is valid, storage answers and the worker is running.' });

const checkStatus = z.enum(['ok', 'warning', 'failed', 'skipped']);

/** One check of the diagnostics report; checks add facts (roles, expiry, thumbprint, ...) beside `detail`. */
export const diagnosticCheckSchema = z
  .looseObject({
    name: z.enum([
      'keyVault',
      'credentialExpiry',
      'token',
      'permissions',
      'watchPermission',
      'featurePermissions',
      'tableStorage',
      'queueStorage',
    ]),
    status: checkStatus,
    detail: z.string().meta({ description: 'What was found, or what to fix.' }),
  })
  .meta({ description: 'One diagnostic check and the facts it found (claims and dates, never a secret).' });

/** `GET /api/diagnostics`: the whole report (200 when nothing failed, 503 otherwise). */
export const diagnosticsReportSchema = z
  .strictObject({
    status: z.enum(['ok', 'warning', 'failed']),
    cloud: z.enum(CLOUD_NAMES),
    endpoints: z.strictObject({
      authorityHost: z.string(),
      graphBaseUrl: z.string(),
      graphScope: z.string(),
      keyVaultDnsSuffix: z.string(),
      keyVaultUrl: z.string(),
    }),
    tenantId: z.string(),
    clientId: z.string(),
    readsKeyVaultAs: z.string().meta({ description: 'The identity that reads Key Vault.' }),
    checks: z.array(diagnosticCheckSchema),
  })
  .meta({
    description: 'Wiring diagnostics: configuration, Key Vault, credential expiry, token, permissions.',
  }) satisfies z.ZodType<DiagnosticsReport>;

const renewalSchema = z.strictObject({
  at: z.string().meta({ description: 'When (ISO 8601).' }),
  outcome: z.string().meta({ description: '`created`, `renewed`, `recreated`, `reauthorized` or `failed`.' }),
  error: z.string().optional().meta({ description: "Why it failed: Graph's status, code and message." }),
});

/** One watched folder of a mailbox: its own subscription, delta catch-up and counters. */
const folderViewSchema = z
  .strictObject({
    folder: z.string().meta({ description: 'A well-known folder name (inbox, sentitems, ...) or a folder id.' }),
    mode: z.enum(['push', 'poll']).meta({ description: 'How the folder is read now.' }),
    modeReason: z.string().nullable().meta({
      description: 'Why (e.g. `webhook-validation-failed` when auto fell back to polling).',
    }),
    subscriptionId: z.string().nullable().meta({ description: "Graph's subscription id; null while polled." }),
    expirationDateTime: z.string().nullable(),
    nextReadAt: z.string().nullable().meta({
      description: 'When the folder is next read by delta: the next poll, or under push the next reconciliation.',
    }),
    reconciled: z.int().min(0).meta({
      description: 'Under push: mail the reconciliation published that no notification had announced.',
    }),
    lastRenewal: renewalSchema.nullable(),
    lastEventAt: z.string().nullable(),
    eventsPublished: z.int().min(0),
    lastCaughtUpAt: z.string().nullable(),
  })
  .meta({ description: 'One watched folder.' }) satisfies z.ZodType<FolderView>;

/** A watched mailbox (`GET /api/mailboxes/{mailbox}`); never its clientState or delta link. */
export const mailboxViewSchema = z
  .strictObject({
    mailbox: z.string(),
    subscriptionId: z
      .string()
      .nullable()
      .meta({ description: "The first folder's Graph subscription id; null while polled." }),
    expirationDateTime: z
      .string()
      .nullable()
      .meta({ description: 'When Graph deletes the subscription unless renewed; null while polled.' }),
    createdAt: z.string(),
    lastRenewal: renewalSchema.nullable(),
    lastEventAt: z.string().nullable().meta({ description: 'When the last mail.received event was published.' }),
    eventsPublished: z.int().min(0),
    lastCaughtUpAt: z.string().nullable().meta({ description: 'When the delta catch-up last completed.' }),
    content: eventContentSchema,
    delivery: z.enum(['push', 'poll', 'auto']).meta({ description: 'The delivery asked for.' }),
    mode: z.enum(['push', 'poll']).meta({ description: "The mode in force (the first folder's)." }),
    modeReason: z.string().nullable().meta({ description: 'Why that mode is in force.' }),
    reconciled: z.int().min(0).meta({
      description: 'Mail the reconciliation published that Graph never announced (all folders).',
    }),
    bounceOnly: z.literal(true).optional().meta({
      description:
        'Present when BOUNCE_TRACKING=on watches the Inbox for non-delivery reports only: `mail.bounced`, no `mail.received`. A PUT makes it a full watch.',
    }),
    folders: z.array(folderViewSchema).meta({
      description:
        "Each watched folder; the subscription fields above are the first's (the Inbox's when watched), the counters cover all.",
    }),
  })
  .meta({ description: 'A watched mailbox and its Graph subscriptions.' }) satisfies z.ZodType<MailboxView>;

/** `PUT /api/mailboxes/{mailbox}`: the view plus what the call did. */
export const mailboxWatchedSchema = mailboxViewSchema.extend({
  outcome: z.enum(['created', 'renewed', 'recreated']),
});

/** `GET /api/mailboxes`. */
export const mailboxListSchema = z.strictObject({ value: z.array(mailboxViewSchema) });

/** What `GET /api/problems/{slug}` answers in JSON: the documentation of one problem type. */
export const problemTypeDocumentSchema = z
  .strictObject({
    type: z.string().meta({ format: 'uri-reference', description: 'The type URI, as problem documents carry it.' }),
    title: z.string(),
    statuses: z.array(z.int().min(400).max(599)).meta({ description: 'HTTP statuses this type comes with.' }),
    meaning: z.string().meta({ description: 'What happened.' }),
    fix: z.string().meta({ description: 'What to do about it.' }),
  })
  .meta({ description: 'Documentation of one problem type.' });
