/**
 * The bench harness: options (BENCH_QUICK, BENCH_ROUNDS, BENCH_ONLY), the build, the
 * reference sshd and the shared daemon's lifecycle, one section per measure (a failing
 * measure becomes ERROR rows, the others still run), and the table printed and written to
 * bench/results.md. What is measured lives in bench/measures/, one file per row (or rows
 * measured together). With several rounds the whole table is measured that many times and
 * each cell shows the median over rounds with the spread: `median (min–max)`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../../dist/index.js';
import { CLI, ROOT, killAllDaemonsSync, removeBenchDirs, startDaemon, type BenchDaemon } from './daemon.js';
import { startSshd, stopSshdSync, type Sshd } from './peers.js';
import { killChildrenSync } from './children.js';
import { fmt, median } from './util.js';

export const QUICK = process.env.BENCH_QUICK === '1';
/** Times the whole table is measured (BENCH_ROUNDS); 3 for the full bench, 1 for BENCH_QUICK=1. */
export const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3)) || 1);
/**
 * Repetitions inside one round; BENCH_QUICK=1 is a short smoke run. With several rounds each
 * round does fewer (the medians are over rounds as well), so three rounds stay near 10 minutes.
 */
export const CFG = QUICK
  ? { rounds: 3, seqN: 60, warm: 20, concRounds: 1, concTotal: 320, concTotal256: 512, streamRuns: 1, libRuns: 1, coldRuns: 5, memRounds: 1, idleN: 200, yesSeconds: 5, fileMiB: 128, fileRuns: 1 }
  : ROUNDS > 1
    ? { rounds: 3, seqN: 200, warm: 50, concRounds: 1, concTotal: 640, concTotal256: 1024, streamRuns: 2, libRuns: 1, coldRuns: 10, memRounds: 1, idleN: 200, yesSeconds: 20, fileMiB: 1024, fileRuns: 1 }
    : { rounds: 7, seqN: 200, warm: 50, concRounds: 5, concTotal: 640, concTotal256: 1024, streamRuns: 5, libRuns: 3, coldRuns: 20, memRounds: 3, idleN: 200, yesSeconds: 20, fileMiB: 1024, fileRuns: 3 };

export type Result = 'PASS' | 'FAIL' | 'info' | 'n/a' | 'ERROR';
export interface Row {
  metric: string;
  sw: string;
  ref: string;
  ratio: string;
  target: string;
  result: Result;
  /**
   * The numbers behind sw / ref / ratio, for the medians over rounds; when absent they are
   * read from the leading number of the text ("1,234.5 (local spawn)" → 1234.5).
   */
  values?: { sw?: number; ref?: number; ratio?: number };
  /** The target as a test on the medians over rounds (else the rounds' results are counted). */
  check?: (v: { sw: number; ref: number; ratio: number }) => boolean;
}
/** A row as known before measuring: what the ERROR row says when the measure fails. */
export type RowHead = Pick<Row, 'metric' | 'target'>;

export interface MeasureContext {
  /** The library under test (dist/index.js). */
  sw: typeof Shellwire;
  /** The CLI entry point relative to the repository, for the details. */
  cliRel: string;
  /** The reference sshd, or null with `sshdNote` saying why. */
  sshd: Sshd | null;
  sshdNote: string;
  row(row: Row): void;
  detail(line: string): void;
}

/** What a 'shared' measure gets besides: the run's daemon and one open connection to it. */
export interface SharedContext extends MeasureContext {
  daemon: BenchDaemon;
  conn: Shellwire.Connection;
}

interface MeasureHead {
  /** Short name for BENCH_ONLY (e.g. `stream`); the measure's file name without .ts. */
  id?: string;
  /** Logged when it starts. */
  name: string;
  /** The rows it adds, in order (the ERROR rows if it fails). */
  rows: RowHead[];
}

/**
 * One measure. 'shared' ones run first, on the run's daemon and its open connection; 'own'
 * ones start the daemons they need (fresh ones, for memory figures) after it stopped.
 */
export type Measure =
  | (MeasureHead & { daemon: 'shared'; run(context: SharedContext): Promise<void> })
  | (MeasureHead & { daemon: 'own'; run(context: MeasureContext): Promise<void> });

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
export const pass = (ok: boolean): Result => (ok ? 'PASS' : 'FAIL');

/** The rows of each round (index = round), in the order measured. */
const roundRows: Row[][] = [];
let rows: Row[] = [];
const details: string[] = [];
let sshd: Sshd | null = null;
let round = 0;

// ------------------------------------------------------------------ cleanup on every path
let cleanedUp = false;
function cleanupSync(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  killChildrenSync();
  killAllDaemonsSync();
  stopSshdSync(sshd);
  removeBenchDirs();
}

