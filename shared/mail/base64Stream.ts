/**
 * Base64 text decoded as it arrives, piece by piece, under the rule the request schema applies to a whole string:
 * RFC 4648's alphabet, `=` padding only at the end and at most two of it, a length that is a multiple of 4, no line
 * breaks or other characters. A 4-character group may straddle two pieces. Once a character breaks the rule the
 * decoder stops decoding (the request is refused anyway) and only remembers that it did.
 */

/** `true` for the bytes of RFC 4648's base64 alphabet (without `=`). */
const ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') ALPHABET[c.charCodeAt(0)] = 1;

const PAD = 0x3d; // '='

/** Decodes one base64 text given in pieces (see the module comment). */
export class Base64StreamDecoder {
  /** Up to 3 characters of a group the last piece ended inside. */
  readonly #carry = Buffer.alloc(3);
  #carryLength = 0;
  #characters = 0;
  #padding = 0;
  #valid = true;

  /** Whether every character so far follows the rule (the length is checked by {@link end}). */
  get valid(): boolean {
    return this.#valid;
  }

  /**
   * Checks and decodes the next piece of text (`text` is read during the call only); returns the bytes it completes,
   * empty when it completes none or the text is no longer valid base64.
   */
  write(text: Uint8Array): Buffer {
    if (!this.#valid) return EMPTY;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === PAD) {
        if (++this.#padding > 2) return this.#invalid();
      } else if (ALPHABET[c] !== 1 || this.#padding > 0) {
        return this.#invalid();
      }
    }
    this.#characters += text.length;
    const total = this.#carryLength + text.length;
    const whole = total - (total % 4);
    if (whole === 0) {
      this.#carry.set(text, this.#carryLength);
      this.#carryLength = total;
      return EMPTY;
    }
    // The carried characters and the piece, up to the last whole group, decoded as one latin1 text: each byte is one
    // character, so the base64 text is exactly the bytes.
    const fromText = whole - this.#carryLength;
    const groups =
      this.#carryLength === 0
        ? Buffer.from(text.buffer, text.byteOffset, whole).toString('latin1')
        : this.#carry.toString('latin1', 0, this.#carryLength) +
          Buffer.from(text.buffer, text.byteOffset, fromText).toString('latin1');
    this.#carryLength = total - whole;
    this.#carry.set(text.subarray(fromText), 0);
    return Buffer.from(groups, 'base64');
  }

  /**
   * Ends the text; returns whether it was valid base64 as a whole, and how many bytes it decoded to (counted only
   * when valid).
   */
  end(): { valid: boolean; size: number } {
    if (this.#valid && (this.#characters % 4 !== 0 || this.#carryLength !== 0)) this.#invalid();
    return { valid: this.#valid, size: this.#valid ? (this.#characters / 4) * 3 - this.#padding : 0 };
  }

  #invalid(): Buffer {
    this.#valid = false;
    this.#carryLength = 0;
    return EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);
