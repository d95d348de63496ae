/**
 * `npm run bench`: shellwire against its references, measured in the same run.
 *
 * The daemon is the real one (`node bin/shellwire(.js/.cjs) serve`, its own process); the client
 * side is either this process (library) or the real CLI in a fresh process. Every figure is
 * the median of several runs, interleaved with its reference where that makes sense.
 * Prints a markdown table and writes it to bench/results.md.
 *
 *   BENCH_QUICK=1        short smoke run (fewer runs, 5 s stream)
 *   BENCH_SKIP_BUILD=1   do not run `tsc -p .` first (dist/ must exist)
 *   SHELLWIRE_PEERS_DIR  where lib.sh lives (default ../shared/peers from the repo)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../dist/index.js';
import { CLI, ROOT, benchDirs, killAllDaemonsSync, removeBenchDirs, startDaemon, type BenchDaemon } from './lib/daemon.js';
import { startSshd, stopSshdSync, type Sshd } from './lib/peers.js';
import { fmt, median, minMax, procStatusKiB, sampleMedian, sleep, smapsRollupKiB, timeRun } from './lib/util.js';

const QUICK = process.env.BENCH_QUICK === '1';
const CFG = QUICK
  ? { rounds: 3, seqN: 60, warm: 20, concRounds: 3, concTotal: 320, streamRuns: 2, libRuns: 1, coldRuns: 5, memRounds: 1, idleN: 200, yesSeconds: 5 }
  : { rounds: 7, seqN: 200, warm: 50, concRounds: 5, concTotal: 640, streamRuns: 5, libRuns: 3, coldRuns: 20, memRounds: 3, idleN: 200, yesSeconds: 20 };
const CONCURRENCY = 32;
const GIB = 1024 ** 3;

type Result = 'PASS' | 'FAIL' | 'info' | 'n/a' | 'ERROR';
interface Row {
  metric: string;
  sw: string;
  ref: string;
  ratio: string;
  target: string;
  result: Result;
}
const rows: Row[] = [];
const details: string[] = [];
const helpers = new Set<ChildProcess>();
let sshd: Sshd | null = null;
let sshdNote = 'n/a (sshd not available)';

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const pass = (ok: boolean): Result => (ok ? 'PASS' : 'FAIL');

// ------------------------------------------------------------------ cleanup on every path
let cleanedUp = false;
function cleanupSync(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const h of helpers) {
    try {
      if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  killAllDaemonsSync();
  stopSshdSync(sshd);
  removeBenchDirs();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    cleanupSync();
    process.exit(130);
  });
}

// ------------------------------------------------------------------ helpers
function localTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'true']);
    child.once('error', reject);
    child.once('close', () => resolve());
  });
}

/** Run `fn` `total` times keeping `concurrency` in flight; returns runs per second. */
async function pool(total: number, concurrency: number, fn: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < total) {
        started++;
        await fn();
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/** Sequential batch: per-call latencies (ms) and the batch's rate (calls/s). */
async function sequential(n: number, fn: () => Promise<unknown>): Promise<{ latMs: number[]; rate: number }> {
  const latMs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    latMs.push(performance.now() - t);
  }
  return { latMs, rate: n / ((performance.now() - t0) / 1000) };
}

function range(values: number[], digits = 1, unit = ''): string {
  const [lo, hi] = minMax(values);
  return `${fmt(lo, digits)}–${fmt(hi, digits)}${unit}`;
}

