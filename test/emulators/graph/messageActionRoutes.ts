/**
 * Acting on one message: its MIME (`GET .../$value`), `PATCH` of what a client may change, `move` (a new id; the old
 * one then 404s), and the reply and forward drafts (`createReply`, `createReplyAll`, `createForward`) that keep the
 * thread. Changing and drafting need Mail.ReadWrite; the MIME needs Mail.Read (it holds the body).
 */
import type { Recipient } from '@microsoft/microsoft-graph-types';
import { GraphError } from './graphResponse';
import { MAIL_WRITE_ROLES } from './draftRoutes';
import { escapeHtml, convertBody } from './mailBody';
import type { NewMessage, StoredMessage } from './mailboxStore';
import {
  bodyPreference,
  FULL_READ_ROLES,
  MESSAGE_TYPE,
  messageJson,
  resolveFolder,
  resolveMessage,
} from './mailReadRoutes';
import { asObject, readMessage, readParameters } from './messageInput';
import { messageMime } from './mime';
import type { GraphRequestContext, GraphRoute } from './router';
import type { ValueStreams } from './valueStreams';

/**
 * Properties `PATCH` may set (api-reference/v1.0/api/message-update.md, "Request body"); isRead, categories and flag
 * are what a gateway changes on received mail.
 */
const UPDATABLE = new Set(
  [
    'bccRecipients',
    'body',
    'categories',
    'ccRecipients',
    'flag',
    'from',
    'importance',
    'inferenceClassification',
    'internetMessageId',
    'isDeliveryReceiptRequested',
    'isRead',
    'isReadReceiptRequested',
    'multiValueExtendedProperties',
    'replyTo',
    'sender',
    'singleValueExtendedProperties',
    'subject',
    'toRecipients',
  ].map((p) => p.toLowerCase()),
);

/**
 * Updatable only while the message is a draft (message-update.md: internetMessageId, replyTo; microsoftgraph/
 * microsoft-graph-docs#17008: `from` on a received message answers 400 ErrorInvalidPropertySet "Message is not
 * draft."). body and subject are documented draft-only too, but Exchange accepts them on sent mail
 * (microsoft-graph-docs#11012, #11542), so the emulator does as well.
 */
const DRAFT_ONLY = new Set(['from', 'internetmessageid', 'replyto']);

/** followupFlag.flagStatus values (resources/followupflag.md). */
const FLAG_STATUSES = ['notFlagged', 'complete', 'flagged'];

/** The message action routes; `$value` bodies go out through `streams`. */
export function messageActionRoutes(streams: ValueStreams): GraphRoute[] {
  const write = { roles: MAIL_WRITE_ROLES, mailbox: true } as const;
  const mime = {
    method: 'GET',
    roles: FULL_READ_ROLES,
    mailbox: true,
    handler: (ctx: GraphRequestContext) => messageValue(ctx, streams),
  } as const;
  const routes: GraphRoute[] = [{ ...mime, path: '/users/{user}/messages/{id}/$value' }];
  // Each action also exists below a folder (message-update.md, message-move.md, message-createreply.md list both
  // paths); there the message must be in that folder.
  for (const prefix of ['/users/{user}', '/users/{user}/mailFolders/{folder}']) {
    routes.push(
      { ...write, method: 'PATCH', path: `${prefix}/messages/{id}`, handler: updateMessage },
      { ...write, method: 'POST', path: `${prefix}/messages/{id}/move`, handler: moveMessage },
      { ...write, method: 'POST', path: `${prefix}/messages/{id}/createReply`, handler: (c) => draftFor(c, 'reply') },
      {
        ...write,
        method: 'POST',
        path: `${prefix}/messages/{id}/createReplyAll`,
        handler: (c) => draftFor(c, 'replyAll'),
      },
      {
        ...write,
        method: 'POST',
        path: `${prefix}/messages/{id}/createForward`,
        handler: (c) => draftFor(c, 'forward'),
      },
    );
  }
  routes.push({ ...mime, path: '/users/{user}/mailFolders/{folder}/messages/{id}/$value' });
  return routes;
}

