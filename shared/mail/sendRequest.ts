/**
 * The `POST /api/mail/send` contract: the JSON callers send, validated with zod so that every problem is reported
 * against its field (`to[2].address`, `attachments[0].contentBase64`) in one answer.
 */
import { z } from 'zod';
import { AttachmentBlob } from './attachmentBlob';
import {
  ADDRESS,
  ADDRESS_SHAPE_MESSAGE,
  addressLengthProblem,
  hasControlCharacter,
  NO_CONTROL_CHARACTERS_MESSAGE,
} from './textRules';

/** At most this many recipients in To + Cc + Bcc (Graph's and Exchange's per-message limit). */
export const MAX_RECIPIENTS = 500;

/** Attachments this large or larger go through an upload session (Graph's 3 MB boundary). */
export const UPLOAD_SESSION_THRESHOLD_BYTES = 3 * 1024 * 1024;

/** At most this many custom headers: Exchange answers more with 400 InvalidInternetMessageHeaderCollection. */
const MAX_CUSTOM_HEADERS = 5;

/** Largest attachment Graph accepts through an upload session. */
const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024;

/**
 * A `contentBase64` longer than this (characters) is decoded into a blob while the request is read, and the parsed
 * request holds an {@link AttachmentBlob} in its place: large enough that ordinary attachments (logos, small files)
 * stay strings, small enough that holding one is nothing.
 */
export const STREAMED_CONTENT_THRESHOLD = 64 * 1024;

/**
 * Deepest nesting of arrays and objects a send body may have (the body's object is level 1). A valid request nests 3
 * levels (`attachments[0].name`); the reader refuses a deeper body at the first bracket past this, unread beyond it,
 * so that no walk over the parsed value (validation, the `__proto__` check) ever sees a deep one.
 */
export const MAX_SEND_JSON_DEPTH = 32;

/** How far ahead `sendAt` may be: an outbox queue message stays hidden at most 7 days. */
export const MAX_SEND_AT_AHEAD_MS = 7 * 86_400_000;

/**
 * A `sendAt` the endpoint accepts at `now`, for messages: the next full hour at least an hour ahead, in UTC
 * (e.g. `2026-12-07T05:00:00Z`).
 */
export function exampleSendAt(now: number = Date.now()): string {
  const hour = 3_600_000;
  return new Date(Math.ceil((now + hour) / hour) * hour).toISOString().replace('.000Z', 'Z');
}

