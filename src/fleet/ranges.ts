/**
 * Host-name ranges, both ways: `web[01-12].example` → `web01.example` … `web12.example`
 * (also `[1-3,7]`, Ansible's `[01:40]`, letters `[a-c]`, several brackets = every
 * combination), and the fold back (`web01…web12,db03` → `web[01-12],db03`) that
 * grouped output prints, like clush's node sets.
 */
import { ErrorCode, UsageError } from '../errors.js';

/** Refuse to expand a pattern into more names than this: almost always a typo (`[1-100000]`). */
export const MAX_RANGE_EXPANSION = 65_536;

// Only digits, letters, `-`, `:` and `,` inside brackets: `[::1]` (an IPv6 literal) is not a range.
const RANGE_BODY = /^(?:\d+(?:[-:]\d+)?|[a-z](?:[-:][a-z])?)(?:,(?:\d+(?:[-:]\d+)?|[a-z](?:[-:][a-z])?))*$/i;

/** True when `text` contains a `[…]` range to expand. */
export function hasRange(text: string): boolean {
  for (const match of text.matchAll(/\[([^\]]*)\]/g)) if (RANGE_BODY.test(match[1]!)) return true;
  return false;
}

/**
 * Expand every range in `pattern`, in order. A pattern without ranges expands to itself.
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a malformed range or one that expands past `MAX_RANGE_EXPANSION` names.
 */
export function expandRange(pattern: string): string[] {
  const parts: string[][] = [];
  let rest = pattern;
  let literal = '';
  for (;;) {
    const open = rest.indexOf('[');
    if (open < 0) break;
    const close = rest.indexOf(']', open);
    if (close < 0) throw badRange(pattern, 'a "[" has no matching "]"');
    const body = rest.slice(open + 1, close);
    if (!RANGE_BODY.test(body)) {
      // Not a range (an IPv6 literal in brackets): keep it as text.
      literal += rest.slice(0, close + 1);
      rest = rest.slice(close + 1);
      continue;
    }
    parts.push([literal + rest.slice(0, open)]);
    parts.push(expandBody(pattern, body));
    literal = '';
    rest = rest.slice(close + 1);
  }
  parts.push([literal + rest]);
  let total = 1;
  for (const part of parts) total *= part.length;
  if (total > MAX_RANGE_EXPANSION) throw badRange(pattern, `it expands to ${total} names (limit ${MAX_RANGE_EXPANSION})`);
  let names = [''];
  for (const part of parts) {
    const next: string[] = [];
    for (const prefix of names) for (const piece of part) next.push(prefix + piece);
    names = next;
  }
  return names;
}

function expandBody(pattern: string, body: string): string[] {
  const out: string[] = [];
  for (const item of body.split(',')) {
    const [from, to = from] = item.split(/[-:]/) as [string, string?];
    if (/^\d+$/.test(from)) {
      const start = Number(from);
      const end = Number(to);
      if (end < start) throw badRange(pattern, `range ${item} goes backwards`);
      // `01-12` pads to the width of the bounds; `1-12` does not pad.
      const width = from.length > 1 && from.startsWith('0') ? Math.max(from.length, to.length) : 0;
      if (end - start >= MAX_RANGE_EXPANSION) throw badRange(pattern, `range ${item} is too large`);
      for (let n = start; n <= end; n++) out.push(String(n).padStart(width, '0'));
    } else {
      const start = from.charCodeAt(0);
      const end = to.charCodeAt(0);
      if (end < start) throw badRange(pattern, `range ${item} goes backwards`);
      for (let c = start; c <= end; c++) out.push(String.fromCharCode(c));
    }
  }
  return out;
}

function badRange(pattern: string, why: string): UsageError {
  return new UsageError(ErrorCode.BAD_TARGET, `Bad range "${pattern}": ${why}.`);
}

interface Parsed {
  name: string;
  prefix: string;
  digits: string;
  suffix: string;
}

/**
 * Fold names into the shortest readable node set: `web01,web02,web03,db1` → `web[01-03],db1`.
 * Folds on the last run of digits; keeps zero-padding apart from unpadded numbers; the
 * order is that of first appearance.
 */
export function foldNames(names: readonly string[]): string {
  const parsed = new Map<string, Parsed>();
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    const m = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (m) parsed.set(name, { name, prefix: m[1]!, digits: m[2]!, suffix: m[3]! });
  }
  // Widths that are zero-padded somewhere, per prefix/suffix: `web10` joins `web01…`.
  const padded = new Set<string>();
  for (const p of parsed.values()) if (p.digits.length > 1 && p.digits.startsWith('0')) padded.add(`${p.prefix}\0${p.suffix}\0${p.digits.length}`);
  const groups = new Map<string, Parsed[]>();
  const order: Array<{ key: string } | { plain: string }> = [];
  for (const name of names) {
    if (!seen.delete(name)) continue; // first appearance only
    const p = parsed.get(name);
    if (!p) {
      order.push({ plain: name });
      continue;
    }
    const widthKey = `${p.prefix}\0${p.suffix}\0${p.digits.length}`;
    const key = padded.has(widthKey) ? widthKey : `${p.prefix}\0${p.suffix}\0n`;
    let group = groups.get(key);
    if (!group) {
      groups.set(key, (group = []));
      order.push({ key });
    }
    group.push(p);
  }
  const out: string[] = [];
  for (const entry of order) {
    if ('plain' in entry) {
      out.push(entry.plain);
      continue;
    }
    const group = groups.get(entry.key)!;
    if (group.length === 1) {
      out.push(group[0]!.name);
      continue;
    }
    const { prefix, suffix } = group[0]!;
    const width = entry.key.endsWith('\0n') ? 0 : group[0]!.digits.length;
    const numbers = [...new Set(group.map((g) => Number(g.digits)))].sort((a, b) => a - b);
    const pieces: string[] = [];
    for (let i = 0; i < numbers.length; ) {
      let j = i;
      while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++;
      const a = String(numbers[i]).padStart(width, '0');
      const b = String(numbers[j]).padStart(width, '0');
      pieces.push(i === j ? a : `${a}-${b}`);
      i = j + 1;
    }
    out.push(`${prefix}[${pieces.join(',')}]${suffix}`);
  }
  return out.join(',');
}