/** The message the path names, in the path's folder when it names one. */
function targetMessage(ctx: GraphRequestContext): StoredMessage {
  const folder = ctx.params.folder === undefined ? undefined : resolveFolder(ctx.mailbox, ctx.params.folder);
  return resolveMessage(ctx.mailbox, ctx.params.id, folder);
}

/**
 * The message as MIME, streamed. concepts/outlook-get-mime-message.md and message-get.md example 4: the answer's
 * content type is `text/plain`.
 */
function messageValue(ctx: GraphRequestContext, streams: ValueStreams) {
  const parts = messageMime(targetMessage(ctx));
  return {
    status: 200,
    headers: { 'content-type': 'text/plain', 'content-length': String(parts.reduce((n, p) => n + p.length, 0)) },
    stream: streams.stream(ctx.url.pathname, parts),
  };
}

function requireJsonBody(ctx: GraphRequestContext): Record<string, unknown> {
  if (ctx.body.toString('utf8').trim() === '') {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  return asObject(ctx.readJson(), 'message');
}

function updateMessage(ctx: GraphRequestContext) {
  const patch = requireJsonBody(ctx);
  const message = targetMessage(ctx);
  for (const [name, value] of Object.entries(patch)) {
    if (name.startsWith('@')) continue;
    const lower = name.toLowerCase();
    const known = MESSAGE_TYPE.properties.some((p) => p.toLowerCase() === lower) || lower === 'attachments';
    if (known && !UPDATABLE.has(lower)) {
      // Read-only properties in a PATCH body (e.g. a whole message sent back): microsoftgraph/msgraph-sdk-dotnet#2408.
      throw new GraphError(400, 'ErrorInvalidPropertySet', 'Set action is invalid for property.');
    }
    if (DRAFT_ONLY.has(lower) && !message.isDraft) {
      throw new GraphError(400, 'ErrorInvalidPropertySet', 'Message is not draft.');
    }
    if (lower === 'flag' && value !== null) readFlag(value);
  }
  // readMessage refuses unknown properties (RequestBodyRead) and values of the wrong type, as OData does.
  const changes = readMessage(patch);
  const updated = ctx.mailbox.updateMessage(message.id, changes);
  if (!updated) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  const { bodyType, headers } = bodyPreference(ctx);
  return ctx.json(
    200,
    {
      '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages/$entity`,
      ...messageJson(updated, MESSAGE_TYPE.defaults, ctx.roles, bodyType),
    },
    headers,
  );
}

/** A followupFlag: flagStatus one of Graph's values; the dates are dateTimeTimeZone objects. */
function readFlag(value: unknown): void {
  const flag = asObject(value, 'flag');
  for (const [key, item] of Object.entries(flag)) {
    if (key.startsWith('@')) continue;
    if (key === 'flagStatus') {
      if (typeof item !== 'string' || !FLAG_STATUSES.some((s) => s.toLowerCase() === item.toLowerCase())) {
        throw new GraphError(
          400,
          'RequestBodyRead',
          `Requested value '${String(item)}' was not found. The value for enum type 'microsoft.graph.followupFlagStatus' must be one of: ${FLAG_STATUSES.join(', ')}.`,
        );
      }
      continue;
    }
    if (['startDateTime', 'dueDateTime', 'completedDateTime'].includes(key)) {
      if (item !== null) asObject(item, key);
      continue;
    }
    throw new GraphError(
      400,
      'RequestBodyRead',
      `The property '${key}' does not exist on type 'microsoft.graph.followupFlag'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
    );
  }
}

/**
 * `POST .../move { destinationId }`: a folder id or well-known name (message-move.md). Exchange gives the moved item
 * a new id and answers it (201 with the message); the old id then answers 404 ErrorItemNotFound.
 */
function moveMessage(ctx: GraphRequestContext) {
  const params = readParameters(ctx, 'move', ['destinationId']);
  const destination = params.destinationId;
  if (typeof destination !== 'string' || destination.trim() === '') {
    throw new GraphError(400, 'ErrorInvalidParameter', "The value of the parameter 'DestinationId' is empty.");
  }
  const folder = resolveFolder(ctx.mailbox, destination);
  const message = targetMessage(ctx);
  const moved = ctx.mailbox.moveMessage(message.id, folder.id);
  if (!moved) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages/$entity`,
    ...messageJson(moved, MESSAGE_TYPE.defaults, ctx.roles),
  });
}

type DraftKind = 'reply' | 'replyAll' | 'forward';

/**
 * createReply / createReplyAll / createForward (message-createreply.md, message-createreplyall.md,
 * message-createforward.md): a draft in Drafts, in the original's conversation, `RE:`/`FW:` subject, the original
 * quoted below the new text. Give either `comment` or `message.body`, not both (400); a forward needs `toRecipients`
 * as a parameter or in `message`, not both and not neither (400). Exchange sets In-Reply-To and References from
 * the original's Message-ID; the emulator keeps them as the draft's headers, so that they travel when it is sent.
 */
function draftFor(ctx: GraphRequestContext, kind: DraftKind) {
  if (/^\s*text\/plain/i.test(ctx.header('content-type') ?? '')) {
    throw new GraphError(
      501,
      'NotImplemented',
      'The Graph emulator does not implement reply and forward drafts in MIME format.',
    );
  }
  const action = { reply: 'createReply', replyAll: 'createReplyAll', forward: 'createForward' }[kind];
  const names = kind === 'forward' ? ['comment', 'message', 'toRecipients'] : ['comment', 'message'];
  // The body is optional ("This method doesn't require a request body").
  const params = ctx.body.toString('utf8').trim() === '' ? {} : readParameters(ctx, action, names);
  const original = targetMessage(ctx);
  const given: NewMessage = params.message === undefined || params.message === null ? {} : readMessage(params.message);
  const comment = params.comment;
  if (comment !== undefined && comment !== null && typeof comment !== 'string') {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `Cannot convert the literal '${JSON.stringify(comment)}' to the expected type 'Edm.String'.`,
    );
  }
  if (typeof comment === 'string' && given.body) {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      'Specify either the comment parameter or the body property of the message parameter, not both.',
    );
  }
  let forwardTo: Recipient[] | undefined;
  if (kind === 'forward') {
    const asParameter = params.toRecipients !== undefined && params.toRecipients !== null;
    const inMessage = (given.toRecipients ?? []).length > 0;
    if (asParameter === inMessage) {
      throw new GraphError(
        400,
        'ErrorInvalidRequest',
        'Specify the recipients either in the toRecipients parameter or in the toRecipients property of the message parameter.',
      );
    }
    forwardTo = asParameter
      ? (readMessage({ toRecipients: params.toRecipients }).toRecipients ?? [])
      : (given.toRecipients ?? []);
  }

  const own = ctx.user.mail.toLowerCase();
  const notMe = (r: Recipient) => (r.emailAddress?.address ?? '').toLowerCase() !== own;
  const answerTo =
    (original.replyTo ?? []).length > 0 ? (original.replyTo ?? []) : original.from ? [original.from] : [];
  let toRecipients: Recipient[];
  let ccRecipients: Recipient[] = [];
  if (kind === 'forward') toRecipients = forwardTo ?? [];
  else if (kind === 'reply') toRecipients = answerTo;
  else {
    toRecipients = dedupe([...answerTo, ...(original.toRecipients ?? []).filter(notMe)]);
    ccRecipients = dedupe((original.ccRecipients ?? []).filter(notMe));
  }

  const newPart =
    typeof comment === 'string'
      ? textAsHtml(comment)
      : given.body
        ? (convertBody(given.body, 'html').content ?? '')
        : '';
  const prefix = kind === 'forward' ? 'FW: ' : 'RE: ';
  const subject = original.subject ?? '';
  const references = [header(original, 'References'), original.internetMessageId].filter(Boolean).join(' ');
  const draft: NewMessage = {
    ...given,
    subject: given.subject ?? (subject.toUpperCase().startsWith(prefix.trim()) ? subject : `${prefix}${subject}`),
    toRecipients: kind === 'forward' ? toRecipients : (given.toRecipients ?? toRecipients),
    ccRecipients: given.ccRecipients ?? ccRecipients,
    body: { contentType: 'html', content: quoted(newPart, original) },
    uniqueBody: { contentType: 'html', content: newPart },
    conversationId: original.conversationId,
    // The message parameter's own (X-) headers stay: the draft is being created, when Graph takes them.
    internetMessageHeaders: [
      ...(given.internetMessageHeaders ?? []),
      ...(original.internetMessageId ? [{ name: 'In-Reply-To', value: original.internetMessageId }] : []),
      ...(references ? [{ name: 'References', value: references }] : []),
    ],
    // Exchange copies the original's attachments into a forward, not into a reply.
    attachments:
      kind === 'forward' ? original.attachments.map(({ id: _id, lastModifiedDateTime: _m, ...rest }) => rest) : [],
    isDraft: true,
    isRead: true,
  };
  const stored = ctx.mailbox.addMessage('drafts', draft);
  return ctx.json(201, {
    '@odata.context': `${ctx.baseUrl}/$metadata#users('${ctx.user.id}')/messages/$entity`,
    ...messageJson(stored, MESSAGE_TYPE.defaults, ctx.roles),
  });
}

