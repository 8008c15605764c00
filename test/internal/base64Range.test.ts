/**
 * Decoding a large attachment one upload chunk at a time: every byte range, whatever its alignment to base64's
 * 3-byte groups, decodes to exactly the bytes of the original, and the chunks of an upload put together are the
 * whole attachment.
 */
import { randomBytes } from 'node:crypto';
import { base64ScratchBytes, decodeBase64Range } from '../../shared/mail/base64Range';
import { attachmentJsonBytes, fileAttachment, jsonBytes } from '../../shared/mail/composeMessage';
import type { Attachment } from '../../shared/mail/sendRequest';
import { UPLOAD_CHUNK_BYTES } from '../../shared/mail/mailSender';

const MiB = 1024 * 1024;

/** The attachment as the upload sends it: chunk after chunk decoded into one reused scratch buffer. */
function decodeInChunks(base64: string, size: number): Buffer {
  const scratch = Buffer.allocUnsafe(base64ScratchBytes(UPLOAD_CHUNK_BYTES));
  const parts: Buffer[] = [];
  for (let offset = 0; offset < size; offset += UPLOAD_CHUNK_BYTES) {
    const end = Math.min(offset + UPLOAD_CHUNK_BYTES, size);
    // Copied because the next chunk overwrites the scratch, as the next PUT does.
    parts.push(Buffer.from(decodeBase64Range(base64, offset, end, scratch)));
    expect(parts[parts.length - 1].length).toBe(end - offset);
  }
  return Buffer.concat(parts);
}

describe('decodeBase64Range', () => {
  it.each([
    ['3 MB', 3 * MiB],
    ['4 MiB - 1', 4 * MiB - 1],
    ['4 MiB', 4 * MiB],
    ['4 MiB + 1', 4 * MiB + 1],
    ['4 MiB x 2 + 3', 8 * MiB + 3],
    ['25 MB', 25 * MiB],
  ])('decodes a %s attachment chunk by chunk into exactly its bytes', (_label, size) => {
    const original = randomBytes(size);
    expect(decodeInChunks(original.toString('base64'), size).equals(original)).toBe(true);
  });

  it('decodes every alignment of start and end to the 3-byte groups, across decoding steps', () => {
    const original = randomBytes(600 * 1024 + 2);
    const base64 = original.toString('base64');
    const scratch = Buffer.allocUnsafe(base64ScratchBytes(original.length));
    const starts = [0, 1, 2, 3, 4, 5, 196_607, 196_608, 196_609, 400_001];
    const ends = [original.length, original.length - 1, original.length - 2, 196_608, 196_610, 400_003, 400_004];
    for (const start of starts) {
      for (const end of ends.filter((e) => e >= start)) {
        const decoded = decodeBase64Range(base64, start, end, scratch);
        expect({ start, end, equal: decoded.equals(original.subarray(start, end)) }).toEqual({
          start,
          end,
          equal: true,
        });
      }
    }
  });

  it('decodes the last bytes of padded data (one and two padding characters)', () => {
    for (const size of [1, 2, 3, 4, 5, 31]) {
      const original = randomBytes(size);
      const scratch = Buffer.allocUnsafe(base64ScratchBytes(size));
      for (let start = 0; start <= size; start++) {
        expect(
          decodeBase64Range(original.toString('base64'), start, size, scratch).equals(original.subarray(start)),
        ).toBe(true);
      }
    }
  });

  it('refuses a range past the data, a scratch too small, and a range that is not one', () => {
    const base64 = randomBytes(10).toString('base64');
    expect(() => decodeBase64Range(base64, 8, 11, Buffer.alloc(16))).toThrow(/past the end/);
    expect(() => decodeBase64Range(base64, 0, 10, Buffer.alloc(8))).toThrow(/too small/);
    expect(() => decodeBase64Range(base64, 5, 4, Buffer.alloc(16))).toThrow(/not a byte range/);
    expect(() => decodeBase64Range(base64, 0.5, 4, Buffer.alloc(16))).toThrow(/not a byte range/);
  });
});

describe('attachmentJsonBytes', () => {
  it('equals the bytes of the attachment serialised as JSON, from its size alone', () => {
    const attachments: Attachment[] = [
      { name: 'a.bin', contentType: 'application/octet-stream', content: randomBytes(1000).toString('base64') },
      { name: 'ünïcødé "quoted".txt', contentType: 'text/plain', content: '' },
      { name: 'one.bin', contentType: 'application/octet-stream', content: randomBytes(1).toString('base64') },
      { name: 'logo.png', contentType: 'image/png', content: 'iVBORw0KGgo=', inline: true, contentId: 'logo' },
    ].map((a) => ({ inline: false, ...a, size: Buffer.byteLength(a.content, 'base64') }));
    for (const attachment of attachments) {
      const json = fileAttachment(attachment, attachment.content as string);
      expect(attachmentJsonBytes(attachment)).toBe(jsonBytes(json));
    }
  });
});
