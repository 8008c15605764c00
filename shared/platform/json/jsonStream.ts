/**
 * JSON parsed as it arrives, chunk by chunk, with `@streamparser/json`: a large document (a send request with a 25 MB
 * attachment) is never held as bytes and as text besides its parsed values. Same values as `JSON.parse` of the UTF-8
 * text (duplicate keys: the last wins; `"__proto__"` stays an own key), except that invalid UTF-8 is refused rather
 * than replaced. Chosen long string values can go to sinks instead of into the document (streamedStrings.ts), and
 * a nesting depth can be capped: the parser refuses a document at the first bracket past the cap, so a caller's
 * hundred thousand nested arrays cost a few microseconds and never reach code that walks the parsed value.
 */
import { Tokenizer, TokenParser, TokenType, type ParsedTokenInfo } from '@streamparser/json';
import { installStringSink, TokenPath, type StreamedStrings } from './streamedStrings';

/** The bytes are not one well-formed JSON document. */
export class MalformedJsonError extends Error {
  constructor(cause?: unknown) {
    super('the body is not valid JSON', { cause });
    this.name = 'MalformedJsonError';
  }
}

/** The document nests arrays and objects deeper than the parser's cap. */
export class JsonTooDeepError extends Error {
  constructor(
    /** The cap: arrays and objects may nest this many levels (the root object or array is level 1). */
    readonly maxDepth: number,
    /** Byte offset of the bracket that went past the cap. */
    readonly offset: number,
  ) {
    super(`the JSON nests arrays and objects deeper than ${maxDepth} levels (at byte ${offset})`);
    this.name = 'JsonTooDeepError';
  }
}

/** One JSON document, fed in chunks; `end` returns its value. */
export class JsonDocumentParser {
  readonly #tokenizer = new Tokenizer();
  readonly #parser = new TokenParser({ paths: ['$'] });
  #value: unknown;
  #complete = false;

  /**
   * `streamed` picks the string values that go to sinks (see streamedStrings.ts); none when absent. `maxDepth` caps
   * how deep arrays and objects nest (the root is level 1); unlimited when absent.
   */
  constructor(streamed?: StreamedStrings, maxDepth = Infinity) {
    const path = new TokenPath();
    const takeStreamed = streamed ? installStringSink(this.#tokenizer, streamed, path) : () => undefined;
    let depth = 0;
    // Wired as the library's JSONParser wires the two, with the path followed and streamed strings swapped in.
    this.#tokenizer.onToken = (token) => {
      if (token.token === TokenType.LEFT_BRACE || token.token === TokenType.LEFT_BRACKET) {
        // Thrown here, the error ends the tokenizer and leaves write(): nothing after this bracket is read.
        if (++depth > maxDepth) throw new JsonTooDeepError(maxDepth, token.offset);
      } else if (token.token === TokenType.RIGHT_BRACE || token.token === TokenType.RIGHT_BRACKET) {
        depth--;
      }
      path.update(token);
      const streamedValue = token.token === TokenType.STRING ? takeStreamed() : undefined;
      this.#parser.write(
        streamedValue ? ({ ...token, value: streamedValue.value } as unknown as ParsedTokenInfo) : token,
      );
    };
    this.#tokenizer.onEnd = () => {
      if (!this.#parser.isEnded) this.#parser.end();
    };
    this.#parser.onError = (err) => this.#tokenizer.error(err);
    this.#parser.onEnd = () => {
      if (!this.#tokenizer.isEnded) this.#tokenizer.end();
    };
    this.#parser.onValue = ({ value, stack }) => {
      // Only the root value is asked for; a nested value never arrives here, but the guard costs nothing.
      if (stack.length > 0) return;
      this.#value = value;
      this.#complete = true;
    };
  }

  /**
   * Parses `chunk`; throws {@link MalformedJsonError} as soon as the document cannot be JSON, and
   * {@link JsonTooDeepError} as soon as it nests past the cap.
   */
  write(chunk: Uint8Array): void {
    try {
      this.#tokenizer.write(chunk);
    } catch (err) {
      if (err instanceof JsonTooDeepError) throw err;
      throw new MalformedJsonError(err);
    }
  }

  /** The document's value; throws {@link MalformedJsonError} when the input ended before a whole document. */
  end(): unknown {
    try {
      // The parser ends by itself after the root value; only a document cut short still needs ending.
      if (!(this.#tokenizer.isEnded && this.#parser.isEnded)) this.#tokenizer.end();
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