async function section(measure: MeasureHead, run: () => Promise<void>): Promise<void> {
  log(`${ROUNDS > 1 ? `round ${round + 1}/${ROUNDS}: ` : ''}${measure.name}`);
  const t0 = Date.now();
  try {
    await run();
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!.slice(0, 160);
    log(`${measure.name} failed: ${(err as Error).stack ?? err}`);
    for (const r of measure.rows) rows.push({ ...r, sw: `error: ${msg}`, ref: '', ratio: '', result: 'ERROR' });
  }
  log(`${measure.name}: ${fmt((Date.now() - t0) / 1000, 0)} s`);
}

/** BENCH_ONLY=id,id: the measures to run (by id, or a word of the name); all when unset. */
function selected(measures: Measure[]): Measure[] {
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((w) => w.trim().toLowerCase()).filter(Boolean);
  if (only.length === 0) return measures;
  const picked = measures.filter((m) => only.some((w) => m.id === w || m.name.toLowerCase().includes(w)));
  const unknown = only.filter((w) => !measures.some((m) => m.id === w || m.name.toLowerCase().includes(w)));
  if (unknown.length) {
    throw new Error(`BENCH_ONLY: no measure called ${unknown.join(', ')}; the measures are: ${measures.map((m) => m.id ?? m.name).join(', ')}`);
  }
  return picked;
}

// ------------------------------------------------------------------ medians over rounds
const LEADING = /^\s*(-?[\d,]+(?:\.\d+)?)/;

/** The leading number of a cell, its decimals, and the text after it. */
function parseCell(text: string): { value: number; digits: number; rest: string } | null {
  const m = LEADING.exec(text);
  if (!m) return null;
  const digits = m[1]!.includes('.') ? m[1]!.length - m[1]!.indexOf('.') - 1 : 0;
  return { value: Number(m[1]!.replaceAll(',', '')), digits, rest: text.slice(m[0].length) };
}

/** One cell over rounds: `median (min–max)` plus the first round's text after the number. */
function cellOverRounds(cells: string[], values: Array<number | undefined>): { text: string; median: number } {
  const parsed = cells.map(parseCell);
  const nums = values.map((v, i) => v ?? parsed[i]?.value).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const first = parsed.find((p) => p) ?? null;
  if (!first || nums.length === 0) return { text: cells.find((c) => c) ?? '', median: NaN };
  const digits = first.digits;
  const med = median(nums);
  const spread = nums.length > 1 ? ` (${fmt(Math.min(...nums), digits)}–${fmt(Math.max(...nums), digits)})` : '';
  // The unit right after the number (×, ms) stays with it; a note in brackets follows the spread.
  const unit = /^[×%]|^ ?(ms|s|MB\/s|MiB\/s|\/s)\b/.exec(first.rest)?.[0] ?? '';
  return { text: `${fmt(med, digits)}${unit}${spread}${first.rest.slice(unit.length)}`, median: med };
}

/** The table's rows: one round as measured, several as medians with their spread. */
function tableRows(): Array<Omit<Row, 'result'> & { result: string }> {
  if (roundRows.length === 1) return roundRows[0]!;
  const metrics: string[] = [];
  for (const rr of roundRows) for (const r of rr) if (!metrics.includes(r.metric)) metrics.push(r.metric);
  return metrics.map((metric) => {
    const all = roundRows.map((rr) => rr.find((r) => r.metric === metric)).filter((r): r is Row => r !== undefined);
    const good = all.filter((r) => r.result !== 'ERROR');
    const errors = all.length - good.length;
    const base = all[0]!;
    if (good.length === 0) return { ...base, result: `ERROR (${all.length}/${all.length})` };
    const sw = cellOverRounds(good.map((r) => r.sw), good.map((r) => r.values?.sw));
    const ref = cellOverRounds(good.map((r) => r.ref), good.map((r) => r.values?.ref));
    const ratio = cellOverRounds(good.map((r) => r.ratio), good.map((r) => r.values?.ratio));
    let result: string;
    const check = good.find((r) => r.check)?.check;
    if (check && Number.isFinite(sw.median)) result = pass(check({ sw: sw.median, ref: ref.median, ratio: ratio.median }));
    else {
      const kinds = [...new Set(good.map((r) => r.result))];
      result = kinds.length === 1 ? kinds[0]! : kinds.map((k) => `${k} ${good.filter((r) => r.result === k).length}/${good.length}`).join(', ');
    }
    if (errors) result += ` (ERROR in ${errors}/${all.length} rounds)`;
    return { metric, target: base.target, sw: sw.text, ref: ref.text, ratio: ratio.text, result };
  });
}

/** Build, so the daemon and CLI are the current code (BENCH_SKIP_BUILD=1 skips it). */
function build(): void {
  if (process.env.BENCH_SKIP_BUILD === '1') return;
  // `npm run build` when the package has one (tsc, plus whatever bundling the CLI needs), else `npx tsc -p .`.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const [cmd, args] = pkg.scripts?.build ? ['npm', ['run', '--silent', 'build']] as const : ['npx', ['tsc', '-p', '.']] as const;
  log(`building: ${cmd} ${args.join(' ')}`);
  const b = spawnSync(cmd, [...args], { cwd: ROOT, encoding: 'utf8' });
  if (b.status !== 0) {
    const out = (b.stdout + b.stderr).trim().split('\n').slice(0, 10).join('\n');
    if (!existsSync(CLI) || !existsSync(join(ROOT, 'dist/index.js'))) throw new Error(`build failed and ${CLI} or dist/ is missing:\n${out}`);
    log(`WARNING: build failed; measuring the existing dist/:\n${out}`);
    details.push(`- WARNING: \`${cmd} ${args.join(' ')}\` failed at bench time; the figures are for the dist/ that was there.`);
  }
}

