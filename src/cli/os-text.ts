/**
 * The CLI's own bytes: its arguments and its input lines are OS byte strings
 * (docs/protocol.md §4.11), so `shellwire exec host -- ls café` with a Latin-1 `é` sends
 * that byte, not U+FFFD.
 */
import { readFileSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { BIDI_CONTROLS } from '../terminal-text.js';
import { decodeOsBytes, encodeOsBytes, isOsString, splitAtNul } from '../protocol/os-bytes.js';

/**
 * `process.argv` with its arguments as OS byte strings. Node decodes argv as UTF-8 and
 * replaces invalid bytes with U+FFFD, losing them; Linux keeps the exact bytes in
 * /proc/self/cmdline. Its last `argv.length - 2` words are our arguments (before them: node,
 * its options, the script). Each is used only when its lossy decoding is exactly Node's
 * argument, so anything unexpected (no /proc, a changed process title) falls back to argv.
 */
export function osArgv(argv: string[] = process.argv): string[] {
  const count = argv.length - 2;
  if (count <= 0) return argv;
  let cmdline: Buffer;
  try {
    cmdline = readFileSync('/proc/self/cmdline');
  } catch {
    return argv;
  }
  const words = splitAtNul(cmdline.at(-1) === 0 ? cmdline.subarray(0, -1) : cmdline);
  if (words.length < count + 1) return argv;
  const ours = words.slice(words.length - count);
  if (!ours.every((word, i) => word.toString('utf8') === argv[i + 2])) return argv;
  return [...argv.slice(0, 2), ...ours.map((word) => decodeOsBytes(word))];
}


/** The bytes of text that may hold OS byte strings (a message naming a command or directory). */
export function osTextBytes(text: string): Buffer {
  return isOsString(text) ? encodeOsBytes(text) : Buffer.from(text, 'utf8');
}

/**
 * Bytes → OS byte strings, a line at a time (for readline over a pipe): each chunk is decoded
 * up to its last newline, which never falls inside a UTF-8 sequence; the rest waits for more.
 */
export class OsLineDecoder extends Transform {
  #held: Buffer = Buffer.alloc(0);

  constructor() {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const bytes = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    const end = bytes.lastIndexOf(0x0a) + 1;
    this.#held = Buffer.from(bytes.subarray(end));
    if (end > 0) this.push(decodeOsBytes(bytes.subarray(0, end)));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#held.length > 0) this.push(decodeOsBytes(this.#held));
    callback();
  }
}

/**
 * Text from a remote host (a file name, a working directory) for a terminal: bytes that are
 * not UTF-8 and control characters — an escape sequence that would retitle the window, write
 * the clipboard or recolour the screen — and bidi controls (a U+202E that shows the rest of
 * the line reversed) as `?`, like `ls -q`.
 */
export function forTerminal(name: string): string {
  // eslint-disable-next-line no-control-regex
  return name.replace(/[\u0000-\u001f\u007f\u0080-\u009f\udc80-\udcff]/g, '?').replace(BIDI_CONTROLS, '?');
}
