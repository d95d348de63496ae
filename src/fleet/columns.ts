/**
 * Fitting our own text (status line, host lists) into a number of terminal columns. Cutting
 * by UTF-16 index splits surrogate pairs (a lone half prints as U+FFFD), cuts a colour
 * escape in half (the terminal stays red) and miscounts wide characters. Here the cut falls
 * between grapheme clusters, escapes count as zero columns and are never cut, East Asian
 * wide characters and emoji count as two, and a cut text that had colours ends with a reset.
 */

/** SGR and other CSI sequences: zero columns, never cut. */
const CSI = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;?]*[ -/]*[@-~]`, 'y');
const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Columns a grapheme cluster takes on a terminal (0, 1 or 2). */
export function graphemeColumns(grapheme: string): number {
  const cp = grapheme.codePointAt(0)!;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if (/^\p{M}/u.test(grapheme) || cp === 0x200b || cp === 0x200d) return 0;
  if (/\p{Extended_Pictographic}/u.test(grapheme) && (grapheme.includes('\ufe0f') || cp >= 0x1f000)) return 2;
  return isWide(cp) ? 2 : 1;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

/** Columns `text` takes (escapes count zero). */
export function textColumns(text: string): number {
  let columns = 0;
  for (const part of tokens(text)) if (!part.escape) columns += graphemeColumns(part.text);
  return columns;
}

/**
 * `text` if it fits in `max` columns, else its longest head that fits in `max - 1` followed
 * by "…" (after "\x1b[0m" when the text has escapes).
 */
export function truncateColumns(text: string, max: number): string {
  if (textColumns(text) <= max) return text;
  let out = '';
  let columns = 0;
  let escapes = false;
  for (const part of tokens(text)) {
    if (part.escape) {
      escapes = true;
      out += part.text;
      continue;
    }
    const width = graphemeColumns(part.text);
    if (columns + width > max - 1) break;
    out += part.text;
    columns += width;
  }
  return `${out}${escapes ? '\x1b[0m' : ''}${max >= 1 ? '…' : ''}`;
}

function* tokens(text: string): Generator<{ text: string; escape: boolean }> {
  let plainStart = 0;
  let i = text.indexOf('\x1b');
  while (i >= 0) {
    CSI.lastIndex = i;
    const m = CSI.exec(text);
    if (m) {
      if (i > plainStart) yield* graphemes(text.slice(plainStart, i));
      yield { text: m[0], escape: true };
      plainStart = i + m[0].length;
      i = text.indexOf('\x1b', plainStart);
    } else {
      i = text.indexOf('\x1b', i + 1);
    }
  }
  if (plainStart < text.length) yield* graphemes(text.slice(plainStart));
}

function* graphemes(text: string): Generator<{ text: string; escape: boolean }> {
  for (const { segment } of segmenter.segment(text)) yield { text: segment, escape: false };
}
