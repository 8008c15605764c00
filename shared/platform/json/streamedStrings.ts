/**
 * Long string values handed to a sink while `@streamparser/json`'s tokenizer reads them, instead of being built into
 * one JavaScript string. The library has no such option (`emitPartialTokens` hands out the string built so far, which
 * is the whole string again), but its tokenizer gathers every string through one small accumulator object (append a
 * byte, append a run of bytes, append a code unit, reset, toString). {@link installStringSink} puts an accumulator
 * in front of the library's own: ordinary strings still go to the library's, and a string at a selected path goes to
 * a held buffer first and, once longer than the threshold, to a sink. The tokenizer keeps doing everything else
 * (escapes, UTF-8 boundaries, the grammar), so the strings a sink sees are exactly the text `JSON.parse` would give.
 *
 * The accumulator is a private field of the pinned library version; installing checks that it looks as expected and
 * throws at start-up otherwise, and the send tests fail if strings stop arriving.
 */
import { TokenType, type ParsedTokenInfo, type Tokenizer } from '@streamparser/json';

/** Where a value sits in a document: keys and array indices from the root. */
export type JsonPath = readonly (string | number)[];

/** Receives one long string's text as it is parsed. */
export interface StringValueSink {
  /** The next part of the string: UTF-8 bytes of whole characters, escapes decoded; valid during the call only. */
  write(text: Uint8Array): void;
  /** The string ended; returns what the document holds in its place. */
  end(): object;
}

/** Which string values go to sinks rather than into the document. */
export interface StreamedStrings {
  /** Whether the string value at `path` may be streamed. */
  select(path: JsonPath): boolean;
  /** A selected string no longer than this many UTF-8 bytes stays an ordinary string. */
  thresholdBytes: number;
  /** The sink for the selected string at `path`, opened once it is longer than the threshold. */
  open(path: JsonPath): StringValueSink;
}

/** The tokenizer's string accumulator, as the pinned `@streamparser/json` (0.0.26) uses it. */
interface StringAccumulator {
  readonly byteLength: number;
  appendChar(byte: number): void;
  appendBuf(buffer: Uint8Array, start?: number, end?: number): void;
  appendCharCode(code: number): void;
  reset(): void;
  toString(): string;
}

/** Follows the tokens of a document to know the path of the value that comes next. */
export class TokenPath {
  readonly #frames: { key: string | number; isObject: boolean; awaitingKey: boolean }[] = [];

  /** Takes the next token (after the tokenizer emitted it). */
  update(token: ParsedTokenInfo): void {
    const top = this.#frames.at(-1);
    switch (token.token) {
      case TokenType.LEFT_BRACE:
        this.#frames.push({ key: '', isObject: true, awaitingKey: true });
        break;
      case TokenType.LEFT_BRACKET:
        this.#frames.push({ key: 0, isObject: false, awaitingKey: false });
        break;
      case TokenType.RIGHT_BRACE:
      case TokenType.RIGHT_BRACKET:
        this.#frames.pop();
        break;
      case TokenType.STRING:
        if (top?.isObject && top.awaitingKey) {
          top.key = String(token.value);
          top.awaitingKey = false;
        }
        break;
      case TokenType.COMMA:
        if (top?.isObject) top.awaitingKey = true;
        else if (top) top.key = (top.key as number) + 1;
        break;
      default:
        break;
    }
  }

  /** The path of a string starting now when it is a value; undefined when it is an object's key. */
  stringValuePath(): JsonPath | undefined {
    if (this.#frames.at(-1)?.awaitingKey) return undefined;
    return this.#frames.map((frame) => frame.key);
  }
}

/** The accumulator installed in front of the library's (see the module comment). */
class SinkingAccumulator implements StringAccumulator {
  readonly #inner: StringAccumulator;
  readonly #options: StreamedStrings;
  readonly #path: TokenPath;
  /** Allocated for the first selected string: most documents (a mail without attachments) have none. */
  #held: Uint8Array | undefined;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  readonly #encoder = new TextEncoder();
  #mode: 'inner' | 'held' | 'sink' = 'inner';
  #selectedPath: JsonPath = [];
  #heldLength = 0;
  #byteLength = 0;
  #sink: StringValueSink | undefined;
  #streamed: { value: object } | undefined;