async function main(all: Measure[]): Promise<void> {
  const started = Date.now();
  const measures = selected(all);
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  const header = [
    `# shellwire benchmark${QUICK ? ' (BENCH_QUICK=1: short smoke run)' : ''}`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${availableParallelism()} CPUs (nproc), ${cpuModel}, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, Linux ${release()}`,
    `- node ${process.version}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `- ${ROUNDS} round(s) of the whole table${ROUNDS > 1 ? ': each cell is the median over rounds (min–max over rounds); PASS/FAIL is judged on the medians' : ''}` +
      (measures.length < all.length ? `; BENCH_ONLY=${process.env.BENCH_ONLY}` : ''),
  ];
  process.stdout.write(header.join('\n') + '\n\n');

  build();
  const sw: typeof Shellwire = await import(pathToFileURL(join(ROOT, 'dist/index.js')).href);

  // OpenSSH reference.
  log('starting the reference sshd (../shared/peers/lib.sh)');
  const s = startSshd();
  let sshdNote = 'n/a (sshd not available)';
  if ('error' in s) {
    log(`sshd not available: ${s.error}`);
    sshdNote = 'n/a (sshd not available)';
  } else {
    sshd = s;
    log(`sshd pid ${s.pid}${s.started ? '' : ' (already running; left running at the end)'}: ${s.sshText}`);
  }
  const base: MeasureContext = {
    sw,
    sshd,
    cliRel: relative(ROOT, CLI),
    sshdNote,
    row: (row: Row) => rows.push(row),
    detail: (line: string) => details.push(ROUNDS > 1 ? `${line.replace(/^- /, `- [round ${round + 1}] `)}` : line),
  };

  for (round = 0; round < ROUNDS; round++) {
    const roundStarted = Date.now();
    rows = [];
    roundRows.push(rows);
    // Shared measures: one daemon, one open connection.
    if (measures.some((m) => m.daemon === 'shared')) {
      const d = await startDaemon();
      log(`daemon pid ${d.pid} on ${d.address}`);
      let conn: Shellwire.Connection | null = null;
      try {
        conn = await sw.connect(d.address, { token: d.token, fingerprint: d.fingerprint });
        const shared: SharedContext = { ...base, daemon: d, conn };
        for (const m of measures) if (m.daemon === 'shared') await section(m, () => m.run(shared));
      } finally {
        await conn?.close().catch(() => {});
        await d.stop();
        log(`daemon pid ${d.pid} stopped`);
      }
    }
    // Measures on fresh daemons of their own (memory, files).
    for (const m of measures) if (m.daemon === 'own') await section(m, () => m.run(base));
    log(`round ${round + 1}/${ROUNDS} took ${fmt((Date.now() - roundStarted) / 1000, 0)} s; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  }

  stopSshdSync(sshd);
  if (sshd) details.push(`- reference sshd: ${sshd.sshText} (private sshd from ../shared/peers/lib.sh, key auth).`);
  else details.push(`- reference sshd: not available.`);
  details.push(`- total bench time ${fmt((Date.now() - started) / 1000, 0)} s for ${ROUNDS} round(s); load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine shows up here; compare ratios, not absolutes).`);

  const table = [
    `| metric | shellwire (median${ROUNDS > 1 ? ', min–max' : ''}) | reference, same run | ratio | target | result |`,
    '|---|---:|---:|---:|---|---|',
    ...tableRows().map((r) => `| ${r.metric} | ${r.sw} | ${r.ref} | ${r.ratio} | ${r.target} | ${r.result} |`),
  ].join('\n');
  const body = `${table}\n\n${details.join('\n')}\n`;
  process.stdout.write(body);
  writeFileSync(join(ROOT, 'bench/results.md'), `${header.join('\n')}\n\n${body}`);
  log('wrote bench/results.md');
}

/**
 * Run the measures in order ('shared' ones on one daemon first, then the 'own' ones), print
 * the table, write bench/results.md, and exit: 1 when a measure failed.
 */
export function runBench(measures: Measure[]): void {
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`${sig}: stopping`);
      cleanupSync();
      process.exit(130);
    });
  }
  main(measures)
    .then(() => {
      cleanupSync();
      process.exit(roundRows.some((rr) => rr.some((r) => r.result === 'ERROR')) ? 1 : 0);
    })
    .catch((err) => {
      log(`bench failed: ${(err as Error).stack ?? err}`);
      cleanupSync();
      process.exit(1);
    });
}