/** Whether `path` (keys and indices from the document's root) is an attachment's `contentBase64`. */
export function isAttachmentContentPath(path: readonly (string | number)[]): boolean {
  return path.length === 3 && path[0] === 'attachments' && typeof path[1] === 'number' && path[2] === 'contentBase64';
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const NO_CONTROL_CHARACTERS = { message: NO_CONTROL_CHARACTERS_MESSAGE };

/** A single-line text field: no CR, LF, NUL or other control character. */
const singleLine = (schema: z.ZodString) => schema.refine((v) => !hasControlCharacter(v), NO_CONTROL_CHARACTERS);

/** An email address (the same rules as addressProblems() in textRules.ts). */
export const address = z
  .string({ error: 'must be an email address' })
  .trim()
  // The same rules as addressProblems() (textRules.ts), written as zod checks so that the published JSON Schema
  // carries the address pattern.
  .refine((v) => !hasControlCharacter(v), NO_CONTROL_CHARACTERS)
  .regex(ADDRESS, { message: ADDRESS_SHAPE_MESSAGE })
  .superRefine((v, ctx) => {
    const problem = addressLengthProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const recipient = z.union(
  [
    address,
    z.strictObject({
      address,
      name: singleLine(z.string().max(256, { message: 'must be at most 256 characters' })).optional(),
    }),
  ],
  { error: 'must be an address string or { "address", "name" }' },
);

/** An optional list of recipients (address strings or `{ address, name }`). */
export const recipients = z.array(recipient, { error: 'must be an array of recipients' }).optional();

/** Bytes an attachment's content decodes to. */
function contentBytes(content: string | AttachmentBlob): number {
  return typeof content === 'string' ? Buffer.byteLength(content, 'base64') : content.size;
}

/** An {@link AttachmentBlob} (a class instance: JSON Schema cannot show it, see openApiDocument.ts). */
export const attachmentBlobSchema = z.instanceof(AttachmentBlob);

/**
 * An attachment's content: the base64 string, or the blob it was decoded into while the request was read (never
 * from a caller: no JSON value is an AttachmentBlob). The OpenAPI document shows the string alone.
 */
export const attachmentContentSchema = z
  .union([z.string(), attachmentBlobSchema], { error: 'is required' })
  .refine((v) => (typeof v === 'string' ? v.length % 4 === 0 && BASE64.test(v) : v.isBase64), {
    message: 'must be base64 (RFC 4648, padded, no line breaks)',
  });

/** One attachment of a request (base64 content, or the blob it was decoded into). */
export const attachment = z
  .strictObject({
    name: singleLine(
      z
        .string({ error: 'is required' })
        .min(1, { message: 'must not be empty' })
        .max(255, { message: 'must be at most 255 characters' }),
    ),
    contentType: z
      .string({ error: 'is required' })
      .regex(/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/, { message: 'must be a MIME type such as application/pdf' }),
    contentBase64: attachmentContentSchema,
    inline: z.boolean({ error: 'must be true or false' }).optional(),
    contentId: singleLine(z.string())
      .regex(/^[^\s<>]+$/, { message: 'must not contain spaces or angle brackets' })
      .max(255)
      .optional(),
  })
  .refine((a) => !a.inline || a.contentId !== undefined, {
    message: 'an inline attachment needs a contentId (referenced as cid:<contentId> in the html)',
    path: ['contentId'],
  })
  .refine((a) => contentBytes(a.contentBase64) <= MAX_ATTACHMENT_BYTES, {
    message: `must decode to at most ${MAX_ATTACHMENT_BYTES / 1024 / 1024} MB`,
    path: ['contentBase64'],
  });

/** The attachments of a request. */
export const attachmentsSchema = z
  .array(attachment, { error: 'must be an array' })
  .max(250, { message: 'at most 250 attachments' })
  .optional();

/** Custom `X-` headers: at most five, names and values as Exchange takes them. */
export const headersSchema = z
  .record(
    z.string(),
    singleLine(
      z
        .string({ error: 'header values must be strings' })
        .max(995, { message: 'header values must be at most 995 characters' }),
    ),
  )
  .superRefine((headers, ctx) => {
    const count = Object.keys(headers).length;
    if (count > MAX_CUSTOM_HEADERS) {
      ctx.addIssue({
        code: 'custom',
        message: `at most ${MAX_CUSTOM_HEADERS} headers (Exchange's limit for internetMessageHeaders; got ${count})`,
      });
    }
    for (const name of Object.keys(headers)) {
      if (!/^[Xx]-[A-Za-z0-9-]+$/.test(name)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'header names must start with X- and use letters, digits and dashes',
        });
      }
    }
  })
  .optional();

/** When to send (`sendAt`): an ISO 8601 date-time with a time zone. */
export const sendAtSchema = z.iso
  .datetime({
    offset: true,
    // The example is computed when the answer is given, so that it is always one the endpoint accepts.
    error: (issue) =>
      issue.code === 'invalid_type'
        ? 'must be an ISO 8601 date-time'
        : `must be an ISO 8601 date-time with a time zone, e.g. ${exampleSendAt()}`,
  })
  .meta({
    description:
      'When to send: an ISO 8601 date-time with a time zone (`Z` or an offset such as `+01:00`), at most 7 days ' +
      'ahead (a later one is refused with 400). Absent or past: as soon as possible.',
  })
  .optional();

/** The body of `POST /api/mail/send`. */
export const sendRequestSchema = z
  .strictObject({
    from: address,
    to: recipients,
    cc: recipients,
    bcc: recipients,
    replyTo: recipients,
    subject: singleLine(
      z.string({ error: 'must be a string' }).max(998, { message: 'must be at most 998 characters' }),
    ).default(''),
    text: z.string({ error: 'must be a string' }).optional(),
    html: z.string({ error: 'must be a string' }).optional(),
    importance: z.enum(['low', 'normal', 'high'], { error: 'must be low, normal or high' }).default('normal'),
    headers: headersSchema,
    attachments: attachmentsSchema,
    saveToSentItems: z.boolean({ error: 'must be true or false' }).default(true),
    sendAt: sendAtSchema,
  })
  .superRefine(
    (req, ctx) => {
      // Also runs when other fields failed (see `when`), so a field here may still hold what the caller sent.
      const given: Record<string, unknown> = req;
      if ((given.text === undefined) === (given.html === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['text'], message: 'give exactly one of text or html' });
      }
      const lists = [given.to, given.cc, given.bcc];
      // A list that is not an array already has its own problem; counting it as empty would add a wrong one.
      if (lists.some((list) => list !== undefined && !Array.isArray(list))) return;
      const count = lists.reduce<number>((sum, list) => sum + (Array.isArray(list) ? list.length : 0), 0);
      if (count === 0)
        ctx.addIssue({ code: 'custom', path: ['to'], message: 'at least one recipient is required in to, cc or bcc' });
      if (count > MAX_RECIPIENTS) {
        ctx.addIssue({
          code: 'custom',
          path: ['to'],
          message: `at most ${MAX_RECIPIENTS} recipients in to, cc and bcc together (got ${count})`,
        });
      }
    },
    // zod skips an object's refinements once a field has failed; these rules are the caller's to know in the same
    // 400 as the others, so they run whenever the body is an object at all.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value) },
  );

/** A recipient after validation. */
export interface Recipient {
  address: string;
  name?: string;
}

