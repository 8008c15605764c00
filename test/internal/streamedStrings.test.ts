/**
 * The pieces a large attachment's base64 goes through while a request is read, in isolation: the streaming JSON
 * parser handing selected long strings to sinks (escapes decoded, UTF-8 kept whole, everything else as JSON.parse
 * gives it), and the base64 decoder checking and decoding text cut anywhere under the request schema's rule.
 */
import { randomBytes } from 'node:crypto';
import { Base64StreamDecoder } from '../../shared/mail/base64Stream';
import { isAttachmentContentPath } from '../../shared/mail/sendRequest';
import { JsonDocumentParser, JsonTooDeepError, MalformedJsonError } from '../../shared/platform/json/jsonStream';
import type { JsonPath, StreamedStrings } from '../../shared/platform/json/streamedStrings';

/** What a sink received: the path it was opened for and the text, joined. */
interface Sunk {
  path: JsonPath;
  text: string;
}

/** Streams selected strings longer than `threshold` bytes into `sunk`; the document holds `{ sunk: n }` instead. */
function collecting(threshold: number, select = isAttachmentContentPath): { options: StreamedStrings; sunk: Sunk[] } {
  const sunk: Sunk[] = [];
  return {
    sunk,
    options: {
      select,
      thresholdBytes: threshold,
      open: (path) => {
        const parts: Buffer[] = [];
        const index = sunk.length;
        sunk.push({ path, text: '' });
        return {
          write: (text) => parts.push(Buffer.from(text)),
          end: () => {
            sunk[index].text = Buffer.concat(parts).toString('utf8');
            return { sunk: index };
          },
        };
      },
    },
  };
}

/** Parses `text` fed in pieces of `pieceBytes` bytes. */
function parse(text: string | Buffer, options: StreamedStrings | undefined, pieceBytes = 7): unknown {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const parser = new JsonDocumentParser(options);
  for (let i = 0; i < bytes.length; i += pieceBytes) parser.write(bytes.subarray(i, i + pieceBytes));
  return parser.end();
}

describe('the streaming JSON parser with streamed strings', () => {
  const long = randomBytes(300).toString('base64'); // 400 characters

  it('hands a selected string longer than the threshold to a sink and keeps the rest as JSON.parse does', () => {
    const document = {
      from: 'a@b.c',
      contentBase64: long, // not at an attachment's path: stays a string
      attachments: [
        { name: 'small', contentBase64: 'QUJD' },
        { name: 'large', contentBase64: long, inline: false },
        { contentBase64: long, note: long },
      ],
      html: long,
    };
    const { options, sunk } = collecting(100);
    const parsed = parse(JSON.stringify(document), options) as typeof document;

    expect(sunk).toEqual([
      { path: ['attachments', 1, 'contentBase64'], text: long },
      { path: ['attachments', 2, 'contentBase64'], text: long },
    ]);
    expect(parsed).toEqual({
      ...document,
      attachments: [
        document.attachments[0],
        { name: 'large', contentBase64: { sunk: 0 }, inline: false },
        { contentBase64: { sunk: 1 }, note: long },
      ],
    });
  });

  it('keeps a selected string of exactly the threshold a string, and streams one byte more', () => {
    const at = (text: string) => JSON.stringify({ attachments: [{ contentBase64: text }] });
    const exactly = collecting(400);
    expect(parse(at(long), exactly.options)).toEqual({ attachments: [{ contentBase64: long }] });
    expect(exactly.sunk).toEqual([]);
    const over = collecting(399);
    expect(parse(at(long), over.options)).toEqual({ attachments: [{ contentBase64: { sunk: 0 } }] });
    expect(over.sunk[0].text).toBe(long);
  });

  it('decodes escapes and keeps multi-byte characters whole, wherever the pieces are cut', () => {
    const text = `${long.slice(0, 150)}\\/\\u0041\\n\\"€😀${long.slice(150)}`;
    const expected = JSON.parse(`"${text}"`) as string;
    for (const pieceBytes of [1, 2, 3, 5, 64, 1000]) {
      const { options, sunk } = collecting(100);
      parse(`{"attachments":[{"contentBase64":"${text}"}]}`, options, pieceBytes);
      expect(sunk.map((s) => s.text)).toEqual([expected]);
    }
  });

  it('does not stream a key, however long, nor a string at another path', () => {
    const { options, sunk } = collecting(10);
    const document = { attachments: [{ [long]: long, name: long }] };
    expect(parse(JSON.stringify(document), options)).toEqual(document);
    expect(sunk).toEqual([]);
  });

  it('refuses invalid UTF-8 inside a streamed string as malformed JSON, as in any other string', () => {
    const { options } = collecting(10);
    const bytes = Buffer.concat([
      Buffer.from(`{"attachments":[{"contentBase64":"${long}`),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}]}'),
    ]);
    expect(() => parse(bytes, options)).toThrow(MalformedJsonError);
  });

  it('still refuses malformed JSON after a streamed string', () => {
    const { options } = collecting(10);
    expect(() => parse(`{"attachments":[{"contentBase64":"${long}"}]]`, options)).toThrow(MalformedJsonError);
    expect(() => parse(`{"attachments":[{"contentBase64":"${long}`, options)).toThrow(MalformedJsonError);
  });
});

