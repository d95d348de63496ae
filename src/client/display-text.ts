/**
 * Text from a command line or a remote host, quoted for an error message: what a terminal
 * would hide or act on is made visible, so `ls\u00a0/etc` is never shown as `ls /etc`.
 */
import { escapeTerminalText } from '../terminal-text.js';

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '"': '\\"', '\\': '\\\\' };

/** Control, format and separator characters other than the space, and lone surrogates. */
const HIDDEN = /["\\]|(?! )[\p{Cc}\p{Cf}\p{Z}]|\p{Cs}/gu;

/**
 * `text` in double quotes, with control and format characters and non-ASCII spaces as
 * `\u{…}` escapes, and the bytes of an OS byte string that are not UTF-8 (protocol/os-bytes.ts,
 * U+DC80..U+DCFF) as `\xNN`.
 */
export function quoteForDisplay(text: string): string {
  return `"${text.replace(HIDDEN, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.codePointAt(0)!;
    if (code >= 0xdc80 && code <= 0xdcff) return `\\x${(code - 0xdc00).toString(16).padStart(2, '0')}`;
    return `\\u{${code.toString(16)}}`;
  })}"`;
}

/**
 * `text` made safe to print on a terminal, unquoted (a whole error message): an ESC, a CR or
 * a C1 CSI from a file, a host name or an argument would otherwise move the cursor, recolour,
 * or overwrite the line before it, and a bidi override would show the rest of the line
 * reversed. Newlines and tabs stay, as messages use them. (The escaper: src/terminal-text.ts.)
 */
export function escapeControls(text: string): string {
  return escapeTerminalText(text);
}
