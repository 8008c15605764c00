/**
 * The hash an `Idempotency-Key` compares requests by: a SHA-256 of the parsed request in a canonical form, so that the
 * same JSON with other whitespace, key order or escapes is the same request. Each value is fed to the hash as it is
 * walked (object keys sorted, each string and number with its type and length), so no serialised copy of the
 * request is ever built; a large attachment, which the body reader decoded into a blob, is represented by the
 * digest of its base64 text taken while it streamed (see StagedAttachments) and its size.
 */
import { createHash, type Hash } from 'node:crypto';
import { AttachmentBlob } from '../../mail/attachmentBlob';

/**
 * The canonical hash of a parsed send request (hex). Call it on a request that passed validation: the walk recurses
 * once per nesting level, and a valid request nests only a few levels deep.
 */
export function canonicalRequestHash(document: unknown): string {
  const hash = createHash('sha256');
  feed(hash, document);
  return hash.digest('hex');
}

/** Feeds one value; every form starts with a tag and carries its length, so that no two values feed the same bytes. */
function feed(hash: Hash, value: unknown): void {
  if (value === null) {
    hash.update('n');
  } else if (typeof value === 'boolean') {
    hash.update(value ? 't' : 'f');
  } else if (typeof value === 'number') {
    hash.update(`d${JSON.stringify(value)};`);
  } else if (typeof value === 'string') {
    feedString(hash, value);
  } else if (value instanceof AttachmentBlob) {
    // A blob made from the request always has the digest of its text; without one it cannot equal another request.
    hash.update(`b${value.digest ?? `unhashed:${value.blobName}`};${value.size};`);
  } else if (Array.isArray(value)) {
    hash.update(`[${value.length};`);
    for (const item of value) feed(hash, item);
  } else if (typeof value === 'object') {
    const keys = Object.keys(value).sort();
    hash.update(`{${keys.length};`);
    for (const key of keys) {
      feedString(hash, key);
      feed(hash, (value as Record<string, unknown>)[key]);
    }
  } else {
    throw new TypeError(`a parsed JSON document holds no ${typeof value}`);
  }
}

function feedString(hash: Hash, text: string): void {
  hash.update(`s${text.length};`);
  hash.update(text, 'utf8');
}

/**
 * The outbox id of the mail an `Idempotency-Key` stores: a UUID (version 8, RFC 9562) from the SHA-256 of the key,
 * so that inserting the mail's record is the key's claim (Table storage makes an insert atomic) and a repeat finds
 * the mail by its key alone, with no record of the key besides the mail's.
 */
export function mailIdForKey(key: string): string {
  const bytes = createHash('sha256').update(`idempotency-key\n${key}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
