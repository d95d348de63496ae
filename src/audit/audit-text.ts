/**
 * The audit log as text for people: the table `shellwire audit` prints, cells made safe for
 * a terminal, and the time expressions `--since`/`--until` accept. No I/O here.
 */
import type { AuditRow } from './audit-event.js';
import { parseIsoDateTime } from '../iso-time.js';
import { escapeTerminalText } from '../terminal-text.js';

const UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/**
 * `--since`/`--until`: an age before `now` (`90s`, `30m`, `1h`, `2d`, `1w`, `1.5h`) or an
 * ISO 8601 date (`2025-01-31`, midnight UTC) or date-time (`2025-01-31T12:00`, local time
 * unless it ends in `Z` or an offset).
 */
export function parseTimeArg(text: string, now: Date): Date | undefined {
  const age = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(text.trim());
  if (age) return new Date(now.getTime() - Number(age[1]) * UNITS[age[2] as keyof typeof UNITS]);
  return parseIsoDateTime(text);
}

const COLUMNS: Array<[string, (row: AuditRow) => string, 'left' | 'right']> = [
  ['TIME (UTC)', (r) => r.time.toISOString().replace('T', ' ').slice(0, 19), 'left'],
  ['USER', (r) => r.user ?? '-', 'left'],
  ['OS USER', (r) => r.osUser ?? '-', 'left'],
  ['ADDRESS', (r) => r.address ?? '-', 'left'],
  ['KIND', (r) => r.kind, 'left'],
  ['EXIT', (r) => r.signal ?? (r.exitCode === null ? '-' : String(r.exitCode)), 'right'],
  ['DURATION', (r) => (r.durationMs === null ? '-' : formatDuration(r.durationMs)), 'right'],
  ['IN', (r) => (r.bytesIn === null ? '-' : formatBytes(r.bytesIn)), 'right'],
  ['OUT', (r) => (r.bytesOut === null ? '-' : formatBytes(r.bytesOut)), 'right'],
  // Last, so a long command does not push the other columns around. Events without a
  // command show their detail (a denial's rule, a failure's reason).
  ['COMMAND / DETAIL', (r) => r.command ?? (r.detail === null ? '' : JSON.stringify(r.detail)), 'left'],
];

/**
 * Where a gateway row's channel went (`detail.host`) or, on a host, who relayed it
 * (`detail.operator` via `detail.via`); '' for a row with neither.
 */
export function relayCell(row: AuditRow): string {
  const detail = (row.detail ?? {}) as Record<string, unknown>;
  if (typeof detail.host === 'string') return detail.host;
  if (typeof detail.via === 'string') return typeof detail.operator === 'string' ? `${detail.operator} via ${detail.via}` : `via ${detail.via}`;
  return '';
}

/** Shown only when some row went through a gateway: a daemon's own table keeps its columns. */
const RELAY_COLUMN: [string, (row: AuditRow) => string, 'left' | 'right'] = ['HOST / VIA', (r) => relayCell(r) || '-', 'left'];

/** A fixed-width table; every cell is made safe for a terminal first (see `printable`). */
export function formatTable(rows: AuditRow[]): string {
  const columns = rows.some((r) => relayCell(r) !== '') ? [...COLUMNS.slice(0, 4), RELAY_COLUMN, ...COLUMNS.slice(4)] : COLUMNS;
  const cells = rows.map((row) => columns.map(([, get]) => printable(get(row))));
  const widths = columns.map(([title], i) => Math.max(title.length, ...cells.map((line) => line[i]!.length)));
  const render = (line: string[]) =>
    line
      .map((cell, i) => {
        if (i === line.length - 1) return cell;
        return columns[i]![2] === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [render(columns.map(([title]) => title)), ...cells.map(render)].map((line) => `${line}\n`).join('');
}

/**
 * Command text and paths are whatever a client sent: escape control characters (C0, DEL, C1)
 * so a command holding `\x1b]…` cannot rewrite the operator's terminal, a newline cannot
 * forge a table row, and a bidi override (U+202E) cannot make the rest of a row read reversed.
 */
export function printable(text: string): string {
  return escapeTerminalText(text, { oneLine: true });
}

function formatDuration(ms: number): string {
  if (ms < 999.5) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${(ms / 1_000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1_000)).padStart(2, '0')}s`;
  return `${Math.floor(ms / 3_600_000)}h${String(Math.floor((ms % 3_600_000) / 60_000)).padStart(2, '0')}m`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}${units[unit]}`;
}
