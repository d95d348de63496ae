/**
 * Turning a run into what people read: results grouped by identical output
 * (`web[01-12],db03 (13): …`, as `clush -b`), host-prefixed lines that are never mixed
 * (`--stream`; lines come from line-splitter.ts), and the one-line summary. The command's
 * output stays bytes, written as they came; only our own labels are text. Pure functions,
 * no I/O. JSON Lines are in json-lines.ts.
 */
import { foldNames } from './ranges.js';
import { truncateColumns } from './columns.js';
import type { Line } from './line-splitter.js';
import type { FleetSummary, HostResult } from './results.js';
import { escapeTerminalText } from '../terminal-text.js';

/**
 * Our labels hold text from elsewhere (host names from a gateway's list or the inventory,
 * error messages from hosts): shown on one line, controls and bidi overrides escaped, so
 * none can forge a line of the report or make it read reversed. The output stays bytes.
 */
const label = (text: string) => escapeTerminalText(text, { oneLine: true });

export interface Style {
  color: boolean;
}

const COLORS = [36, 33, 35, 32, 34, 96, 93, 95, 92, 94];
const paint = (style: Style, code: number, text: string) => (style.color ? `\x1b[${code}m${text}\x1b[0m` : text);

/** A stable colour per host name. */
export function hostColor(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return COLORS[h % COLORS.length]!;
}

/**
 * One `--stream` record: `web01 | text` for stdout, `web01 ! text` for stderr, the name padded
 * to `width`, the line's bytes as they are. A piece of an over-long line that goes on in the
 * next record has `+` after the mark (`web01 |+ …`). A carriage return inside the line
 * repeats the prefix after it, so a terminal that returns to column 0 redraws the label
 * instead of showing the rest of the line as nobody's.
 */
export function prefixLine(host: string, stream: 'stdout' | 'stderr', line: Line, width: number, style: Style): Buffer {
  const name = paint(style, hostColor(host), label(host).padEnd(width));
  const mark = stream === 'stderr' ? paint(style, 31, '!') : '|';
  const prefix = Buffer.from(`${name} ${mark}${line.end === 'continued' ? '+' : ''} `);
  const out = [prefix];
  relabelReturns(out, line.bytes, prefix);
  out.push(NEWLINE);
  return Buffer.concat(out);
}

/**
 * Appends `bytes` to `out`, with `label` after each "\r" that has more bytes after it.
 * (Appended one by one, never spread: a line may hold a million of them.)
 */
function relabelReturns(out: Buffer[], bytes: Buffer, label: Buffer): void {
  let start = 0;
  for (let cr = bytes.indexOf(CR); cr >= 0 && cr + 1 < bytes.length; cr = bytes.indexOf(CR, start)) {
    out.push(bytes.subarray(start, cr + 1), label);
    start = cr + 1;
  }
  out.push(bytes.subarray(start));
}

const NEWLINE = Buffer.of(0x0a);
const CR = 0x0d;

/** What makes two hosts' results print as one group. */
function groupKey(r: HostResult): string {
  const failure = r.status === 'ok' ? '' : `${r.status}\0${r.exitCode}\0${r.signal}\0${r.error?.code ?? ''}`;
  // latin1 maps each byte to one character: the key compares bytes, not their decoding
  // (two hosts printing different invalid bytes must not share one U+FFFD group).
  return `${failure}\0${r.stdoutBytes.length}\0${r.stdoutBytes.toString('latin1')}\0${r.stderrBytes.toString('latin1')}`;
}

export interface ResultGroup {
  hosts: string[];
  sample: HostResult;
}

/** Results grouped by identical outcome and output; successes first, failures last. */
export function groupResults(results: readonly HostResult[]): ResultGroup[] {
  const groups = new Map<string, ResultGroup>();
  for (const r of results) {
    if (r.status === 'skipped' || r.status === 'canceled') continue;
    if (r.error && r.status !== 'timed-out') continue; // connection problems are listed host by host
    const key = groupKey(r);
    const group = groups.get(key);
    if (group) group.hosts.push(r.host);
    else groups.set(key, { hosts: [r.host], sample: r });
  }
  const all = [...groups.values()];
  return [...all.filter((g) => g.sample.status === 'ok'), ...all.filter((g) => g.sample.status !== 'ok')];
}

/** How a failed result ended, in a few words: `exit 3`, `killed by SIGKILL`, `timed out …`. */
export function describeOutcome(r: HostResult): string {
  switch (r.status) {
    case 'ok':
      return 'ok';
    case 'failed':
      return r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    case 'timed-out':
      return r.error?.message ?? 'timed out';
    case 'skipped':
    case 'canceled':
      return r.error?.message ?? r.status;
    default:
      return `${r.status}: ${r.error?.message ?? 'unknown error'}`;
  }
}

/**
 * The grouped report (stdout): identical output once per group, failures last. The output's
 * bytes are written as they are; only one trailing newline per stream is dropped (each
 * line is indented, so it ends with one anyway).
 */
