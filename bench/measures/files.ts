/**
 * Rows 8a and 8b: `shellwire put` / `shellwire get` of one file (1 GiB; 128 MiB with
 * BENCH_QUICK=1) against `scp -c aes128-gcm@openssh.com` to the reference sshd, the real CLI
 * processes, interleaved (sw put, scp put, sw get, scp get), on a warm page cache, each after
 * an untimed `sync` (scp does not fsync, so the run after it would pay for its write-back).
 * shellwire's time includes its fsync before the rename. Peak RSS of the client and the
 * daemon are sampled during shellwire's runs (they must not grow with the file).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CFG, pass, type Measure, type MeasureContext } from '../lib/harness.js';
import { CLI, benchDirs, startDaemon } from '../lib/daemon.js';
import { track } from '../lib/children.js';
import { fmt, median, range } from '../lib/util.js';

const MIB = 1024 * 1024;
const size = () => `${CFG.fileMiB >= 1024 ? `${CFG.fileMiB / 1024} GiB` : `${CFG.fileMiB} MiB`}`;
const PUT_ROW = { metric: `8a. put ${size()} vs \`scp -c aes128-gcm\` (MiB/s)`, target: '≥ 1.0× scp' };
const GET_ROW = { metric: `8b. get ${size()} vs \`scp -c aes128-gcm\` (MiB/s)`, target: '≥ 1.0× scp' };

interface Run {
  seconds: number;
  clientPeakKiB: number;
  daemonPeakKiB: number;
}

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Wall time of `file args` (stdin/stdout ignored), with the peak RSS of it and of `watchPid`. */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv, watchPid?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = track(spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4096)));
    let clientPeakKiB = 0;
    let daemonPeakKiB = 0;
    const sample = setInterval(() => {
      clientPeakKiB = Math.max(clientPeakKiB, statusKiB(child.pid!, 'VmRSS'));
      if (watchPid) daemonPeakKiB = Math.max(daemonPeakKiB, statusKiB(watchPid, 'VmRSS'));
    }, 25);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${stderr.trim().slice(0, 200)}`));
      else resolve({ seconds, clientPeakKiB, daemonPeakKiB });
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The source file, written once per bench process (random bytes, so nothing compresses). */
let source: { dir: string; path: string; sha: string } | null = null;
async function sourceFile(): Promise<{ dir: string; path: string; sha: string }> {
  if (source && existsSync(source.path)) return source;
  const dir = join(benchDirs().home, 'files');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'src.bin');
  const fd = openSync(path, 'w');
  for (let i = 0; i < CFG.fileMiB; i++) writeSync(fd, randomBytes(MIB));
  closeSync(fd);
  source = { dir, path, sha: await sha256File(path) };
  return source;
}

let verified = false;

async function runFiles({ sshd, sshdNote, cliRel, row, detail }: MeasureContext): Promise<void> {
  const src = await sourceFile();
  const data = src.dir;
  const d = await startDaemon(['--file-root', data]);
  try {
    const node = process.execPath;
    const cfg = sshd ? sshd.ssh[sshd.ssh.indexOf('-F') + 1]! : '';
    const scpBase = ['-q', '-c', 'aes128-gcm@openssh.com', '-F', cfg, '-P', '2222'];
    const kinds: Record<string, () => Promise<Run>> = {
      'sw put': () => timed(node, [CLI, 'put', '--quiet', src.path, `${d.address}:${data}/sw-put.bin`], d.env, d.pid),
      'sw get': () => timed(node, [CLI, 'get', '--quiet', `${d.address}:${src.path}`, `${data}/sw-get.bin`], d.env, d.pid),
    };
    if (sshd) {
      kinds['scp put'] = () => timed('scp', [...scpBase, src.path, `127.0.0.1:${data}/scp-put.bin`], process.env);
      kinds['scp get'] = () => timed('scp', [...scpBase, `127.0.0.1:${src.path}`, `${data}/scp-get.bin`], process.env);
    }
    const order = ['sw put', 'scp put', 'sw get', 'scp get'].filter((k) => kinds[k]);
    const results: Record<string, Run[]> = Object.fromEntries(order.map((k) => [k, []]));
    for (let i = 0; i < CFG.fileRuns; i++) {
      for (const name of i % 2 === 0 ? order : [...order].reverse()) {
        for (const f of ['sw-put.bin', 'scp-put.bin', 'sw-get.bin', 'scp-get.bin']) rmSync(join(data, f), { force: true });
        spawnSync('sync');
        results[name]!.push(await kinds[name]!());
        if (!verified && name.startsWith('sw')) {
          const out = join(data, name === 'sw put' ? 'sw-put.bin' : 'sw-get.bin');
          if ((await sha256File(out)) !== src.sha) throw new Error(`${name}: the copy's SHA-256 differs from the source's`);
        }
      }
    }
    verified = true;
    for (const f of ['sw-put.bin', 'scp-put.bin', 'sw-get.bin', 'scp-get.bin']) rmSync(join(data, f), { force: true });
    const rate = (runs: Run[]) => CFG.fileMiB / median(runs.map((r) => r.seconds));
    for (const [dir, ROW] of [['put', PUT_ROW], ['get', GET_ROW]] as const) {
      const sw = rate(results[`sw ${dir}`]!);
      const scpRuns = results[`scp ${dir}`];
      if (!scpRuns) {
        row({ ...ROW, sw: fmt(sw, 0), ref: sshdNote, ratio: 'n/a', result: 'n/a' });
        continue;
      }
      const scp = rate(scpRuns);
      row({ ...ROW, sw: fmt(sw, 0), ref: `${fmt(scp, 0)} (scp aes128-gcm)`, ratio: `${fmt(sw / scp, 2)}×`, result: pass(sw / scp >= 1.0), values: { sw, ref: scp, ratio: sw / scp }, check: (v) => v.ratio >= 1.0 });
    }
    const peak = (k: string, f: 'clientPeakKiB' | 'daemonPeakKiB') => fmt(Math.max(...results[k]!.map((r) => r[f])) / 1024, 0);
    const mibs = (k: string) => (results[k] ? range(results[k]!.map((r) => CFG.fileMiB / r.seconds), 0, ' MiB/s') : 'n/a');
    detail(
      `- 8: ${CFG.fileRuns} interleaved run(s) per tool and direction of a ${size()} random file, each after an untimed \`sync\`: \`node ${cliRel} put|get --quiet\` (fsync before rename included)` +
        (sshd ? ` and \`scp ${scpBase.join(' ')}\`` : '') +
        `, warm page cache, SHA-256 of shellwire's copies checked once. put: shellwire ${mibs('sw put')}, scp ${mibs('scp put')}; get: shellwire ${mibs('sw get')}, scp ${mibs('scp get')}. ` +
        `Peak RSS during shellwire's runs: client ${peak('sw put', 'clientPeakKiB')} / ${peak('sw get', 'clientPeakKiB')} MiB (put/get), daemon ${peak('sw put', 'daemonPeakKiB')} / ${peak('sw get', 'daemonPeakKiB')} MiB.`,
    );
  } finally {
    await d.stop();
  }
}

export const files: Measure = {
  id: 'files',
  name: 'put/get vs scp',
  rows: [PUT_ROW, GET_ROW],
  daemon: 'own',
  run: runFiles,
};