function header(message: StoredMessage, name: string): string | undefined {
  return message.internetMessageHeaders.find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? undefined;
}

function dedupe(recipients: Recipient[]): Recipient[] {
  const seen = new Set<string>();
  return recipients.filter((r) => {
    const key = (r.emailAddress?.address ?? '').toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function textAsHtml(text: string): string {
  return `<div>${escapeHtml(text).replace(/\r?\n/g, '<br>')}</div>`;
}

function recipientLine(recipients: Recipient[] | null | undefined): string {
  return (recipients ?? []).map((r) => escapeHtml(r.emailAddress?.name ?? r.emailAddress?.address ?? '')).join('; ');
}

/** The new part above Outlook's quote block: a rule, the original's From/Sent/To/Cc/Subject, then its body. */
function quoted(newPart: string, original: StoredMessage): string {
  const originalHtml = convertBody(original.body, 'html').content ?? '';
  const inner = /<body[^>]*>([\s\S]*)<\/body>/i.exec(originalHtml)?.[1] ?? originalHtml;
  const from = original.from?.emailAddress;
  const lines = [
    `<b>From:</b> ${escapeHtml(from?.name ?? '')} &lt;${escapeHtml(from?.address ?? '')}&gt;`,
    `<b>Sent:</b> ${new Date(original.sentDateTime ?? original.receivedDateTime).toUTCString()}`,
    `<b>To:</b> ${recipientLine(original.toRecipients)}`,
    ...((original.ccRecipients ?? []).length > 0 ? [`<b>Cc:</b> ${recipientLine(original.ccRecipients)}`] : []),
    `<b>Subject:</b> ${escapeHtml(original.subject ?? '')}`,
  ];
  return (
    '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n<body>\r\n' +
    `${newPart}\r\n<hr style="display:inline-block;width:98%" tabindex="-1">\r\n` +
    `<div id="divRplyFwdMsg" dir="ltr">${lines.join('<br>\r\n')}</div>\r\n<div>\r\n${inner}\r\n</div>\r\n</body>\r\n</html>\r\n`
  );
}