describe('the streaming JSON parser with a depth cap', () => {
  it('parses a document nested exactly to the cap, objects and arrays counted alike', () => {
    const text = `{"a":${'['.repeat(3)}{"b":1}${']'.repeat(3)}}`; // 5 levels
    const parser = new JsonDocumentParser(undefined, 5);
    parser.write(Buffer.from(text));
    expect(parser.end()).toEqual(JSON.parse(text));
  });

  it('stops at the first bracket past the cap, naming its offset, and reads nothing after it', () => {
    const parser = new JsonDocumentParser(undefined, 5);
    const head = `{"a":[[[{"b":`; // the sixth level opens at the last byte but one
    let thrown: unknown;
    try {
      parser.write(Buffer.from(`${head}[1, "never read: \\uZZ`));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(JsonTooDeepError);
    expect([(thrown as JsonTooDeepError).maxDepth, (thrown as JsonTooDeepError).offset]).toEqual([5, head.length]);
    // The broken escape after the bracket was never tokenized: it would have been a MalformedJsonError.
    expect(thrown).not.toBeInstanceOf(MalformedJsonError);
  });

  it('counts depth back down as arrays and objects close', () => {
    const text = `[${'[[]],'.repeat(1000)}[[]]]`; // never more than 3 levels, 3,000 brackets
    const parser = new JsonDocumentParser(undefined, 3);
    parser.write(Buffer.from(text));
    expect(parser.end()).toEqual(JSON.parse(text));
  });
});

/** Decodes `text` fed in pieces of `pieceBytes`; the bytes and the verdict. */
function decode(text: string, pieceBytes: number): { bytes: Buffer; valid: boolean; size: number } {
  const decoder = new Base64StreamDecoder();
  const parts: Buffer[] = [];
  const all = Buffer.from(text, 'latin1');
  for (let i = 0; i < all.length; i += pieceBytes)
    parts.push(Buffer.from(decoder.write(all.subarray(i, i + pieceBytes))));
  return { bytes: Buffer.concat(parts), ...decoder.end() };
}

describe('the streaming base64 decoder', () => {
  it('decodes base64 cut anywhere, groups straddling pieces, to the same bytes as Buffer.from', () => {
    for (const size of [0, 1, 2, 3, 4, 100, 1001]) {
      const data = randomBytes(size);
      for (const pieceBytes of [1, 2, 3, 5, 7, 4096]) {
        const decoded = decode(data.toString('base64'), pieceBytes);
        expect({ size: decoded.size, valid: decoded.valid }).toEqual({ size, valid: true });
        expect(decoded.bytes.equals(data)).toBe(true);
      }
    }
  });

  it('refuses what the schema refuses: other characters, line breaks, misplaced or extra padding, a cut group', () => {
    const good = randomBytes(99).toString('base64'); // 132 characters, no padding
    const cases = [
      `${good.slice(0, 100)}!${good.slice(101)}`, // a character outside the alphabet deep inside
      `${good.slice(0, 64)}\n${good.slice(64)}`, // a line break
      `${good.slice(0, 64)}-_${good.slice(66)}`, // base64url
      `${good.slice(0, 128)}AA=A`, // padding inside
      `${good.slice(0, 128)}A===`, // three padding characters
      `${good}=`, // padding after a whole group
      `${good}A`, // length not a multiple of 4
      `${good}AB=`, // padded, still not a multiple of 4
      `${good}é`,
    ];
    for (const text of cases) {
      expect(/^[A-Za-z0-9+/]*={0,2}$/.test(text) && text.length % 4 === 0).toBe(false);
      for (const pieceBytes of [1, 3, 4096]) expect(decode(text, pieceBytes).valid).toBe(false);
    }
    expect(decode(`${good.slice(0, 128)}AA==`, 5)).toMatchObject({ valid: true, size: 97 });
    expect(decode(`${good.slice(0, 128)}AAA=`, 5)).toMatchObject({ valid: true, size: 98 });
  });
});
