/**
 * OS byte strings (file names, paths, cwd, env names and values, command text, argv words)
 * as JS strings, losslessly: Python's "surrogateescape" (PEP 383). Valid UTF-8 decodes as
 * usual; every byte of an invalid sequence becomes the lone low surrogate U+DC00 + byte
 * (U+DC80..U+DCFF), and encoding turns those back into the bytes.
 *
 * Why: the protocol's control payloads are JSON, and Linux names are bytes (`caf\xe9.txt`,
 * a Latin-1 name, is not UTF-8). JSON.stringify writes a lone surrogate as the escape
 * `\udce9`, which JSON.parse (and Python's json with surrogateescape) reads back exactly, so
 * such names cross the wire unchanged without a second encoding. docs/protocol.md §4.11.
 *
 * Strings that came from `decodeOsBytes` always round-trip. A string holding some other lone
 * surrogate (U+D800..U+DC7F, U+DD00..U+DFFF unpaired) names no bytes: `encodeOsBytes` throws
 * `OsBytesError` for it, and `isOsString` tells in advance.
 */
import { isUtf8 } from 'node:buffer';

const ESCAPE_BASE = 0xdc00;
/** Any UTF-16 surrogate code unit (no `u` flag: matches halves of pairs too). */
const SURROGATE = /[\uD800-\uDFFF]/;

/** A string that stands for no byte sequence (an unpaired surrogate outside U+DC80..U+DCFF). */
export class OsBytesError extends TypeError {
  override name = 'OsBytesError';
  /** UTF-16 index of the offending code unit. */
  readonly index: number;
  constructor(index: number) {
    super(`not an OS byte string: unpaired surrogate at index ${index}`);
    this.index = index;
  }
}

/** Bytes → string: UTF-8 where valid, U+DC80..U+DCFF for each byte of an invalid sequence. Never throws. */
export function decodeOsBytes(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return buf.toString('utf8');
  let out = '';
  let start = 0; // start of the current run of valid UTF-8
  let i = 0;
  while (i < buf.length) {
    const length = validSequenceLength(buf, i);
    if (length > 0) {
      i += length;
      continue;
    }
    if (i > start) out += buf.toString('utf8', start, i);
    out += String.fromCharCode(ESCAPE_BASE + buf[i]!);
    i += 1;
    start = i;
  }
  if (i > start) out += buf.toString('utf8', start, i);
  return out;
}

/**
 * String → bytes: the inverse of `decodeOsBytes`.
 *
 * @throws {OsBytesError} `text` holds a surrogate that names no byte (outside U+DC80..U+DCFF,
 *   or a high surrogate without its pair); `index` says where.
 */
export function encodeOsBytes(text: string): Buffer {
  if (!SURROGATE.test(text)) return Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i += 1; // a proper pair: UTF-8 as usual
        continue;
      }
    }
    if (unit < 0xdc80 || unit > 0xdcff) throw new OsBytesError(i);
    if (i > start) parts.push(Buffer.from(text.slice(start, i), 'utf8'));
    parts.push(Buffer.of(unit - ESCAPE_BASE));
    start = i + 1;
  }
  if (start < text.length) parts.push(Buffer.from(text.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** True when `encodeOsBytes(text)` would succeed. */
export function isOsString(text: string): boolean {
  if (!SURROGATE.test(text)) return true;
  try {
    encodeOsBytes(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Length of the well-formed UTF-8 sequence at `i` (RFC 3629 §4: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when the byte there starts none.
 */
function validSequenceLength(buf: Buffer, i: number): number {
  const b0 = buf[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < buf.length && buf[i + k]! >= lo && buf[i + k]! <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The parts of a NUL-separated list of byte strings (`/proc/PID/cmdline`, an `env -0` dump). */
export function splitAtNul(bytes: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let nul = bytes.indexOf(0); nul !== -1; nul = bytes.indexOf(0, start)) {
    parts.push(bytes.subarray(start, nul));
    start = nul + 1;
  }
  parts.push(bytes.subarray(start));
  return parts;
}
