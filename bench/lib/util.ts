/** Small helpers shared by the benchmarks: statistics, /proc readers, child-process timing. */
import { readFileSync, openSync, closeSync } from 'node:fs';
import { spawn, type SpawnOptions } from 'node:child_process';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function minMax(values: number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

/** `1234.5` → `"1,234.5"` with `digits` decimals. */
export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A `/proc/PID/status` field in KiB (VmRSS, VmHWM, …). */
export function procStatusKiB(pid: number, field: string): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** A `/proc/PID/smaps_rollup` field in KiB (Pss, Rss, …), or NaN when not readable. */
export function smapsRollupKiB(pid: number, field: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Median of `count` samples of `read()` taken `gapMs` apart (damps GC noise). */
export async function sampleMedian(read: () => number, count = 5, gapMs = 200): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(gapMs);
    values.push(read());
  }
  return median(values);
}

export interface TimedRun {
  seconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Run `file args` with stdout to /dev/null, stdin from /dev/null; wall time from spawn to
 * 'close'. stderr is kept (last 4 KiB) for error reports.
 */
export function timeRun(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const devnull = openSync('/dev/null', 'r+');
    const spawnOptions: SpawnOptions = { stdio: [devnull, devnull, 'pipe'], env: options.env ?? process.env };
    const started = performance.now();
    const child = spawn(file, args, spawnOptions);
    closeSync(devnull);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-4096);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ seconds: (performance.now() - started) / 1000, code, signal, stderr });
    });
  });
}

/** The spread of `values` as `lo–hi` with `digits` decimals and a unit. */
export function range(values: number[], digits = 1, unit = ''): string {
  const [lo, hi] = minMax(values);
  return `${fmt(lo, digits)}–${fmt(hi, digits)}${unit}`;
}
