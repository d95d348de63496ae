/**
 * Turning a run into text people and scripts can read: results grouped by identical output
 * (`web[01-12],db03 (13): …`, as `clush -b`), host-prefixed lines that are never split or
 * mixed (`--stream`), JSON Lines (`--json`), and the one-line summary. Pure functions and
 * small stateful splitters; no I/O here.
 */
import { TextDecoder } from 'node:util';
import { foldNames } from './ranges.js';
import type { FleetEvent, FleetSummary, HostResult } from './results.js';

/** A partial line longer than this is emitted as a line of its own (bounded memory). */
export const MAX_PENDING_LINE = 64 * 1024;

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
 * Splits each host's stream into whole lines, so `--stream` prints `host: line` records
 * that never mix two hosts or cut a line in half, whatever the chunking.
 */
export class LineSplitter {
  #pending = new Map<string, Buffer>();

  /** Whole lines (without "\n") completed by `data`. */
  push(host: string, stream: string, data: Buffer): string[] {
    const key = `${stream}\0${host}`;
    const previous = this.#pending.get(key);
    let buffer = previous ? Buffer.concat([previous, data]) : data;
    const lines: string[] = [];
    let start = 0;
    for (let nl = buffer.indexOf(10, start); nl >= 0; nl = buffer.indexOf(10, start)) {
      lines.push(buffer.toString('utf8', start, nl));
      start = nl + 1;
    }
    buffer = buffer.subarray(start);
    if (buffer.length > MAX_PENDING_LINE) {
      lines.push(buffer.toString('utf8'));
      buffer = Buffer.alloc(0);
    }
    if (buffer.length > 0) this.#pending.set(key, Buffer.from(buffer));
    else this.#pending.delete(key);
    return lines;
  }

  /** The unterminated last line of a host's stream, if any. */
  flush(host: string, stream: string): string | null {
    const key = `${stream}\0${host}`;
    const rest = this.#pending.get(key);
    this.#pending.delete(key);
    return rest ? rest.toString('utf8') : null;
  }
}

/** `web01 | text` for stdout, `web01 ! text` for stderr; the name padded to `width`. */
export function prefixLine(host: string, stream: 'stdout' | 'stderr', line: string, width: number, style: Style): string {
  const name = paint(style, hostColor(host), host.padEnd(width));
  const mark = stream === 'stderr' ? paint(style, 31, '!') : '|';
  return `${name} ${mark} ${line}\n`;
}

/** What makes two hosts' results print as one group. */
function groupKey(r: HostResult): string {
  const failure = r.status === 'ok' ? '' : `${r.status}\0${r.exitCode}\0${r.signal}\0${r.error?.code ?? ''}`;
  return `${failure}\0${r.stdout}\0${r.stderr}`;
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

/** The grouped report (stdout): identical output once per group, failures last. */
export function formatGrouped(summary: FleetSummary, style: Style): string {
  let out = '';
  for (const group of groupResults(summary.results)) {
    const { sample } = group;
    const ok = sample.status === 'ok';
    const header = `${foldNames(group.hosts)} (${group.hosts.length})`;
    const outcome = ok ? '' : ` ${describeOutcome(sample)}`;
    const stdout = sample.stdout.replace(/\n$/, '');
    const stderr = sample.stderr.replace(/\n$/, '');
    const head = paint(style, ok ? 32 : 31, `${header}:${outcome}`);
    if (stdout === '' && stderr === '') {
      out += `${head}${ok ? ' (no output)' : ''}\n`;
    } else if (ok && stderr === '' && !stdout.includes('\n')) {
      out += `${head} ${stdout}\n`;
    } else {
      out += `${head}\n`;
      if (stdout !== '') out += stdout.split('\n').map((l) => `  ${l}\n`).join('');
      if (stderr !== '') out += stderr.split('\n').map((l) => `  ${paint(style, 31, '!')} ${l}\n`).join('');
    }
    if (sample.truncated) out += '  (output truncated)\n';
  }
  for (const r of summary.results) {
    if (r.status === 'ok' || r.status === 'failed' || r.status === 'timed-out' || r.status === 'skipped' || r.status === 'canceled') continue;
    out += `${paint(style, 31, `${r.host}:`)} ${describeOutcome(r)}\n`;
  }
  return out;
}

/** The summary for stderr: counts, then failing hosts by kind (folded), then the time. */
export function formatSummary(summary: FleetSummary, style: Style): string {
  const parts = [`${summary.ok}/${summary.total} ok`];
  const by = (pred: (r: HostResult) => boolean) => summary.results.filter(pred).map((r) => r.host);
  const failed = by((r) => r.status === 'failed' || r.status === 'error');
  const timedOut = by((r) => r.status === 'timed-out');
  const unreachable = by((r) => r.status === 'unreachable' || r.status === 'lost');
  const refused = by((r) => r.status === 'host-key' || r.status === 'auth');
  const add = (label: string, hosts: string[]) => {
    if (hosts.length === 0) return;
    const names = foldNames(hosts);
    parts.push(paint(style, 31, `${hosts.length} ${label} (${names.length > 160 ? `${names.slice(0, 159)}…` : names})`));
  };
  add('failed', failed);
  add('timed out', timedOut);
  add('unreachable', unreachable);
  add('refused (host key/auth)', refused);
  if (summary.canceled) parts.push(`${summary.canceled} canceled`);
  if (summary.skipped) parts.push(`${summary.skipped} skipped (${summary.stoppedBy})`);
  parts.push(`${(summary.durationMs / 1000).toFixed(2)} s`);
  return `shellwire: ${parts.join(', ')}\n`;
}

/**
 * JSON Lines. Output chunks are decoded per host and stream so a UTF-8 character split
 * between chunks is never mangled; bytes that are not UTF-8 go out as base64
 * (`"encoding":"base64"`).
 */
export class JsonLines {
  #decoders = new Map<string, TextDecoder>();

  line(event: FleetEvent): string | null {
    switch (event.type) {
      case 'output': {
        const key = `${event.stream}\0${event.host}`;
        let decoder = this.#decoders.get(key);
        if (!decoder) this.#decoders.set(key, (decoder = new TextDecoder('utf-8', { fatal: true })));
        try {
          const data = decoder.decode(event.data, { stream: true });
          if (data === '') return null;
          return `${JSON.stringify({ type: 'output', host: event.host, stream: event.stream, data })}\n`;
        } catch {
          this.#decoders.delete(key);
          return `${JSON.stringify({ type: 'output', host: event.host, stream: event.stream, data: event.data.toString('base64'), encoding: 'base64' })}\n`;
        }
      }
      case 'result':
        return `${JSON.stringify({ type: 'result', ...event.result })}\n`;
      case 'batch':
        return `${JSON.stringify(event)}\n`;
      case 'summary': {
        const { results: _results, ...counts } = event.summary;
        return `${JSON.stringify({ type: 'summary', ...counts })}\n`;
      }
      default:
        return null;
    }
  }
}
