/**
 * Text that a remote host, a command or another operator controls (host names, paths, commands,
 * audit fields, error messages), made visible before the page shows it. A control character
 * is invisible in HTML, and a bidi control (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) reorders
 * what follows it: `new\u202e.txt bytes=4` would read `4=setyb txt.` and an audit row would say
 * something other than what it records. Such characters are shown as escapes (`\u202e`); the
 * bytes of a non-UTF-8 OS string (protocol/os-bytes.ts: lone surrogates U+DC80..U+DCFF) as
 * `\xNN`, as the CLI shows them (src/client/display-text.ts). Pure: no DOM (unit-tested).
 *
 * A command's own output is different: it is shown as it came (ui/src/run.ts), in an element
 * with `unicode-bidi: isolate` (ui/style.css), and only its controls are escaped (`outputText`).
 */

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * C0 controls, DEL, C1 controls, the bidi embeddings, overrides, isolates and marks
 * (U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C), the line and paragraph separators
 * (U+2028, U+2029), the byte order mark, and any lone surrogate.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are escaped before display
const ONE_LINE = /[\0-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|\p{Cs}/gu;
/** The same, but newline and tab stay (messages over several lines; the page wraps them). */
// eslint-disable-next-line no-control-regex -- as above
const MULTI_LINE = /[\0-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|\p{Cs}/gu;
/** Output: controls only (newline and tab stay); its bidi characters are the command's own text. */
// eslint-disable-next-line no-control-regex -- as above
const OUTPUT = /[\0-\x08\x0b-\x1f\x7f-\x9f]|\p{Cs}/gu;

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.codePointAt(0)!;
  if (code >= 0xdc80 && code <= 0xdcff) return `\\x${(code - 0xdc00).toString(16).padStart(2, '0')}`;
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line: a host name, a path, a command, an audit field. Newlines too become `\n`. */
export function oneLine(text: string): string {
  return text.replace(ONE_LINE, escapeOne);
}

/** Text that may span lines (an error message): as `oneLine`, but newline and tab stay. */
export function visible(text: string): string {
  return text.replace(MULTI_LINE, escapeOne);
}

/**
 * A command's output decoded for display: its controls escaped, newline and tab kept, bidi
 * text kept (isolated by CSS). Output that is not UTF-8 (`binary`: shown with U+FFFD for what
 * does not decode, and offered as a download) gets U+FFFD for its controls too: a binary file
 * is mostly NULs and would be a wall of `\u0000` escapes.
 */
export function outputText(text: string, binary = false): string {
  return binary ? text.replace(OUTPUT, '\ufffd') : text.replace(OUTPUT, escapeOne);
}