/** An attachment after validation. */
export interface Attachment {
  name: string;
  contentType: string;
  /** The base64 string, or the blob holding the decoded bytes. */
  content: string | AttachmentBlob;
  inline: boolean;
  contentId?: string;
  /** Bytes the content decodes to. */
  size: number;
}

/** A validated send request, recipients normalised to `{ address, name? }`. */
export interface SendRequest {
  from: string;
  to: Recipient[];
  cc: Recipient[];
  bcc: Recipient[];
  replyTo: Recipient[];
  subject: string;
  body: { contentType: 'text' | 'html'; content: string };
  importance: 'low' | 'normal' | 'high';
  headers: Record<string, string>;
  attachments: Attachment[];
  saveToSentItems: boolean;
  /** Epoch ms before which the outbox does not send the mail (the caller's `sendAt`). */
  sendAt?: number;
  /**
   * The message's `internetMessageId`, set by the outbox (never by the caller) so that Sent Items can later tell
   * whether an interrupted attempt reached Exchange.
   */
  internetMessageId?: string;
  /** What the mail answers, for a reply or forward (POST /api/mailboxes/{mailbox}/messages/{id}/reply|forward). */
  thread?: ThreadRef;
}

/** How a mail answers a received message: the Graph draft action it is built with, and the original's id. */
export interface ThreadRef {
  kind: 'reply' | 'replyAll' | 'forward';
  /** The Graph id of the message answered, in the sending mailbox. */
  messageId: string;
}

/** One field-level problem. */
export interface FieldProblem {
  /** JSON path of the field, e.g. `to[2].address`; empty for the whole body. */
  field: string;
  message: string;
}

/** What validating a JSON body against a schema found: the parsed value, or every field problem. */
export type Validated<T> = { ok: true; data: T } | { ok: false; problems: FieldProblem[] };

/** Validates a decoded JSON body against `schema`, refusing `__proto__` keys first. */
export function validateBody<T>(schema: z.ZodType<T>, json: unknown): Validated<T> {
  // JSON.parse makes "__proto__" an own key; copied into an object it would set the prototype and vanish.
  const prototypeKeys = prototypeKeyPaths(json);
  if (prototypeKeys.length > 0) {
    return {
      ok: false,
      problems: prototypeKeys.map((path) => ({
        field: fieldPath(path),
        message: "'__proto__' is not allowed as a key",
      })),
    };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => ({ field: fieldPath(issue.path), message: issue.message })),
    };
  }
  return { ok: true, data: parsed.data };
}

/** Recipients as validated, normalised to `{ address, name? }`. */
export function normaliseRecipients(list: z.infer<typeof recipients>): Recipient[] {
  return (list ?? []).map((entry) => (typeof entry === 'string' ? { address: entry } : entry));
}

/** Attachments as validated, with their decoded sizes. */
export function normaliseAttachments(list: z.infer<typeof attachmentsSchema>): Attachment[] {
  return (list ?? []).map((a) => ({
    name: a.name,
    contentType: a.contentType,
    content: a.contentBase64,
    inline: a.inline ?? false,
    contentId: a.contentId,
    size: contentBytes(a.contentBase64),
  }));
}

/** The body a request gives: exactly one of `text` and `html` (the schema's refinement made sure). */
export function bodyOf(r: { text?: string; html?: string }): SendRequest['body'] {
  return r.html !== undefined
    ? { contentType: 'html', content: r.html }
    : { contentType: 'text', content: r.text ?? '' };
}

/** Parses and validates a decoded JSON body. */
export function parseSendRequest(
  json: unknown,
): { ok: true; request: SendRequest } | { ok: false; problems: FieldProblem[] } {
  const parsed = validateBody(sendRequestSchema, json);
  if (!parsed.ok) return parsed;
  const r = parsed.data;
  return {
    ok: true,
    request: {
      from: r.from.toLowerCase(),
      to: normaliseRecipients(r.to),
      cc: normaliseRecipients(r.cc),
      bcc: normaliseRecipients(r.bcc),
      replyTo: normaliseRecipients(r.replyTo),
      subject: r.subject,
      body: bodyOf(r),
      importance: r.importance,
      headers: r.headers ?? {},
      attachments: normaliseAttachments(r.attachments),
      saveToSentItems: r.saveToSentItems,
      ...(r.sendAt !== undefined ? { sendAt: Date.parse(r.sendAt) } : {}),
    },
  };
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    '',
  );
}

/** Paths of every own `__proto__` key in a decoded JSON value (depth-first, iterative: any nesting depth). */
function prototypeKeyPaths(json: unknown): PropertyKey[][] {
  const found: PropertyKey[][] = [];
  const stack: { value: unknown; path: PropertyKey[] }[] = [{ value: json, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (!value || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: [...path, i] }));
      continue;
    }
    for (const key of Object.keys(value)) {
      if (key === '__proto__') found.push([...path, key]);
      else stack.push({ value: (value as Record<string, unknown>)[key], path: [...path, key] });
    }
  }
  return found;
}
