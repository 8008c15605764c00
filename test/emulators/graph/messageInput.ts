/**
 * Reads a message resource a client wrote (sendMail's `message`, a new draft, an attachment) the way Graph's OData
 * reader and Exchange judge it: unknown properties, wrong types, malformed addresses, non-`x-` internet headers and
 * bad base64 are refused with Graph's errors instead of being stored, so the product finds out here and not from a
 * customer's tenant. Property names are matched case-insensitively, as Graph does.
 */
import type { FileAttachment, InternetMessageHeader, Recipient } from '@microsoft/microsoft-graph-types';
import { GraphError } from './graphResponse';
import type { NewMessage, StoredMessage } from './mailboxStore';
import type { GraphRequestContext } from './router';

/** Type tag of the only attachment kind the emulator implements. */
export const FILE_ATTACHMENT_TYPE = '#microsoft.graph.fileAttachment';

/** Attachment kinds Graph has but the emulator does not implement (refused loudly with 501). */
const UNIMPLEMENTED_ATTACHMENT_TYPES = ['#microsoft.graph.itemAttachment', '#microsoft.graph.referenceAttachment'];

/** Exchange Online's cap on To + Cc + Bcc of one message. */
export const MAX_RECIPIENTS = 500;

/** Exchange's cap on custom internet headers per message. */
export const MAX_INTERNET_HEADERS = 5;

/** Largest attachment accepted inline (sendMail, POST .../attachments); larger ones need an upload session. */
export const MAX_INLINE_ATTACHMENT_BYTES = 3 * 1024 * 1024;

/** The MAPI property PidTagDeleteAfterSubmit: when true, Exchange keeps no Sent Items copy of the sent message. */
export const DELETE_AFTER_SUBMIT_PROPERTY = 'Boolean 0x0E01';

/** A file attachment as read from a request: type tag and decoded-size already checked. */
export type FileAttachmentInput = FileAttachment & { '@odata.type': string; name: string; contentBytes: string };

/** A recipient after reading: `name` defaults to the address, as Exchange displays unresolved names. */
export type RecipientInput = Recipient & { emailAddress: { name: string; address: string } };

// Properties of microsoft.graph.message a client may write, by lower-case name.
const WRITABLE = [
  'subject',
  'body',
  'toRecipients',
  'ccRecipients',
  'bccRecipients',
  'replyTo',
  'from',
  'sender',
  'importance',
  'internetMessageHeaders',
  'internetMessageId',
  'attachments',
  'singleValueExtendedProperties',
  'multiValueExtendedProperties',
  'isDeliveryReceiptRequested',
  'isReadReceiptRequested',
  'isRead',
  'categories',
  'flag',
  'inferenceClassification',
];

// Properties that exist on the type but the server owns; OData accepts them in a payload and the server ignores them.
const SERVER_SET = [
  'id',
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'parentFolderId',
  'conversationId',
  'conversationIndex',
  'hasAttachments',
  'webLink',
  'bodyPreview',
  'uniqueBody',
  'receivedDateTime',
  'sentDateTime',
  'isDraft',
];

const CANONICAL = new Map([...WRITABLE, ...SERVER_SET].map((name) => [name.toLowerCase(), name]));

/**
 * Reads a message resource. Recipients may be empty (drafts); {@link assertSubmittable} applies the sending rules.
 * Throws {@link GraphError} with Graph's code on anything Graph would refuse.
 */