export function formatGrouped(summary: FleetSummary, style: Style, options: { truncatedNote?: string } = {}): Buffer {
  const out: Buffer[] = [];
  const text = (t: string) => out.push(Buffer.from(t));
  for (const group of groupResults(summary.results)) {
    const { sample } = group;
    const ok = sample.status === 'ok';
    const header = `${label(foldNames(group.hosts))} (${group.hosts.length})`;
    const outcome = ok ? '' : ` ${label(describeOutcome(sample))}`;
    const stdout = withoutFinalNewline(sample.stdoutBytes);
    const stderr = withoutFinalNewline(sample.stderrBytes);
    const head = paint(style, ok ? 32 : 31, `${header}:${outcome}`);
    if (stdout.length === 0 && stderr.length === 0) {
      text(`${head}${ok ? ' (no output)' : ''}\n`);
    } else if (ok && stderr.length === 0 && !stdout.includes(0x0a) && !stdout.includes(CR)) {
      // One line of output goes beside the names (a "\r" would send it over them).
      out.push(Buffer.from(`${head} `), stdout, NEWLINE);
    } else {
      text(`${head}\n`);
      if (stdout.length > 0) indentLines(out, stdout, Buffer.from('  '));
      if (stderr.length > 0) indentLines(out, stderr, Buffer.from(`  ${paint(style, 31, '!')} `));
    }
    if (sample.truncated) text(`  (output truncated${options.truncatedNote ?? ''})\n`);
  }
  for (const r of summary.results) {
    if (r.status === 'ok' || r.status === 'failed' || r.status === 'timed-out' || r.status === 'skipped' || r.status === 'canceled') continue;
    text(`${paint(style, 31, `${label(r.host)}:`)} ${label(describeOutcome(r))}\n`);
  }
  return Buffer.concat(out);
}

/** After "(output truncated" for a broadcast's results: each holds what fits one message; a tunnel streams everything. */
export const BROADCAST_TRUNCATED_NOTE = ': a broadcast result keeps at most 256 KiB per stream; add --tunnel for all of it';

function withoutFinalNewline(bytes: Buffer): Buffer {
  return bytes.length > 0 && bytes[bytes.length - 1] === 0x0a ? bytes.subarray(0, -1) : bytes;
}

/**
 * Appends to `out` each line of `bytes` after `indent` (repeated after a "\r" inside the
 * line), ending in "\n". Appended one by one: a million lines must not be spread as arguments.
 */
function indentLines(out: Buffer[], bytes: Buffer, indent: Buffer): void {
  let start = 0;
  for (;;) {
    const nl = bytes.indexOf(0x0a, start);
    out.push(indent);
    relabelReturns(out, bytes.subarray(start, nl < 0 ? bytes.length : nl), indent);
    out.push(NEWLINE);
    if (nl < 0) return;
    start = nl + 1;
  }
}

/**
 * The summary for stderr: counts, then failing hosts by kind (folded), hosts whose kept output
 * was cut (`countTruncated`: when output was kept, not streamed), then the time.
 */
export function formatSummary(summary: FleetSummary, style: Style, options: { countTruncated?: boolean } = {}): string {
  const parts = [`${summary.ok}/${summary.total} ok`];
  const by = (pred: (r: HostResult) => boolean) => summary.results.filter(pred).map((r) => r.host);
  const failed = by((r) => r.status === 'failed' || r.status === 'error');
  const timedOut = by((r) => r.status === 'timed-out');
  const unreachable = by((r) => r.status === 'unreachable' || r.status === 'lost');
  const refused = by((r) => r.status === 'host-key' || r.status === 'auth');
  const add = (what: string, hosts: string[]) => {
    if (hosts.length === 0) return;
    const names = label(foldNames(hosts));
    parts.push(paint(style, 31, `${hosts.length} ${what} (${truncateColumns(names, 160)})`));
  };
  add('failed', failed);
  add('timed out', timedOut);
  add('unreachable', unreachable);
  add('refused (host key/auth)', refused);
  // Output cut (a broadcast keeps 256 KiB per stream; a grouped run 1 MiB): said where it is not missed.
  // Not for a streamed direct run: its output was printed as it came, none is kept (all "truncated").
  const truncated = options.countTruncated ? by((r) => r.truncated) : [];
  if (truncated.length > 0) parts.push(paint(style, 33, `${truncated.length} with output truncated (${truncateColumns(label(foldNames(truncated)), 160)})`));
  if (summary.canceled) parts.push(`${summary.canceled} canceled`);
  if (summary.skipped) parts.push(`${summary.skipped} skipped (${summary.stoppedBy})`);
  parts.push(`${(summary.durationMs / 1000).toFixed(2)} s`);
  return `shellwire: ${parts.join(', ')}\n`;
}


/**
 * put/get to many hosts (stdout): the hosts that got everything, folded into one line with
 * what they copied, then each failed host on its own line with its error (never folded: each
 * has its own reason). `quiet`: the failures only.
 */
export function formatTransfers(summary: FleetSummary, style: Style, { quiet = false } = {}): string {
  const lines: string[] = [];
  const ok = summary.results.filter((r) => r.status === 'ok');
  if (ok.length > 0 && !quiet) {
    // Hosts that copied the same number of files are one group (bytes differ when one resumed).
    const groups = new Map<string, string[]>();
    for (const r of ok) {
      const t = r.transfer;
      const what = t ? `${t.files} file${t.files === 1 ? '' : 's'}${t.directories ? `, ${t.directories} dir${t.directories === 1 ? '' : 's'}` : ''}` : 'done';
      groups.set(what, [...(groups.get(what) ?? []), r.host]);
    }
    for (const [what, hosts] of groups) lines.push(`${paint(style, 32, `${label(foldNames(hosts))} (${hosts.length}): ok`)}, ${what}, SHA-256 verified`);
  }
  for (const r of summary.results) {
    if (r.status === 'ok' || r.status === 'skipped' || r.status === 'canceled') continue;
    lines.push(`${paint(style, 31, `${label(r.host)}:`)} ${label(describeOutcome(r))}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
