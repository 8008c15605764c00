/**
 * JSON parsed as it arrives, chunk by chunk, with `@streamparser/json`: a large document (a send request with a 25 MB
 * attachment) is never held as bytes and as text besides its parsed values. Same values as `JSON.parse` of the UTF-8
 * text (duplicate keys: the last wins; `"__proto__"` stays an own key), except that invalid UTF-8 is refused rather
 * than replaced.
 */
import { JSONParser } from '@streamparser/json';

/** The bytes are not one well-formed JSON document. */
export class MalformedJsonError extends Error {
  constructor(cause?: unknown) {
    super('the body is not valid JSON', { cause });
    this.name = 'MalformedJsonError';
  }
}

/** One JSON document, fed in chunks; `end` returns its value. */
export class JsonDocumentParser {
  readonly #parser = new JSONParser({ paths: ['$'] });
  #value: unknown;
  #complete = false;

  constructor() {
    this.#parser.onValue = ({ value, stack }) => {
      // Only the root value is asked for; a nested value never arrives here, but the guard costs nothing.
      if (stack.length > 0) return;
      this.#value = value;
      this.#complete = true;
    };
  }

  /** Parses `chunk`; throws {@link MalformedJsonError} as soon as the document cannot be JSON. */
  write(chunk: Uint8Array): void {
    try {
      this.#parser.write(chunk);
    } catch (err) {
      throw new MalformedJsonError(err);
    }
  }

  /** The document's value; throws {@link MalformedJsonError} when the input ended before a whole document. */
  end(): unknown {
    try {
      // The parser ends by itself after the root value; only a document cut short still needs ending.
      if (!this.#parser.isEnded) this.#parser.end();
    } catch (err) {
      throw new MalformedJsonError(err);
    }
    if (!this.#complete) throw new MalformedJsonError();
    const value = this.#value;
    this.#value = undefined;
    return value;
  }
}

/** Parses the JSON document `source` streams (e.g. a blob download), holding only the parsed values. */
export async function parseJsonStream(source: AsyncIterable<Uint8Array>): Promise<unknown> {
  const parser = new JsonDocumentParser();
  for await (const chunk of source) parser.write(chunk);
  return parser.end();
}
