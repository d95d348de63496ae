/**
 * Command-line words as OS byte strings (src/protocol/os-bytes.ts).
 *
 * Node decodes argv as UTF-8 and replaces every invalid sequence with U+FFFD, so
 * `shellwire put $'caf\xe9.txt' …` would reach us as `caf\ufffd.txt`, a name no file has.
 * The kernel keeps the exact bytes in /proc/self/cmdline (NUL-separated, Linux): the last
 * words of it are our arguments, and are taken from there when they differ, decoded with
 * surrogateescape so that they turn back into the same bytes at every system call and on
 * the wire.
 *
 * Where /proc is missing (not Linux, or not mounted) or the words do not line up with
 * process.argv (some launcher rewrote them), the words stay as Node decoded them: a name
 * that is not UTF-8 can then not be named on the command line (the library still can).
 */
import { readFileSync } from 'node:fs';
import { decodeOsBytes } from '../protocol/os-bytes.js';

let cached: string[] | null = null;

/** process.argv.slice(2), with each word's exact bytes where Node's decoding lost them. */
function exactArguments(): string[] {
  if (cached) return cached;
  const args = process.argv.slice(2);
  cached = args;
  if (!args.some((a) => a.includes('\ufffd'))) return args; // nothing was lost
  let raw: Buffer;
  try {
    raw = readFileSync('/proc/self/cmdline');
  } catch {
    return args;
  }
  const words: Buffer[] = [];
  for (let start = 0; start < raw.length; ) {
    let end = raw.indexOf(0, start);
    if (end < 0) end = raw.length;
    words.push(raw.subarray(start, end));
    start = end + 1;
  }
  if (words.length < args.length) return args;
  const tail = words.slice(words.length - args.length);
  // Line up: each raw word, decoded as Node decodes argv, must be the word Node gave us.
  if (tail.some((word, i) => word.toString('utf8') !== args[i])) return args;
  cached = tail.map((word) => decodeOsBytes(word));
  return cached;
}

/**
 * The exact spelling of command-line words that commander handed over (positional
 * arguments, in order): each is matched to the next argv word that Node decoded to it.
 */
export function exactWords(values: readonly string[]): string[] {
  const args = process.argv.slice(2);
  const exact = exactArguments();
  if (exact.every((word, i) => word === args[i])) return [...values];
  let cursor = 0;
  return values.map((value) => {
    for (let i = cursor; i < args.length; i++) {
      if (args[i] === value) {
        cursor = i + 1;
        return exact[i]!;
      }
    }
    return value;
  });
}
