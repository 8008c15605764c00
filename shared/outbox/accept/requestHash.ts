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