/** Start a helper script (bench/*.ts) in its own process with tsx. */
function startHelper(script: string, args: string[], d: BenchDaemon): { child: ChildProcess; lines: AsyncIterableIterator<string>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], {
    cwd: ROOT,
    env: { ...d.env, BENCH_FINGERPRINT: d.fingerprint },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  helpers.add(child);
  child.on('exit', () => helpers.delete(child));
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4096)));
  child.stdin!.on('error', () => {});
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      queue.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  child.on('close', () => {
    ended = true;
    wake?.();
  });
  async function* lines(): AsyncIterableIterator<string> {
    for (;;) {
      if (queue.length) {
        yield queue.shift()!;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
  }
  return { child, lines: lines(), stderr: () => err };
}

async function nextLine(it: AsyncIterableIterator<string>, timeoutMs: number, what: string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)));
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done) throw new Error(`helper ended before ${what}`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

function waitExit(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function section(name: string, fallbackRows: Omit<Row, 'sw' | 'ref' | 'ratio' | 'result'>[], fn: () => Promise<void>): Promise<void> {
  log(name);
  try {
    await fn();
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!.slice(0, 160);
    log(`${name} failed: ${(err as Error).stack ?? err}`);
    for (const r of fallbackRows) rows.push({ ...r, sw: `error: ${msg}`, ref: '', ratio: '', result: 'ERROR' });
  }
}

// ------------------------------------------------------------------ hyperfine / cold runs
async function coldMedianMs(id: string, argv: string[], env: NodeJS.ProcessEnv, runs: number): Promise<{ median: number; min: number; max: number; tool: string }> {
  const hyperfine = spawnSync('hyperfine', ['--version'], { encoding: 'utf8' });
  if (hyperfine.status === 0) {
    const json = join(benchDirs().home, `${id}.json`);
    const cmd = argv.join(' ');
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('hyperfine', ['-N', '--style', 'basic', '--runs', String(runs), '--warmup', '2', '--export-json', json, cmd], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      helpers.add(child);
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.on('close', (code) => {
        helpers.delete(child);
        resolve({ code, out });
      });
    });
    if (r.code !== 0) throw new Error(`hyperfine failed for ${cmd}: ${r.out.trim().split('\n').slice(-3).join(' / ')}`);
    const res = JSON.parse(readFileSync(json, 'utf8')).results[0];
    return { median: res.median * 1000, min: res.min * 1000, max: res.max * 1000, tool: `hyperfine -N, ${runs} runs, 2 warmup` };
  }
  const times: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const r = await timeRun(argv[0]!, argv.slice(1), { env });
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    if (i >= 2) times.push(r.seconds * 1000);
  }
  const [lo, hi] = minMax(times);
  return { median: median(times), min: lo, max: hi, tool: `own loop, ${runs} runs, 2 warmup` };
}

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
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

  // Build, so the daemon and CLI are the current code: `npm run build` when the package
  // has one (tsc, plus whatever bundling the CLI needs), else `npx tsc -p .`.
  if (process.env.BENCH_SKIP_BUILD !== '1') {
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
  const cliRel = relative(ROOT, CLI);
  const sw: typeof Shellwire = await import(pathToFileURL(join(ROOT, 'dist/index.js')).href);

  // OpenSSH reference.
  log('starting the reference sshd (../shared/peers/lib.sh)');
  const s = startSshd();
  if ('error' in s) {
    log(`sshd not available: ${s.error}`);
    sshdNote = 'n/a (sshd not available)';
  } else {
    sshd = s;
    log(`sshd pid ${s.pid}${s.started ? '' : ' (already running; left running at the end)'}: ${s.sshText}`);
  }

  // ---------------------------------------------------------------- metrics 1-5: one daemon
  const d = await startDaemon();
  log(`daemon pid ${d.pid} on ${d.address}`);
  let conn: Shellwire.Connection | null = null;
  try {
    conn = await sw.connect(d.address, { token: d.token, fingerprint: d.fingerprint });
    const c = conn;

    await section(
      'exec round trip / sequential rate',
      [
        { metric: '1. exec `true` round trip, open connection (ms)', target: '≤ 1.3× local' },
        { metric: '2. sequential `true` on one connection (commands/s)', target: '≥ 0.8× local' },
      ],
      async () => {
        for (let i = 0; i < CFG.warm; i++) {
          await localTrue();
          await c.exec('true');
        }
        const lat = { sw: [] as number[], local: [] as number[] };
        const rate = { sw: [] as number[], local: [] as number[] };
        for (let r = 0; r < CFG.rounds; r++) {
          const order = r % 2 === 0 ? (['local', 'sw'] as const) : (['sw', 'local'] as const);
          for (const who of order) {
            const res = await sequential(CFG.seqN, who === 'sw' ? () => c.exec('true') : localTrue);
            lat[who].push(median(res.latMs));
            rate[who].push(res.rate);
          }
        }
        const latSw = median(lat.sw);
        const latLocal = median(lat.local);
        const rateSw = median(rate.sw);
        const rateLocal = median(rate.local);
        rows.push({
          metric: '1. exec `true` round trip, open connection (ms)',
          sw: fmt(latSw, 3),
          ref: `${fmt(latLocal, 3)} (local spawn)`,
          ratio: `${fmt(latSw / latLocal, 2)}×`,
          target: '≤ 1.3× local',
          result: pass(latSw / latLocal <= 1.3),
        });
        rows.push({
          metric: '2. sequential `true` on one connection (commands/s)',
          sw: fmt(rateSw, 0),
          ref: `${fmt(rateLocal, 0)} (local spawn)`,
          ratio: `${fmt(rateSw / rateLocal, 2)}×`,
          target: '≥ 0.8× local',
          result: pass(rateSw / rateLocal >= 0.8),
        });
        // Diagnostic: the same floor in a lean node process (fork cost grows with the parent's size).
        let lean = '';
        const leanRun = spawnSync(process.execPath, [join(ROOT, 'bench/spawn-floor.mjs'), String(CFG.seqN), '3'], { encoding: 'utf8', timeout: 60_000 });
        if (leanRun.status === 0) {
          const j = JSON.parse(leanRun.stdout) as { medianMs: number; rate: number };
          lean = ` For comparison, the same floor in a lean \`node\` process (no tsx, run just after): ${fmt(j.medianMs, 3)} ms, ${fmt(j.rate, 0)}/s (bench process RSS ${fmt(procStatusKiB(process.pid, 'VmRSS') / 1024, 0)} MiB).`;
        }
        details.push(
          `- 1/2: ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential commands each (after ${CFG.warm} warm-up); ` +
            `latency = median over rounds of each round's median; local = \`spawn('/bin/sh', ['-c', 'true'])\` awaited to 'close' in the bench process. ` +
            `Round medians: shellwire ${range(lat.sw, 3, ' ms')}, local ${range(lat.local, 3, ' ms')}; rates: shellwire ${range(rate.sw, 0, '/s')}, local ${range(rate.local, 0, '/s')}.${lean}`,
        );
      },
    );

    await section('audit overhead', [{ metric: '1a. same round trip, daemon with audit log vs `--no-audit` (ms)', target: 'not measurable' }], async () => {
      // The daemon above keeps its audit log (the default). A second one without it, measured
      // in interleaved rounds, shows what the log costs a command.
      const bare = await startDaemon(['--no-audit']);
      try {
        const b = await sw.connect(bare.address, { token: bare.token, fingerprint: bare.fingerprint });
        for (let i = 0; i < CFG.warm; i++) await b.exec('true');
        const lat = { audit: [] as number[], bare: [] as number[] };
        for (let r = 0; r < CFG.rounds; r++) {
          for (const who of r % 2 === 0 ? (['audit', 'bare'] as const) : (['bare', 'audit'] as const)) {
            const res = await sequential(CFG.seqN, who === 'audit' ? () => c.exec('true') : () => b.exec('true'));
            lat[who].push(median(res.latMs));
          }
        }
        await b.close();
        const withLog = median(lat.audit);
        const without = median(lat.bare);
        rows.push({
          metric: '1a. same round trip, daemon with audit log vs `--no-audit` (ms)',
          sw: fmt(withLog, 3),
          ref: `${fmt(without, 3)} (--no-audit)`,
          ratio: `${fmt(withLog / without, 2)}×`,
          target: 'not measurable',
          result: pass(withLog / without <= 1.05),
        });
        details.push(`- 1a: ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential \`true\` on each daemon; round medians with the log ${range(lat.audit, 3, ' ms')}, without ${range(lat.bare, 3, ' ms')}. Two rows per command (start, end); the end row is written after EXIT is sent.`);
      } finally {
        await bare.stop();
      }
    });

    await section('32 concurrent', [{ metric: `3. ${CONCURRENCY} concurrent \`true\` on one connection (commands/s)`, target: '≥ 800/s' }], async () => {
      await pool(CONCURRENCY * 2, CONCURRENCY, () => c.exec('true'));
      await pool(CONCURRENCY * 2, CONCURRENCY, localTrue);
      const swRates: number[] = [];
      const localRates: number[] = [];
      for (let r = 0; r < CFG.concRounds; r++) {
        if (r % 2 === 0) {
          localRates.push(await pool(CFG.concTotal, CONCURRENCY, localTrue));
          swRates.push(await pool(CFG.concTotal, CONCURRENCY, () => c.exec('true')));
        } else {
          swRates.push(await pool(CFG.concTotal, CONCURRENCY, () => c.exec('true')));
          localRates.push(await pool(CFG.concTotal, CONCURRENCY, localTrue));
        }
      }
      const a = median(swRates);
      const b = median(localRates);
      rows.push({
        metric: `3. ${CONCURRENCY} concurrent \`true\` on one connection (commands/s)`,
        sw: fmt(a, 0),
        ref: `${fmt(b, 0)} (local spawn, ${CONCURRENCY} in flight)`,
        ratio: `${fmt(a / b, 2)}×`,
        target: '≥ 800/s',
        result: pass(a >= 800),
      });
      details.push(
        `- 3: ${CFG.concRounds} rounds × ${CFG.concTotal} commands with ${CONCURRENCY} always in flight on one connection; ` +
          `shellwire ${range(swRates, 0, '/s')}, local ${range(localRates, 0, '/s')}.`,
      );
    });

    await section(
      'stream 1 GiB',
      [
        { metric: '4a. stream `head -c 1G /dev/zero`, CLI over TLS (MB/s)', target: '≥ 1000 MB/s' },
        { metric: '4b. same, vs `ssh -c aes128-gcm` (ratio)', target: '≥ 1.0× ssh' },
      ],
      async () => {
        const cliArgs = [CLI, 'exec', '-n', d.address, '--', 'head', '-c', '1G', '/dev/zero'];
        const swMBs: number[] = [];
        const sshMBs: number[] = [];
        let sshError = '';
        for (let r = 0; r < CFG.streamRuns; r++) {
          const one = await timeRun(process.execPath, cliArgs, { env: d.env });
          if (one.code !== 0) throw new Error(`shellwire exec exited ${one.code} ${one.signal ?? ''}: ${one.stderr.trim()}`);
          swMBs.push(GIB / 1e6 / one.seconds);
          if (sshd && !sshError) {
            const ssh = await timeRun(sshd.ssh[0]!, [...sshd.ssh.slice(1), '-c', 'aes128-gcm@openssh.com', '127.0.0.1', 'head -c 1G /dev/zero']);
            if (ssh.code !== 0) sshError = `ssh exited ${ssh.code}: ${ssh.stderr.trim().slice(0, 120)}`;
            else sshMBs.push(GIB / 1e6 / ssh.seconds);
          }
        }
        const a = median(swMBs);
        const b = sshMBs.length ? median(sshMBs) : NaN;
        const refText = sshd ? (sshError ? `n/a (${sshError})` : `${fmt(b, 0)} (ssh aes128-gcm)`) : sshdNote;
        rows.push({
          metric: '4a. stream `head -c 1G /dev/zero`, CLI over TLS (MB/s)',
          sw: fmt(a, 0),
          ref: refText,
          ratio: Number.isFinite(b) ? `${fmt(a / b, 2)}×` : 'n/a',
          target: '≥ 1000 MB/s',
          result: pass(a >= 1000),
        });
        rows.push({
          metric: '4b. same, vs `ssh -c aes128-gcm` (ratio)',
          sw: fmt(a, 0),
          ref: refText,
          ratio: Number.isFinite(b) ? `${fmt(a / b, 2)}×` : 'n/a',
          target: '≥ 1.0× ssh',
          result: Number.isFinite(b) ? pass(a / b >= 1.0) : 'n/a',
        });
        details.push(
          `- 4: ${CFG.streamRuns} interleaved runs each of \`node ${cliRel} exec -n ${d.address} -- head -c 1G /dev/zero > /dev/null\`` +
            (sshd ? ` and \`${sshd.sshText} -c aes128-gcm@openssh.com 127.0.0.1 'head -c 1G /dev/zero' > /dev/null\`` : '') +
            `; wall time of the whole process (startup + connect included), MB = 10^6 bytes. shellwire ${range(swMBs, 0, ' MB/s')}` +
            (sshMBs.length ? `, ssh ${range(sshMBs, 0, ' MB/s')}.` : '.'),
        );
      },
    );

    await section('library throughput', [{ metric: '4c. stream 1 GiB, library only (MB/s)', target: 'info' }], async () => {
      const mbs: number[] = [];
      for (let r = 0; r < CFG.libRuns; r++) {
        const t0 = performance.now();
        const p = c.spawn('head -c 1G /dev/zero');
        let bytes = 0;
        p.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
        p.stderr.resume();
        const [exit] = await Promise.all([p.exited, new Promise((r2) => p.stdout.once('end', r2))]);
        const secs = (performance.now() - t0) / 1000;
        if (bytes !== GIB || exit.exitCode !== 0) throw new Error(`library stream got ${bytes} bytes, exit ${exit.exitCode}`);
        mbs.push(GIB / 1e6 / secs);
      }
      // Reference: the same output piped straight into this process (no daemon, no TLS).
      const pipeMBs: number[] = [];
      for (let r = 0; r < CFG.libRuns; r++) {
        const t0 = performance.now();
        const child = spawn('/bin/sh', ['-c', 'head -c 1G /dev/zero']);
        let bytes = 0;
        child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
        await new Promise((r2) => child.once('close', r2));
        if (bytes !== GIB) throw new Error(`local pipe got ${bytes} bytes`);
        pipeMBs.push(GIB / 1e6 / ((performance.now() - t0) / 1000));
      }
      const a = median(mbs);
      const b = median(pipeMBs);
      rows.push({ metric: '4c. stream 1 GiB, library only (MB/s)', sw: fmt(a, 0), ref: `${fmt(b, 0)} (local pipe into node)`, ratio: `${fmt(a / b, 2)}×`, target: 'info', result: 'info' });
      details.push(
        `- 4c: \`conn.spawn('head -c 1G /dev/zero')\` in the bench process, bytes counted (= 2^30 checked), ${CFG.libRuns} runs: ${range(mbs, 0, ' MB/s')}; ` +
          `reference: \`spawn('/bin/sh', ['-c', 'head -c 1G /dev/zero'])\` read by the bench process directly: ${range(pipeMBs, 0, ' MB/s')}.`,
      );
    });

    await section('cold CLI exec', [{ metric: '5. cold `shellwire exec … true` vs cold `ssh … true` (ms)', target: '≤ 0.5× ssh' }], async () => {
      const swCold = await coldMedianMs('cold-shellwire', [process.execPath, CLI, 'exec', '-n', d.address, '--', 'true'], d.env, CFG.coldRuns);
      let sshCold: Awaited<ReturnType<typeof coldMedianMs>> | null = null;
      let sshErr = '';
      if (sshd) {
        try {
          sshCold = await coldMedianMs('cold-ssh', [...sshd.ssh, '127.0.0.1', 'true'], process.env, CFG.coldRuns);
        } catch (err) {
          sshErr = (err as Error).message.slice(0, 120);
        }
      }
      rows.push({
        metric: '5. cold `shellwire exec … true` vs cold `ssh … true` (ms)',
        sw: fmt(swCold.median, 1),
        ref: sshCold ? `${fmt(sshCold.median, 1)} (ssh cold)` : sshd ? `n/a (${sshErr})` : sshdNote,
        ratio: sshCold ? `${fmt(swCold.median / sshCold.median, 2)}×` : 'n/a',
        target: '≤ 0.5× ssh',
        result: sshCold ? pass(swCold.median / sshCold.median <= 0.5) : 'n/a',
      });
      details.push(
        `- 5: ${swCold.tool}: \`node ${cliRel} exec -n ${d.address} -- true\` ${fmt(swCold.min, 1)}–${fmt(swCold.max, 1)} ms` +
          (sshCold ? `; \`${sshd!.sshText} 127.0.0.1 true\` ${fmt(sshCold.min, 1)}–${fmt(sshCold.max, 1)} ms.` : '.'),
      );
    });
  } finally {
    await conn?.close().catch(() => {});
    await d.stop();
    log(`daemon pid ${d.pid} stopped`);
  }

  // ---------------------------------------------------------------- metric 6: memory (fresh daemons)
  await section(
    'idle connection memory',
    [
      { metric: `6a. daemon RSS per idle authenticated connection (KiB, N=${CFG.idleN})`, target: '≤ 64 KiB' },
    ],
    async () => {
      const rssPer: number[] = [];
      const pssPer: number[] = [];
      const baselines: number[] = [];
      for (let r = 0; r < CFG.memRounds; r++) {
        const md = await startDaemon();
        try {
          // Warm the daemon (JIT, TLS context, lazy modules) so they do not count as per-connection cost.
          const warm = startHelper('idle-clients.ts', [md.address, '20'], md);
          const w = await nextLine(warm.lines, 60_000, 'warm-up connections').catch((e) => {
            throw new Error(`${e.message}: ${warm.stderr()}`);
          });
          if (!w.startsWith('ready')) throw new Error(`idle-clients said ${w}`);
          warm.child.stdin!.end();
          await waitExit(warm.child);
          await sleep(1500);
          const rss0 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
          const pss0 = await sampleMedian(() => smapsRollupKiB(md.pid, 'Pss'), 3);
          const h = startHelper('idle-clients.ts', [md.address, String(CFG.idleN)], md);
          const line = await nextLine(h.lines, 120_000, `${CFG.idleN} connections`).catch((e) => {
            throw new Error(`${e.message}: ${h.stderr()}`);
          });
          if (line !== `ready ${CFG.idleN}`) throw new Error(`idle-clients said "${line}": ${h.stderr()}`);
          await sleep(2000);
          const rss1 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
          const pss1 = await sampleMedian(() => smapsRollupKiB(md.pid, 'Pss'), 3);
          h.child.stdin!.end();
          await waitExit(h.child);
          rssPer.push((rss1 - rss0) / CFG.idleN);
          pssPer.push((pss1 - pss0) / CFG.idleN);
          baselines.push(rss0);
        } finally {
          await md.stop();
        }
      }
      const a = median(rssPer);
      rows.push({
        metric: `6a. daemon RSS per idle authenticated connection (KiB, N=${CFG.idleN})`,
        sw: fmt(a, 1),
        ref: '—',
        ratio: '—',
        target: '≤ 64 KiB',
        result: pass(a <= 64),
      });
      rows.push({
        metric: '6a′. daemon PSS per idle connection (KiB, smaps_rollup)',
        sw: fmt(median(pssPer), 1),
        ref: '—',
        ratio: '—',
        target: 'info',
        result: 'info',
      });
      details.push(
        `- 6a: ${CFG.memRounds} round(s), each on a fresh daemon warmed with 20 connections; a separate client process opens ${CFG.idleN} connections; ` +
          `(VmRSS after − before) / N, each side the median of 5 samples 200 ms apart. Per connection: RSS ${range(rssPer, 1, ' KiB')}, PSS ${range(pssPer, 1, ' KiB')}; daemon baseline RSS ${range(baselines.map((x) => x / 1024), 1, ' MiB')}.`,
      );
    },
  );

  await section('slow reader memory', [{ metric: `6b. daemon RSS growth, \`yes\` to a 1 MB/s reader for ${CFG.yesSeconds} s (MiB)`, target: '≤ 32 MiB' }], async () => {
    const md = await startDaemon();
    try {
      const warm = startHelper('slow-reader.ts', [md.address, '1'], md);
      await waitExit(warm.child, 30_000);
      await sleep(1500);
      const rss0 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
      const h = startHelper('slow-reader.ts', [md.address, String(CFG.yesSeconds)], md);
      const first = await nextLine(h.lines, 30_000, 'streaming').catch((e) => {
        throw new Error(`${e.message}: ${h.stderr()}`);
      });
      if (first !== 'streaming') throw new Error(`slow-reader said "${first}": ${h.stderr()}`);
      const samples: number[] = [];
      let summary: { bytes: number; seconds: number; mbPerS: number; maxClientBufferedBytes: number } | null = null;
      const done = nextLine(h.lines, (CFG.yesSeconds + 30) * 1000, 'summary').then((l) => (summary = JSON.parse(l)));
      done.catch(() => {});
      while (!summary && h.child.exitCode === null) {
        await Promise.race([sleep(1000), done.catch(() => {})]);
        if (summary) break;
        try {
          samples.push(procStatusKiB(md.pid, 'VmRSS'));
        } catch {
          break;
        }
      }
      await done.catch((e) => {
        throw new Error(`${e.message}: ${h.stderr()}`);
      });
      await waitExit(h.child);
      const s2 = summary as unknown as { bytes: number; seconds: number; mbPerS: number; maxClientBufferedBytes: number };
      const growthMiB = (Math.max(...samples) - rss0) / 1024;
      rows.push({
        metric: `6b. daemon RSS growth, \`yes\` to a 1 MB/s reader for ${CFG.yesSeconds} s (MiB)`,
        sw: fmt(growthMiB, 1),
        ref: '—',
        ratio: '—',
        target: '≤ 32 MiB',
        result: pass(growthMiB <= 32),
      });
      details.push(
        `- 6b: fresh daemon (warmed with a 1 s run); baseline VmRSS ${fmt(rss0 / 1024, 1)} MiB; ${samples.length} samples 1 s apart: ` +
          `${samples.map((x) => fmt((x - rss0) / 1024, 1)).join(', ')} MiB over baseline. The client read ${fmt(s2.bytes / 1e6, 1)} MB in ${fmt(s2.seconds, 1)} s ` +
          `(${fmt(s2.mbPerS, 2)} MB/s); its own buffer peaked at ${fmt(s2.maxClientBufferedBytes / 1024, 0)} KiB.`,
      );
    } finally {
      await md.stop();
    }
  });

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

main()
  .then(() => {
    cleanupSync();
    process.exit(rows.some((r) => r.result === 'ERROR') ? 1 : 0);
  })
  .catch((err) => {
    log(`bench failed: ${(err as Error).stack ?? err}`);
    cleanupSync();
    process.exit(1);
  });