export function readMessage(value: unknown): NewMessage {
  const source = asObject(value, 'message');
  const message: Record<string, unknown> = {};
  for (const [rawName, rawValue] of Object.entries(source)) {
    if (rawName.startsWith('@')) {
      if (rawName === '@odata.type' && rawValue !== '#microsoft.graph.message') {
        throw unresolvableType(String(rawValue));
      }
      continue;
    }
    const name = CANONICAL.get(rawName.toLowerCase());
    if (!name) {
      throw new GraphError(
        400,
        'RequestBodyRead',
        `The property '${rawName}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      );
    }
    if (rawValue === null || SERVER_SET.includes(name)) continue;
    message[name] = readProperty(name, rawValue);
  }
  return message;
}

/** Reads one file attachment (sendMail's `attachments`, a draft's, or `POST .../attachments`). */
export function readFileAttachment(value: unknown): FileAttachmentInput {
  const source = asObject(value, 'attachment');
  const type = source['@odata.type'];
  if (typeof type !== 'string' || type === '') {
    // microsoft.graph.attachment is abstract: without a type tag OData cannot pick the concrete one.
    throw new GraphError(
      400,
      'RequestBodyRead',
      "An attachment needs '@odata.type': '#microsoft.graph.fileAttachment' (microsoft.graph.attachment is abstract).",
    );
  }
  if (UNIMPLEMENTED_ATTACHMENT_TYPES.includes(type)) {
    throw new GraphError(501, 'NotImplemented', `The Graph emulator does not implement attachments of type '${type}'.`);
  }
  if (type !== FILE_ATTACHMENT_TYPE) throw unresolvableType(type);
  const name = optionalString(source, 'name');
  if (name === undefined || name === '') {
    throw new GraphError(400, 'ErrorRequiredPropertyMissing', 'Required property is missing.');
  }
  const contentBytes = optionalString(source, 'contentBytes');
  if (contentBytes === undefined) {
    throw new GraphError(400, 'ErrorRequiredPropertyMissing', 'Required property is missing.');
  }
  const bytes = decodeBase64(contentBytes, 'contentBytes');
  const isInline = optionalBoolean(source, 'isInline') ?? false;
  const contentId = optionalString(source, 'contentId');
  const contentType = optionalString(source, 'contentType') ?? 'application/octet-stream';
  return {
    '@odata.type': FILE_ATTACHMENT_TYPE,
    name,
    contentType,
    size: bytes.length,
    isInline,
    ...(contentId !== undefined ? { contentId } : {}),
    contentBytes: bytes.toString('base64'),
  };
}

/**
 * Decodes base64 as .NET's Convert.FromBase64String does: standard alphabet, padding to a multiple of four, whitespace
 * ignored. base64url (`-`, `_`) is refused, because Exchange refuses it.
 */
export function decodeBase64(text: string, property: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `Invalid value for property '${property}': the value is not a valid base-64 string.`,
    );
  }
  return Buffer.from(compact, 'base64');
}

/** To, Cc and Bcc recipients of a message. */
export function allRecipients(
  message: Pick<NewMessage, 'toRecipients' | 'ccRecipients' | 'bccRecipients'>,
): Recipient[] {
  return [...(message.toRecipients ?? []), ...(message.ccRecipients ?? []), ...(message.bccRecipients ?? [])];
}

/** Applies Exchange's submission rules: at least one and at most 500 recipients. */
export function assertSubmittable(message: NewMessage | StoredMessage): void {
  const count = allRecipients(message).length;
  if (count === 0) {
    throw new GraphError(
      400,
      'ErrorInvalidRecipients',
      "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
    );
  }
  if (count > MAX_RECIPIENTS) {
    // Exchange Online's recipient limit; the wording follows its NDR, since Graph documents no synchronous error.
    throw new GraphError(
      400,
      'ErrorInvalidRecipients',
      `This message wasn't delivered to anyone because there are too many recipients. The limit is ${MAX_RECIPIENTS}. This message has ${count} recipients.`,
    );
  }
}

/** True when the message carries PidTagDeleteAfterSubmit = true (no Sent Items copy after sending). */
export function deletesAfterSubmit(message: NewMessage | StoredMessage): boolean {
  return (message.singleValueExtendedProperties ?? []).some(
    (p) =>
      (p.id ?? '').replace(/\s+/g, ' ').trim().toLowerCase() === DELETE_AFTER_SUBMIT_PROPERTY.toLowerCase() &&
      (p.value ?? '').trim().toLowerCase() === 'true',
  );
}

/** Whether `address` has the shape Exchange can resolve as an SMTP address. */
export function looksLikeAddress(address: string): boolean {
  return /^[^\s@<>()[\],;:"\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(address);
}

function readProperty(name: string, value: unknown): unknown {
  switch (name) {
    case 'toRecipients':
    case 'ccRecipients':
    case 'bccRecipients':
    case 'replyTo':
      return readRecipients(value, name);
    case 'from':
    case 'sender':
      return readRecipient(value, name);
    case 'body':
      return readBody(value);
    case 'importance':
      return readEnum(value, name, ['low', 'normal', 'high']);
    case 'inferenceClassification':
      return readEnum(value, name, ['focused', 'other']);
    case 'internetMessageHeaders':
      return readHeaders(value);
    case 'internetMessageId':
      return readInternetMessageId(value);
    case 'attachments':
      return expectArray(value, name).map((a) => readFileAttachment(a));
    case 'singleValueExtendedProperties':
      return expectArray(value, name).map((p) => {
        const property = asObject(p, name);
        const id = optionalString(property, 'id');
        const propertyValue = optionalString(property, 'value');
        if (id === undefined || propertyValue === undefined) {
          throw new GraphError(400, 'ErrorRequiredPropertyMissing', 'Required property is missing.');
        }
        return { id, value: propertyValue };
      });
    case 'multiValueExtendedProperties':
    case 'flag':
      return asObjectOrArray(value, name);
    case 'categories':
      return expectArray(value, name).map((c) => expectString(c));
    case 'isDeliveryReceiptRequested':
    case 'isReadReceiptRequested':
    case 'isRead':
      if (typeof value !== 'boolean') throw conversion(value, 'Edm.Boolean');
      return value;
    default:
      return expectString(value);
  }
}

function readRecipients(value: unknown, property: string): RecipientInput[] {
  return expectArray(value, property).map((r) => readRecipient(r, property));
}

function readRecipient(value: unknown, property: string): RecipientInput {
  const recipient = asObject(value, property);
  const emailAddress = recipient.emailAddress ?? recipient.EmailAddress;
  const email = emailAddress === undefined || emailAddress === null ? {} : asObject(emailAddress, 'emailAddress');
  const address = optionalString(email, 'address');
  const name = optionalString(email, 'name');
  if (address === undefined || !looksLikeAddress(address.trim())) {
    const shown = address ?? name ?? '';
    throw new GraphError(
      400,
      'ErrorInvalidRecipients',
      `At least one recipient is not valid., Recipient '${shown}' is not resolved. All recipients must be resolved before a message can be submitted.`,
    );
  }
  const trimmed = address.trim();
  return { emailAddress: { name: name ?? trimmed, address: trimmed } };
}

function readBody(value: unknown): { contentType: 'text' | 'html'; content: string } {
  const body = asObject(value, 'body');
  const contentType = body.contentType ?? body.ContentType;
  const content = body.content ?? body.Content;
  return {
    contentType:
      contentType === undefined || contentType === null
        ? 'text'
        : (readEnum(contentType, 'contentType', ['text', 'html']) as 'text' | 'html'),
    content: content === undefined || content === null ? '' : expectString(content),
  };
}

/**
 * A client-set Message-ID (message-update.md: "Updatable only if isDraft = true", i.e. when the message is created or
 * still a draft): RFC 2822's `<id-left@id-right>`, no spaces. Products set it to find their own mail again in Sent
 * Items.
 */
function readInternetMessageId(value: unknown): string {
  const id = expectString(value);
  if (!isWellFormedMessageId(id)) {
    throw new GraphError(
      400,
      'InvalidInternetMessageId',
      `The internet message id '${id}' is not valid. It should have the form '<unique-part@domain>' (RFC 2822).`,
    );
  }
  return id;
}

// RFC 2822 section 3.6.4: msg-id = "<" id-left "@" id-right ">", id-left a dot-atom, id-right a dot-atom or a
// bracketed literal; no spaces or comments.
const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]";
const DOT_ATOM = `${ATEXT}+(?:\\.${ATEXT}+)*`;
const MSG_ID = new RegExp(`^<${DOT_ATOM}@(?:${DOT_ATOM}|\\[[!-Z^-~]*\\])>$`);

/** True for an RFC 2822 msg-id such as `<1234.abc@contoso.com>`. */
export function isWellFormedMessageId(id: string): boolean {
  return id.length <= 998 && MSG_ID.test(id);
}

function readHeaders(value: unknown): InternetMessageHeader[] {
  const headers = expectArray(value, 'internetMessageHeaders').map((h) => {
    const header = asObject(h, 'internetMessageHeaders');
    const name = optionalString(header, 'name') ?? '';
    const headerValue = optionalString(header, 'value') ?? '';
    if (!/^x-/i.test(name)) {
      throw new GraphError(
        400,
        'InvalidInternetMessageHeader',
        `The internet message header name '${name}' should start with 'x-' or 'X-'.`,
      );
    }
    return { name, value: headerValue };
  });
  if (headers.length > MAX_INTERNET_HEADERS) {
    throw new GraphError(
      400,
      'InvalidInternetMessageHeaderCollection',
      `Maximum number of headers in one message should be less than or equal to ${MAX_INTERNET_HEADERS}.`,
    );
  }
  return headers;
}

function readEnum(value: unknown, property: string, allowed: readonly string[]): string {
  if (typeof value !== 'string' || !allowed.includes(value.toLowerCase())) {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `Invalid value '${String(value)}' for property '${property}'. Expected one of: ${allowed.join(', ')}.`,
    );
  }
  return value.toLowerCase();
}

