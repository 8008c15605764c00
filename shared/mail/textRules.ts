/**
 * Rules for text that ends up in a message header (subject, display names, header values, file names) and for
 * addresses: a line break there could inject headers, a NUL truncates the field in some mail systems.
 */

/** True when `text` holds a control character: C0 (NUL, CR, LF, ... but not TAB), DEL, C1 or U+2028/U+2029. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/** RFC 5321 section 4.5.3.1: local part at most 64 octets, domain at most 255, a path at most 256 (address 254). */
const MAX_LOCAL_PART_OCTETS = 64;
const MAX_DOMAIN_OCTETS = 255;
const MAX_ADDRESS_OCTETS = 254;

/** The RFC 5321 length rule an address breaks, or undefined when its lengths are fine. */
export function addressLengthProblem(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  const local = Buffer.byteLength(address.slice(0, at));
  const domain = Buffer.byteLength(address.slice(at + 1));
  if (Buffer.byteLength(address) > MAX_ADDRESS_OCTETS)
    return `must be at most ${MAX_ADDRESS_OCTETS} characters (RFC 5321)`;
  if (local > MAX_LOCAL_PART_OCTETS)
    return `the part before @ must be at most ${MAX_LOCAL_PART_OCTETS} characters (RFC 5321)`;
  if (domain > MAX_DOMAIN_OCTETS) return `the domain must be at most ${MAX_DOMAIN_OCTETS} characters (RFC 5321)`;
  return undefined;
}

/**
 * An address's shape. Deliberately simple: Exchange is the judge of deliverability; this catches typos and injection
 * (spaces, commas, angle brackets) before a Graph call is spent on them.
 */
export const ADDRESS = /^[^\s@<>(),;:"[\]\\]+@[^\s@<>(),;:"[\]\\]+\.[^\s@<>(),;:"[\]\\]{2,}$/;

/** What an address of another shape is told. */
export const ADDRESS_SHAPE_MESSAGE = 'is not a valid email address';

/** What a text field holding a control character is told. */
export const NO_CONTROL_CHARACTERS_MESSAGE =
  'must not contain control characters (CR, LF, NUL, ...): it is a single line';

/**
 * Every address rule `address` (already trimmed) breaks, in order (control characters, shape, RFC 5321 lengths);
 * empty when it is a usable address. The send API and the mailbox API both judge addresses by these rules.
 */
export function addressProblems(address: string): string[] {
  const problems: string[] = [];
  if (hasControlCharacter(address)) problems.push(NO_CONTROL_CHARACTERS_MESSAGE);
  if (!ADDRESS.test(address)) problems.push(ADDRESS_SHAPE_MESSAGE);
  const length = addressLengthProblem(address);
  if (length) problems.push(length);
  return problems;
}
