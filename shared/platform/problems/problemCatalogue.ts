/**
 * Every problem type the gateway can answer, with what it means and what to do about it: the one list the
 * problem documents' `type` URIs point into (`GET /api/problems/{slug}`). `problem()` takes only a slug from here,
 * so a new problem type does not compile until it has an entry.
 */

/** What the documentation of one problem type says. */
export interface ProblemTypeEntry {
  /** A short, general title (an answer's own `title` may be more specific). */
  readonly title: string;
  /** HTTP statuses this type is answered with (or recorded with, for a mail's final failure). */
  readonly statuses: readonly number[];
  /** What happened. */
  readonly meaning: string;
  /** What the caller or the operator does about it. */
  readonly fix: string;
}

const entries = {
  validation: {
    title: 'The request is invalid',
    statuses: [400],
    meaning:
      'The request (a send, its Idempotency-Key header, or the body of a watch request) broke the API contract. `errors` lists every invalid field with its JSON path and what is wrong with it.',
    fix: 'Correct each field named in `errors` and send again; the OpenAPI document (`/api/openapi.json`) has the schema.',
  },
  'not-json': {
    title: 'The body is not a JSON object',
    statuses: [400],
    meaning: 'The body is not valid JSON, is JSON but not an object, or was cut off.',
    fix: 'Send one JSON object as the body, with `Content-Type: application/json`.',
  },
  'unsupported-media-type': {
    title: 'The body must be JSON',
    statuses: [415],
    meaning: 'The request has a Content-Type other than `application/json`.',
    fix: 'Send the body as `application/json`.',
  },
  'too-deep': {
    title: 'The JSON nests too deep',
    statuses: [400],
    meaning:
      'The body nests arrays and objects deeper than the gateway reads (`maxDepth`, 32 levels; a send request nests 3). It was refused at the first bracket past the limit, unread beyond it.',
    fix: 'Send the request as the OpenAPI document describes it; no field of a mail nests deeper than a few levels.',
  },
  'unsupported-content-encoding': {
    title: 'The body must not be compressed',
    statuses: [415],
    meaning:
      'The request has a Content-Encoding (gzip, br, deflate, ...) the gateway does not decode; it takes identity only (`Accept-Encoding: identity`).',
    fix: 'Send the JSON uncompressed, without a Content-Encoding header.',
  },
  'too-large': {
    title: 'Too large',
    statuses: [413],
    meaning:
      'The request body is over the gateway limit (`limitBytes`; MAX_SEND_REQUEST_MB for sends, 4 MB for Graph notifications), or Exchange refused the message as larger than the mailbox may send.',
    fix: 'Send less: fewer or smaller attachments. For Exchange limits, an Exchange admin can raise the mailbox maximum send size (35 MB by default, up to 150 MB).',
  },
  'sender-not-allowed': {
    title: 'This mailbox may not be sent from',
    statuses: [403],
    meaning: "`from` is not in the gateway's allow-list (ALLOWED_SENDERS).",
    fix: 'Send from a permitted mailbox, or ask the operator to add this one to ALLOWED_SENDERS.',
  },
  'idempotency-key-reused': {
    title: 'Idempotency-Key reused with a different request',
    statuses: [409],
    meaning: 'A request with this Idempotency-Key was accepted before, with a different body.',
    fix: "Use a new Idempotency-Key for a new mail; repeat the original body to learn the first request's outcome.",
  },
  'idempotency-key-in-progress': {
    title: 'A request with this Idempotency-Key is still being processed',
    statuses: [409],
    meaning: 'Another request with the same Idempotency-Key has not finished yet.',
    fix: 'Retry after the time in `Retry-After`.',
  },
  'admin-consent-missing': {
    title: 'The gateway lacks a Microsoft Graph permission',
    statuses: [403, 502],
    meaning:
      'The gateway token does not carry a Microsoft Graph application permission it needs (`missingPermissions`), or Graph says the token carries none.',
    fix: "In Entra ID, grant admin consent for the app registration's Microsoft Graph application permissions (Mail.Send, Mail.ReadWrite, User.Read.All), then check `/api/diagnostics`.",
  },
  'permission-missing': {
    title: 'The gateway lacks the Microsoft Graph permission this feature needs',
    statuses: [403],
    meaning:
      "The app's token does not carry the Microsoft Graph application permission the asked-for feature or call needs (`missingPermissions`): Mail.ReadBasic.All to list messages, Mail.Read to read bodies, attachments and MIME (also for content in events), Mail.ReadWrite to change, move or delete. Found from the token (GRAPH_PERMISSION_CHECK=token) before Graph was called.",
    fix: 'Grant the named application permission in Entra ID (App registrations > API permissions) and admin consent (or the Exchange RBAC for Applications role, infra/Set-MailboxScope.ps1), or do without the feature; `/api/diagnostics` lists what each feature needs.',
  },
  'graph-access-denied': {
    title: 'Microsoft Graph denied access',
    statuses: [403],
    meaning: 'Graph refused the call with Access Denied for this mailbox.',
    fix: "Check the app's permissions and its Exchange application access scope (infra/Set-MailboxScope.ps1); `/api/diagnostics` names what is missing.",
  },
  'send-as-denied': {
    title: 'Send-As denied',
    statuses: [403],
    meaning: 'Exchange refused to send as the mailbox in `from`.',
    fix: 'Grant Send-As (or Send on behalf) on that mailbox, or send from the mailbox itself.',
  },
  'mailbox-out-of-scope': {
    title: 'The app may not use this mailbox',
    statuses: [403],
    meaning:
      'The mailbox is outside the app Exchange application access scope (RBAC for Applications or an application access policy).',
    fix: 'Add the mailbox to the scope (infra/Set-MailboxScope.ps1), or use a mailbox inside it.',
  },
  'mailbox-not-enabled': {
    title: 'The mailbox cannot be used through Graph',
    statuses: [422],
    meaning: 'The mailbox is inactive, soft-deleted, on-premises or has no Exchange Online licence.',
    fix: 'Use a cloud mailbox with an Exchange Online licence.',
  },
  'mailbox-not-found': {
    title: 'No such mailbox',
    statuses: [422],
    meaning: 'The tenant has no mailbox with this address.',
    fix: 'Check the address for typos; use an existing mailbox of the tenant.',
  },
  'invalid-recipient': {
    title: 'Exchange refused a recipient',
    statuses: [422],
    meaning: 'Exchange refused one or more recipient addresses; `detail` has its message.',
    fix: 'Correct the recipient addresses and send again.',
  },
  'invalid-header': {
    title: 'Exchange refused a header',
    statuses: [422],
    meaning: 'Exchange refused a custom `X-` header; `detail` has its message.',
    fix: 'Correct or drop the header and send again.',
  },
  'graph-throttled': {
    title: 'Microsoft Graph is throttling',
    statuses: [503],
    meaning:
      'Graph kept answering 429/503/504 beyond the gateway wait budget (GRAPH_MAX_WAIT_SECONDS). Nothing was sent.',
    fix: 'Retry after the time in `Retry-After`; send less often from the same mailbox.',
  },
  'graph-auth-failed': {
    title: "Microsoft Graph refused the gateway's token",
    statuses: [502],
    meaning: "Graph answered 401 to the gateway's token.",
    fix: 'Run `/api/diagnostics`: it checks the credential, the token and its roles and says what to fix.',
  },
  'graph-forbidden': {
    title: 'Microsoft Graph refused',
    statuses: [403],
    meaning: 'Graph answered 403 for a reason other than the mailbox scope; `graph` has its code and request id.',
    fix: "Check the app's permissions with `/api/diagnostics`; quote `graph.requestId` to Microsoft support if it persists.",
  },
  'graph-error': {
    title: 'Microsoft Graph refused the request',
    statuses: [502],
    meaning:
      'Graph answered with an error the gateway has no more specific type for; `graph` has its status, code and request id.',
    fix: 'Read `detail` and `graph`; retry if it was transient, quote `graph.requestId` to Microsoft support if not.',
  },
  'graph-unreachable': {
    title: 'Microsoft Graph could not be reached',
    statuses: [502],
    meaning: 'The gateway got no answer from Graph (network, DNS, TLS or timeout).',
    fix: "Retry later; if it persists, check the app's outbound network (VNet, NAT, firewall) to Graph.",
  },
  'key-vault-unavailable': {
    title: 'The gateway cannot read its credential from Key Vault',
    statuses: [503],
    meaning: 'Key Vault did not answer, or refused the managed identity. Nothing was sent.',
    fix: 'Check `/api/diagnostics`: KEY_VAULT_URL, the Key Vault Secrets User role of the identity, and network access to the vault.',
  },
  'credential-invalid': {
    title: 'The credential in Key Vault cannot be used',
    statuses: [503],
    meaning: 'The certificate or secret named APP_CREDENTIAL_NAME is missing, malformed or expired. Nothing was sent.',
    fix: 'Upload a valid certificate (or secret) under APP_CREDENTIAL_NAME and register it on the app registration; `/api/diagnostics` says which.',
  },
  'entra-token-failed': {
    title: 'Entra ID did not issue the gateway a token',
    statuses: [503],
    meaning:
      'Entra ID refused or did not answer the token request (wrong tenant or client id, unknown credential, outage). Nothing was sent.',
    fix: 'Check ENTRA_TENANT_ID, ENTRA_CLIENT_ID and that the credential is registered on the app; `/api/diagnostics` names the Entra error.',
  },
  'storage-unavailable': {
    title: 'The gateway cannot use its storage account',
    statuses: [503],
    meaning:
      'The storage account (tables, queues, blobs) did not answer in time or refused the identity. Nothing accepted was lost.',
    fix: 'Retry after the time in `Retry-After`; if it persists, check the storage account, its roles for the identity and its network access.',
  },
  'watch-busy': {
    title: 'The mailbox is being changed',
    statuses: [503],
    meaning:
      "Another request (on this or another instance) is creating, replacing or deleting this mailbox's subscription, and did not finish while this one waited. One mailbox has at most one subscription, so changes to it take turns.",
    fix: "Retry after the time in `Retry-After`; the request then finds the other one's result.",
  },
  'configuration-invalid': {
    title: 'The gateway is not configured',
    statuses: [503],
    meaning: 'App settings are missing or malformed; `settings` names them.',
    fix: "Set the named app settings on the Function App (see the README's settings table) and restart it.",
  },
  internal: {
    title: 'The gateway failed',
    statuses: [500],
    meaning: 'An unexpected error in the gateway. `incident` is the id of its log entry.',
    fix: 'Retry; report the `incident` id to the operator, who finds the details in the logs.',
  },
  'mail-not-found': {
    title: 'No such mail',
    statuses: [404],
    meaning: 'The outbox holds no mail with this id (never accepted, or removed after its retention).',
    fix: 'Use the status URL the send answered with.',
  },
  'outbox-expired': {
    title: 'The mail was not sent in time',
    statuses: [504],
    meaning: 'The outbox could not send the mail within OUTBOX_MAX_AGE_HOURS of when it became due. It was not sent.',
    fix: 'Send it again if it is still wanted; look in the logs for why earlier attempts failed.',
  },
  'outbox-retries-exhausted': {
    title: 'The gateway could not process the mail',
    statuses: [503],
    meaning: 'Processing the mail failed on every retry before any attempt reached Graph. It was not sent.',
    fix: 'Fix the cause named in `detail`, then send the mail again.',
  },
  'outcome-unknown': {
    title: 'The outcome of the send is unknown',
    statuses: [502, 503],
    meaning:
      'An attempt may have reached Graph, and the gateway could not confirm whether Exchange accepted it, so it was not sent again (to avoid a duplicate).',
    fix: "Check the recipients or the mailbox's Sent Items before sending again.",
  },
  'outbox-payload-invalid': {
    title: 'The stored request is no longer valid',
    statuses: [500],
    meaning:
      'The request stored in the outbox could not be read back (for example, a staged attachment is gone). It was not sent.',
    fix: 'Send the mail again.',
  },
  'too-many-recipients-per-day': {
    title: 'More recipients than the mailbox may send to in a day',
    statuses: [422],
    meaning: 'The mail alone has more recipients than MAILBOX_RECIPIENTS_PER_DAY allows, so it could never be sent.',
    fix: 'Split the mail into smaller ones, or send from another mailbox.',
  },
  'too-many-external-recipients-per-day': {
    title: 'More external recipients than the tenant may send to in a day',
    statuses: [422],
    meaning:
      'The mail alone has more recipients outside TENANT_DOMAINS than TENANT_EXTERNAL_RECIPIENTS_PER_DAY allows, so it could never be sent.',
    fix: 'Split the mail into smaller ones sent over several days, or raise TENANT_EXTERNAL_RECIPIENTS_PER_DAY if the tenant has more licences.',
  },
  'method-not-allowed': {
    title: 'Method not allowed',
    statuses: [405],
    meaning: 'The route does not support this HTTP method.',
    fix: 'Use one of the methods the OpenAPI document (`/api/openapi.json`) lists for the route.',
  },
  'mailbox-missing': {
    title: 'Mailbox missing',
    statuses: [400],
    meaning: 'The route needs a mailbox address and none was given.',
    fix: 'Name the mailbox: `/api/mailboxes/{address}`.',
  },
  'invalid-mailbox': {
    title: 'Not a mailbox address',
    statuses: [400],
    meaning: 'The mailbox in the path is not a valid email address.',
    fix: "Use the mailbox's SMTP address, URL-encoded.",
  },
  'invalid-message-id': {
    title: 'Not a message id',
    statuses: [400],
    meaning:
      "A message or attachment id in the path is empty, too long, or has characters outside Graph's id alphabet; Graph was not called.",
    fix: 'Use the id exactly as an event, a listing or a message answered it, URL-encoded.',
  },
  'invalid-message-request': {
    title: 'The request is invalid',
    statuses: [400],
    meaning:
      'A query parameter or body field of the message API is invalid (`errors` names each one): a `top` outside 1..100, a `since` that is not an ISO 8601 date-time, an unknown `body` choice, an unknown PATCH field or flag, a folder that is not a folder name or id. Graph was not called.',
    fix: 'Correct each field named in `errors`; the OpenAPI document (`/api/openapi.json`) describes every parameter.',
  },
  'invalid-cursor': {
    title: 'Not a valid cursor',
    statuses: [400],
    meaning:
      "The listing's `cursor` is not one this gateway handed out for this mailbox (changed, cut, or from another mailbox's listing). Graph was not called.",
    fix: 'Pass `nextCursor` exactly as a listing of the same mailbox answered it, or start the listing again without a cursor.',
  },
  'message-not-found': {
    title: 'No such message',
    statuses: [404],
    meaning:
      'Graph holds no message (or attachment) with this id in the mailbox (`ErrorItemNotFound`): it was moved (a move gives a message a new id), deleted, or the id belongs to another mailbox.',
    fix: 'Use the id a listing, an event or a move answered most recently; after a move use the new id the move answered.',
  },
  'attachment-is-link': {
    title: 'The attachment is a link',
    statuses: [422],
    meaning:
      'The attachment is a reference attachment: a link to a file stored elsewhere (OneDrive, SharePoint), not bytes in the message. Graph v1.0 does not give its address, so the gateway names it (`attachment`) instead of downloading it.',
    fix: 'Open the message in Outlook to follow the link, or ask the sender to attach the file itself.',
  },
  'mailbox-not-readable': {
    title: "This mailbox's mail may not be read",
    statuses: [403],
    meaning: 'The mailbox is not in ALLOWED_READ_MAILBOXES; Graph was not called.',
    fix: 'Use a permitted mailbox, or ask the operator to add it (or its *@domain) to ALLOWED_READ_MAILBOXES.',
  },
  'mailbox-not-allowed': {
    title: 'This mailbox may not be watched',
    statuses: [403],
    meaning: 'The mailbox is not in ALLOWED_WATCH_MAILBOXES.',
    fix: 'Watch a permitted mailbox, or ask the operator to add it to ALLOWED_WATCH_MAILBOXES.',
  },
  'mailbox-not-watched': {
    title: 'Mailbox not watched',
    statuses: [404],
    meaning: 'The gateway does not watch this mailbox.',
    fix: 'Watch it first with `PUT /api/mailboxes/{mailbox}`.',
  },
  'watch-not-configured': {
    title: 'Watching is not configured',
    statuses: [503],
    meaning: 'Watching by push was asked for, but WEBHOOK_BASE_URL (the origin Graph calls back) is not set.',
    fix: 'Set WEBHOOK_BASE_URL on the Function App and restart it, or watch with delivery poll or auto (polling).',
  },
  'webhook-validation-failed': {
    title: "Graph could not validate the gateway's webhook",
    statuses: [502],
    meaning: 'Graph refused to create the subscription because its validation request to WEBHOOK_BASE_URL failed.',
    fix: "Make WEBHOOK_BASE_URL the app's public https origin, reachable from the internet, and try again.",
  },
  'not-a-graph-notification': {
    title: 'Not a Microsoft Graph notification',
    statuses: [400],
    meaning: "The body sent to a Graph webhook route is not Graph's notification collection.",
    fix: 'Nothing, if you are not Microsoft Graph: these routes are for Graph only.',
  },
  'problem-type-unknown': {
    title: 'No such problem type',
    statuses: [404],
    meaning: 'The gateway has no problem type with this name.',
    fix: 'Use the `type` of a problem document the gateway answered with.',
  },
} satisfies Record<string, ProblemTypeEntry>;

/** The name of a problem type: the last segment of its `type` URI. */
export type ProblemSlug = keyof typeof entries;

/** Every problem type, by slug. */
export const PROBLEM_CATALOGUE: Readonly<Record<ProblemSlug, ProblemTypeEntry>> = entries;

/** The entry of `slug`, or undefined for a name that is not a problem type. */
export function problemTypeEntry(slug: string): ProblemTypeEntry | undefined {
  return Object.prototype.hasOwnProperty.call(PROBLEM_CATALOGUE, slug)
    ? PROBLEM_CATALOGUE[slug as ProblemSlug]
    : undefined;
}