/** The object's property `name` (matched case-insensitively) as a string, or undefined when absent or null. */
function optionalString(source: Record<string, unknown>, name: string): string | undefined {
  const value = property(source, name);
  if (value === undefined || value === null) return undefined;
  return expectString(value);
}

function optionalBoolean(source: Record<string, unknown>, name: string): boolean | undefined {
  const value = property(source, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw conversion(value, 'Edm.Boolean');
  return value;
}

function property(source: Record<string, unknown>, name: string): unknown {
  if (name in source) return source[name];
  const key = Object.keys(source).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : source[key];
}

function expectString(value: unknown): string {
  if (typeof value !== 'string') throw conversion(value, 'Edm.String');
  return value;
}

function expectArray(value: unknown, property: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `An unexpected '${jsonKind(value)}' node was found when reading from the JSON reader. A 'StartArray' node was expected for property '${property}'.`,
    );
  }
  return value;
}

/** `value` as a JSON object; 400 RequestBodyRead otherwise. */
export function asObject(value: unknown, property: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GraphError(
      400,
      'RequestBodyRead',
      `An unexpected '${jsonKind(value)}' node was found when reading from the JSON reader. A 'StartObject' node was expected for '${property}'.`,
    );
  }
  return value as Record<string, unknown>;
}

function asObjectOrArray(value: unknown, property: string): unknown {
  if (value === null || typeof value !== 'object') return asObject(value, property);
  return value;
}

function conversion(value: unknown, type: string): GraphError {
  return new GraphError(
    400,
    'RequestBodyRead',
    `Cannot convert the literal '${JSON.stringify(value)}' to the expected type '${type}'.`,
  );
}

function unresolvableType(type: string): GraphError {
  return new GraphError(
    400,
    'RequestBodyRead',
    `A type named '${type.replace(/^#/, '')}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type.`,
  );
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'StartArray';
  if (value === null) return 'PrimitiveValue';
  return typeof value === 'object' ? 'StartObject' : 'PrimitiveValue';
}

/** The action's parameters by canonical name; unknown ones are refused as OData does. */
export function readParameters(
  ctx: GraphRequestContext,
  action: string,
  names: readonly string[],
): Record<string, unknown> {
  if (ctx.body.toString('utf8').trim() === '') {
    throw new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.');
  }
  const body = asObject(ctx.readJson(), action);
  const params: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@')) continue;
    const name = names.find((n) => n.toLowerCase() === key.toLowerCase());
    if (!name) {
      throw new GraphError(
        400,
        'RequestBodyRead',
        `The parameter '${key}' in the request payload is not a valid parameter for the operation '${action}'.`,
      );
    }
    params[name] = value;
  }
  return params;
}