  constructor(inner: StringAccumulator, options: StreamedStrings, path: TokenPath) {
    this.#inner = inner;
    this.#options = options;
    this.#path = path;
  }

  get byteLength(): number {
    return this.#mode === 'inner' ? this.#inner.byteLength : this.#byteLength;
  }

  reset(): void {
    this.#inner.reset();
    this.#byteLength = 0;
    this.#heldLength = 0;
    this.#sink = undefined;
    const path = this.#path.stringValuePath();
    this.#mode = path !== undefined && this.#options.select(path) ? 'held' : 'inner';
    if (path !== undefined) this.#selectedPath = path;
  }

  appendChar(byte: number): void {
    if (this.#mode === 'inner') return this.#inner.appendChar(byte);
    this.#append(Uint8Array.of(byte));
  }

  appendBuf(buffer: Uint8Array, start = 0, end = buffer.length): void {
    if (this.#mode === 'inner') return this.#inner.appendBuf(buffer, start, end);
    this.#append(buffer.subarray(start, end));
  }

  appendCharCode(code: number): void {
    if (this.#mode === 'inner') return this.#inner.appendCharCode(code);
    // Only a lone surrogate arrives this way; as UTF-8 it becomes U+FFFD, which a sink sees as one more character.
    this.#append(this.#encoder.encode(String.fromCharCode(code)));
  }

  toString(): string {
    if (this.#mode === 'inner') return this.#inner.toString();
    if (this.#mode === 'held') return this.#decoder.decode(this.#heldBuffer().subarray(0, this.#heldLength));
    this.#streamed = { value: this.#sink!.end() };
    this.#sink = undefined;
    return '';
  }

  /** The value a streamed string left in the document, once, right after it ended; undefined for other strings. */
  takeStreamed(): { value: object } | undefined {
    const streamed = this.#streamed;
    this.#streamed = undefined;
    return streamed;
  }

  #append(text: Uint8Array): void {
    this.#byteLength += text.length;
    if (this.#mode === 'held') {
      const held = this.#heldBuffer();
      if (this.#heldLength + text.length <= held.length) {
        held.set(text, this.#heldLength);
        this.#heldLength += text.length;
        return;
      }
      this.#mode = 'sink';
      this.#sink = this.#options.open(this.#selectedPath);
      this.#write(held.subarray(0, this.#heldLength));
      this.#heldLength = 0;
    }
    this.#write(text);
  }

  /** The buffer a selected string is held in until it proves long enough for a sink (then reused for the next). */
  #heldBuffer(): Uint8Array {
    this.#held ??= new Uint8Array(this.#options.thresholdBytes);
    return this.#held;
  }

  #write(text: Uint8Array): void {
    // Invalid UTF-8 stays a JSON error, as it is for every other string: the library's accumulator would refuse it.
    for (let i = 0; i < text.length; i++) {
      if (text[i] >= 0x80) {
        this.#decoder.decode(text);
        break;
      }
    }
    this.#sink!.write(text);
  }
}

/**
 * Installs the sinking accumulator in `tokenizer` (see the module comment); `path` must be fed every token the
 * tokenizer emits, before anything else sees it. Returns the function that hands out a streamed string's value.
 */
export function installStringSink(
  tokenizer: Tokenizer,
  options: StreamedStrings,
  path: TokenPath,
): () => { value: object } | undefined {
  const slot = tokenizer as unknown as { bufferedString?: Partial<StringAccumulator> };
  const inner = slot.bufferedString;
  const methods = ['appendChar', 'appendBuf', 'appendCharCode', 'reset', 'toString'] as const;
  if (!inner || methods.some((m) => typeof inner[m] !== 'function') || typeof inner.byteLength !== 'number') {
    throw new Error('@streamparser/json no longer gathers strings as this module expects; check the pinned version');
  }
  const accumulator = new SinkingAccumulator(inner as StringAccumulator, options, path);
  slot.bufferedString = accumulator;
  return () => accumulator.takeStreamed();
}
