/**
 * Durations and sizes as people type them, for every flag and config key that takes one:
 * `--timeout 1s`, `--connect-timeout 500ms`, `--limit-rate 5M`, `audit --since 1h`,
 * `serve --kill-grace 2.5`. A bare number keeps the unit the flag always had (seconds for
 * most durations, bytes for sizes), so scripts written before units stay correct.
 *
 * Durations: a number with an optional unit — ms, s, m (minutes), h, d, w — or several of
 * them in decreasing order as systemd and Go write them (`1h30m`, `2m30s`).
 * Sizes: a number with an optional suffix — K, M, G, T (powers of 1024, as curl, dd and
 * systemd read them; `KiB`, `MiB`, … the same), or KB, MB, GB, TB (powers of 1000, as rsync
 * reads them) — and an optional trailing `B`/`/s` is allowed (`500KB/s`).
 */

import { ISO_FORMS, parseIsoDateTime } from '../iso-time.js';

/** Thrown for text that is no duration or size; the message lists the accepted forms. */
export class UnitParseError extends Error {
  override name = 'UnitParseError';
}

export const DURATION_UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;

/** What a duration error says the forms are, given the unit a bare number means. */
export function durationForms(bareUnit: DurationUnit = 's'): string {
  const bare = { ms: 'milliseconds', s: 'seconds', m: 'minutes', h: 'hours', d: 'days', w: 'weeks' }[bareUnit];
  return `a duration such as 1.5 (${bare}), 500ms, 30s, 2m, 1h, 1d or 1h30m`;
}

const NUMBER = String.raw`(\d+(?:\.\d*)?|\.\d+)`;
const DURATION_PART = new RegExp(`^${NUMBER}\\s*(ms|s|m|h|d|w)`, 'i');
const BARE = new RegExp(`^${NUMBER}$`);

/**
 * Milliseconds in `text`. A bare number is in `bareUnit`. Negative values, NaN, Infinity,
 * repeated or out-of-order units (`1s1h`) and empty text are refused with `UnitParseError`.
 * The result may have a fraction (`1.0005` → 1000.5); callers round to their resolution.
 */
export function parseDuration(text: string, bareUnit: DurationUnit = 's'): number {
  const trimmed = text.trim();
  const fail = (): never => {
    throw new UnitParseError(`takes ${durationForms(bareUnit)}`);
  };
  if (BARE.test(trimmed)) return Number(trimmed) * DURATION_UNITS[bareUnit];
  let rest = trimmed;
  let total = 0;
  let last = Infinity;
  while (rest.length > 0) {
    const match = DURATION_PART.exec(rest);
    if (!match) fail();
    const scale = DURATION_UNITS[match![2]!.toLowerCase() as DurationUnit];
    // `1h30m` is one duration; `30m1h` or `1m1m` is a typo, not a sum to guess at.
    if (scale >= last) fail();
    last = scale;
    total += Number(match![1]) * scale;
    rest = rest.slice(match![0].length).trimStart();
  }
  if (trimmed.length === 0 || !Number.isFinite(total)) fail();
  return total;
}

const SIZE = new RegExp(`^${NUMBER}\\s*(?:([kmgt])(i?)(b?)|(b?))(?:/s)?$`, 'i');

/** What a size error says the forms are. */
export function sizeForms(bareUnit = 1): string {
  return `a size such as ${bareUnit === 1 ? '65536 (bytes)' : `64 (units of ${bareUnit} bytes)`}, 512K, 5M, 1G or 10MiB (K, M, G, T are powers of 1024; KB, MB, GB, TB of 1000)`;
}

/**
 * Bytes in `text` (rounded down to a whole byte). A bare number counts `bareUnit` bytes.
 * Negative, fractional-byte-only, NaN and unknown suffixes are refused with `UnitParseError`.
 */
export function parseSize(text: string, bareUnit = 1): number {
  const match = SIZE.exec(text.trim());
  if (!match) throw new UnitParseError(`takes ${sizeForms(bareUnit)}`);
  const [, digits, prefix, binary, byteSuffix] = match;
  let scale = bareUnit;
  if (prefix !== undefined) {
    const power = 'kmgt'.indexOf(prefix.toLowerCase()) + 1;
    // "KB" (no i, a B) is decimal as rsync reads it; "K" and "KiB" are binary as curl reads them.
    const base = binary === '' && byteSuffix !== '' ? 1000 : 1024;
    scale = base ** power;
  } else if (match[5] !== '' && match[5] !== undefined) {
    scale = 1; // "512B": bytes, whatever a bare number means for this flag
  }
  const bytes = Math.floor(Number(digits) * scale);
  if (!Number.isSafeInteger(bytes)) throw new UnitParseError(`takes ${sizeForms(bareUnit)} (this one is too large)`);
  return bytes;
}

/** What `--expires` says it takes. */
export const EXPIRY_FORMS = `a duration with a unit (30d, 12h, 90m, 1h30m, 2w) or a date: ${ISO_FORMS}`;

/**
 * When something made now should expire: `30d`, `12h`, `1h30m` from `now`, or an ISO date.
 * A bare number is refused (days? hours? V8 reads it as a year), as is anything that is not
 * in the future: either would make a credential that is dead from the start.
 */
export function parseExpiry(text: string, now: Date = new Date()): Date {
  const trimmed = text.trim();
  if (BARE.test(trimmed)) throw new UnitParseError(`give a unit: 30d, 12h, 90m (a bare number could mean days, hours or a year), or a date such as ${new Date(now.getTime() + 30 * DURATION_UNITS.d).toISOString().slice(0, 10)}`);
  const date = parseIsoDateTime(trimmed);
  if (date !== undefined) {
    if (date.getTime() <= now.getTime()) throw new UnitParseError(`${trimmed} (${date.toISOString()}) is in the past; give a later date, or a duration such as 30d`);
    return date;
  }
  let ms: number;
  try {
    ms = parseDuration(trimmed);
  } catch {
    throw new UnitParseError(`takes ${EXPIRY_FORMS}`);
  }
  if (ms <= 0) throw new UnitParseError(`${trimmed} would expire at once; give a duration longer than 0 (30d, 12h, 90m)`);
  return new Date(now.getTime() + ms);
}
