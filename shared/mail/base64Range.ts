/**
 * Decodes a slice of the bytes a base64 string encodes, reading only the part of the string that covers it. Base64
 * encodes every 3 bytes as 4 characters, so bytes [start, end) lie in the 4-character groups floor(start / 3) to
 * ceil(end / 3): a 4 MiB chunk of a 25 MB attachment costs a 4 MiB decode, never the whole attachment.
 */

/** 4-character groups decoded per step: 256 KiB of base64 (192 KiB of bytes). */
const GROUPS_PER_PIECE = 64 * 1024;

/** Bytes of scratch space `decodeBase64Range` needs for ranges of at most `rangeBytes` bytes. */
export function base64ScratchBytes(rangeBytes: number): number {
  // The covering groups start up to 2 bytes before `start` and end up to 2 bytes after `end`.
  return rangeBytes + 4;
}

/**
 * Decodes bytes [start, end) of the data `base64` (padded, no line breaks) encodes into `scratch` and returns the
 * view of them in `scratch`, valid until the next call with the same scratch.
 */
export function decodeBase64Range(base64: string, start: number, end: number, scratch: Buffer): Buffer {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
    throw new RangeError(`not a byte range: [${start}, ${end})`);
  }
  const firstGroup = Math.floor(start / 3);
  const endGroup = Math.ceil(end / 3);
  if ((endGroup - firstGroup) * 3 > scratch.length) {
    throw new RangeError(`scratch of ${scratch.length} bytes is too small for [${start}, ${end})`);
  }
  // Node decodes a non-external string through a two-byte copy of it: a few groups at a time keeps that copy small.
  let written = 0;
  for (let group = firstGroup; group < endGroup; group += GROUPS_PER_PIECE) {
    const pieceEnd = Math.min(group + GROUPS_PER_PIECE, endGroup);
    written += scratch.write(base64.slice(group * 4, pieceEnd * 4), written, 'base64');
  }
  const from = start - firstGroup * 3;
  if (from + (end - start) > written) {
    throw new RangeError(`bytes [${start}, ${end}) are past the end of the base64 data`);
  }
  return scratch.subarray(from, from + (end - start));
}
