/**
 * The bench harness: options (BENCH_QUICK), the build, the reference sshd and the shared
 * daemon's lifecycle, one section per measure (a failing measure becomes ERROR rows, the
 * others still run), and the table printed and written to bench/results.md. What is
 * measured lives in bench/measures/, one file per row (or pair of rows measured together).
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
import { fmt } from './util.js';

export const QUICK = process.env.BENCH_QUICK === '1';
/** Rounds and sizes; BENCH_QUICK=1 is a short smoke run. */
export const CFG = QUICK
  ? { rounds: 3, seqN: 60, warm: 20, concRounds: 3, concTotal: 320, streamRuns: 2, libRuns: 1, coldRuns: 5, memRounds: 1, idleN: 200, yesSeconds: 5 }
  : { rounds: 7, seqN: 200, warm: 50, concRounds: 5, concTotal: 640, streamRuns: 5, libRuns: 3, coldRuns: 20, memRounds: 3, idleN: 200, yesSeconds: 20 };

export type Result = 'PASS' | 'FAIL' | 'info' | 'n/a' | 'ERROR';
export interface Row {
  metric: string;
  sw: string;
  ref: string;
  ratio: string;
  target: string;
  result: Result;
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

const rows: Row[] = [];
const details: string[] = [];
let sshd: Sshd | null = null;

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
  log(measure.name);
  try {
    await run();
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!.slice(0, 160);
    log(`${measure.name} failed: ${(err as Error).stack ?? err}`);
    for (const r of measure.rows) rows.push({ ...r, sw: `error: ${msg}`, ref: '', ratio: '', result: 'ERROR' });
  }
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

async function main(measures: Measure[]): Promise<void> {
  const started = Date.now();
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  const header = [
    `# shellwire benchmark${QUICK ? ' (BENCH_QUICK=1: short smoke run)' : ''}`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${availableParallelism()} CPUs (nproc), ${cpuModel}, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, Linux ${release()}`,
    `- node ${process.version}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
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
    detail: (line: string) => details.push(line),
  };

  // Shared measures: one daemon, one open connection.
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

  // Measures on fresh daemons of their own (memory).
  for (const m of measures) if (m.daemon === 'own') await section(m, () => m.run(base));

  stopSshdSync(sshd);
  if (sshd) details.push(`- reference sshd: ${sshd.sshText} (private sshd from ../shared/peers/lib.sh, key auth).`);
  else details.push(`- reference sshd: not available.`);
  details.push(`- total bench time ${fmt((Date.now() - started) / 1000, 0)} s; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine shows up here; compare ratios, not absolutes).`);

  const table = [
    '| metric | shellwire (median) | reference (median) | ratio | target | result |',
    '|---|---:|---:|---:|---|---|',
    ...rows.map((r) => `| ${r.metric} | ${r.sw} | ${r.ref} | ${r.ratio} | ${r.target} | ${r.result} |`),
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
      process.exit(rows.some((r) => r.result === 'ERROR') ? 1 : 0);
    })
    .catch((err) => {
      log(`bench failed: ${(err as Error).stack ?? err}`);
      cleanupSync();
      process.exit(1);
    });
}
