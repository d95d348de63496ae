/**
 * Dates and times as people type them on a command line or in users.yaml: ISO 8601 in full
 * forms only. `new Date(text)` alone is not enough: V8 reads a bare number as a year
 * (`new Date('90')` is 1990-01-01, `'5'` is 2001) and rolls impossible dates over
 * (`2025-02-30` is March 2nd), so a typo silently becomes some other moment.
 */

/** The accepted forms, for help texts and error messages. */
export const ISO_FORMS = 'YYYY-MM-DD (midnight UTC) or YYYY-MM-DDTHH:MM[:SS] (local time; end it in Z or +HH:MM for another zone)';

const FORM = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** The moment `text` names, or undefined when it is not one of the full ISO forms or no real date. */
export function parseIsoDateTime(text: string): Date | undefined {
  const trimmed = text.trim();
  const match = FORM.exec(trimmed);
  if (!match) return undefined;
  const [year, month, day, hour = 0, minute = 0, second = 0] = match.slice(1, 7).map((part) => (part === undefined ? undefined : Number(part))) as number[];
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth || hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(trimmed.replace(' ', 'T').replace(/z$/, 'Z'));
  return Number.isNaN(date.getTime()) ? undefined : date;
}
