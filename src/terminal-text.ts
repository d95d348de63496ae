/**
 * Text from elsewhere (a host, a client, an audit row) made safe to print on a terminal: the
 * one escaper behind `escapeControls` (client/display-text.ts), the audit table's `printable`
 * (audit/audit-text.ts) and the fleet report's labels. No imports: every layer may use it.
 *
 * Escaped, visibly: C0 controls (ESC, CR, BEL…), DEL and C1 controls (a C1 CSI moves the
 * cursor as ESC [ does), which would recolour, retitle or overwrite what is shown; the Unicode
 * bidirectional controls (embeddings and overrides U+202A–U+202E, isolates U+2066–U+2069, the
 * marks U+200E, U+200F and U+061C), which make a terminal show the rest of a line reversed, so
 * an audit row could read `bytes=4` as `4=setyb` or a file name could pass for another; and the
 * bytes of an OS byte string that are not UTF-8 (protocol/os-bytes.ts, U+DC80–U+DCFF).
 * JSON output is never passed through here: it stays exact.
 */

/** The bidi controls, as a regex character-class body. */
export const BIDI_CONTROL_CLASS = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';

/** Controls but newline and tab, DEL, C1, bidi controls, non-UTF-8 bytes. */
const KEEP_LINES = new RegExp(`[\\0-\\x08\\x0b-\\x1f\\x7f-\\x9f${BIDI_CONTROL_CLASS}]|[\\udc80-\\udcff]`, 'gu');
/** The same with newline and tab too: the text stays on one line (a table cell). */
const ONE_LINE = new RegExp(`[\\0-\\x1f\\x7f-\\x9f${BIDI_CONTROL_CLASS}]|[\\udc80-\\udcff]`, 'gu');

const NAMED: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.codePointAt(0)!;
  if (code >= 0xdc80 && code <= 0xdcff) return `\\x${(code - 0xdc00).toString(16).padStart(2, '0')}`;
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
  return `\\u{${code.toString(16)}}`;
}

/**
 * `text` with what a terminal would act on or reorder shown as escapes (`\x1b`, `\r`,
 * `\u{202e}`, a non-UTF-8 byte as `\xe9`). Newlines and tabs stay unless `oneLine`.
 */
export function escapeTerminalText(text: string, options: { oneLine?: boolean } = {}): string {
  return text.replace(options.oneLine ? ONE_LINE : KEEP_LINES, escapeOne);
}

/** True when `text` holds a bidi control (for `ls -q`-style replacement). */
export const BIDI_CONTROLS = new RegExp(`[${BIDI_CONTROL_CLASS}]`, 'gu');

/**
 * Text a peer wrote (an RST's reason, a refusal's message, a record's field) as one quoted,
 * escaped line of at most `max` characters: it can neither end our line, start one of its
 * own, nor pass for our words.
 */
export function peerText(text: string, max = 200): string {
  const cut = [...text].length > max ? `${[...text].slice(0, max).join('')}…` : text;
  return `"${escapeTerminalText(cut.replace(/["\\]/g, (c) => `\\${c}`), { oneLine: true })}"`;
}
