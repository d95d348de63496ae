/**
 * `node --import tsx bench/files.ts`: shellwire put/get of one 1 GiB file against scp
 * (`-c aes128-gcm@openssh.com`) to the private loopback sshd of ../shared/peers/lib.sh
 * (started through bench/peers.sh, stopped by PID afterwards), in the same run.
 *
 * Each tool runs 3 times per direction, interleaved (sw put, scp put, sw get, scp get), on
 * the same warm page cache, each after an untimed `sync`; the figure is the median wall
 * time of the real CLI processes. shellwire's time includes its fsync before the rename
 * (durability); scp does not fsync.
 * Peak RSS of the client and of the daemon are sampled from /proc during shellwire runs
 * (the memory must not grow with the file size).
 *
 *   BENCH_FILE_MIB=1024   file size (MiB)
 *   BENCH_RUNS=3          runs per tool and direction
 *   BENCH_SKIP_BUILD=1    do not run `npm run build` first
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, freePort } from './lib/daemon.js';
import { startSshd, stopSshdSync, type Sshd } from './lib/peers.js';
import { fmt, median, sleep } from './lib/util.js';

const MIB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_FILE_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const INSTALL_LOG = '/tmp/sw/peers-install.log';
const log = (msg: string) => process.stderr.write(`[bench-files ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

let sshd: Sshd | null = null;
let daemon: ChildProcess | null = null;
let work: string | null = null;
function cleanup(): void {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  stopSshdSync(sshd);
  if (work) rmSync(work, { recursive: true, force: true });
  work = null;
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

/** Another process installs the peers (openssh-server …): wait for its "install ok". */
async function waitForPeersInstall(): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  let said = false;
  for (;;) {
    const text = existsSync(INSTALL_LOG) ? readFileSync(INSTALL_LOG, 'utf8') : '';
    if (/install ok/.test(text)) return;
    if (Date.now() > deadline) throw new Error(`no "install ok" in ${INSTALL_LOG} after 15 min`);
    if (!said) log(`waiting for "install ok" in ${INSTALL_LOG}`);
    said = true;
    await sleep(2_000);
  }
}

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

interface Run {
  seconds: number;
  clientPeakKiB: number;
  daemonPeakKiB: number;
  /** CPU seconds (user+sys) of the daemon during the run. */
  daemonCpu: number;
}

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Wall time of `file args` (stdout/stdin /dev/null), with peak RSS of it and of `watchPid`. */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv, watchPid?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const cpu0 = watchPid ? cpuSeconds(watchPid) : 0;
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
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
      if (code !== 0) reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ seconds, clientPeakKiB, daemonPeakKiB, daemonCpu: watchPid ? cpuSeconds(watchPid) - cpu0 : 0 });
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function startDaemon(home: string, fileRoot: string): Promise<{ address: string; env: NodeJS.ProcessEnv; pid: number }> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const stateDir = join(home, 'server');
  const env: NodeJS.ProcessEnv = { ...process.env, SHELLWIRE_HOME: home };
  daemon = spawn(process.execPath, [CLI, 'serve', '--listen', address, '--state-dir', stateDir, '--file-root', fileRoot, '--log-level', 'warn'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const fingerprint = await new Promise<string>((resolve, reject) => {
    daemon!.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /host key fingerprint: (SHA256:\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    daemon!.once('exit', (code) => reject(new Error(`daemon exited (${code}) during start: ${out}`)));
  });
  daemon.stdout!.resume();
  const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
  const knownHosts = openSync(join(home, 'known_hosts'), 'a', 0o600);
  writeSync(knownHosts, `${address} ${fingerprint}\n`);
  closeSync(knownHosts);
  return { address, env: { ...env, SHELLWIRE_TOKEN: token }, pid: daemon.pid! };
}

async function main(): Promise<void> {
  await waitForPeersInstall();
  if (process.env.BENCH_SKIP_BUILD !== '1') {
    log('npm run build');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) throw new Error('build failed');
  }
  const started = startSshd();
  if ('error' in started) throw new Error(`sshd: ${started.error}`);
  sshd = started;
  const cfg = sshd.ssh[sshd.ssh.indexOf('-F') + 1]!;
  const scpBase = ['-q', '-c', 'aes128-gcm@openssh.com', '-F', cfg, '-P', '2222'];
  log(`sshd pid ${sshd.pid} (${sshd.started ? 'started by this run' : 'already running'}); scp ${scpBase.join(' ')}`);

  work = mkdtempSync(join(tmpdir(), 'shellwire-bench-files-'));
  const home = join(work, 'home');
  const data = join(work, 'data');
  spawnSync('mkdir', ['-p', join(home, 'server'), data]);
  const src = join(data, 'src.bin');
  log(`writing ${SIZE_MIB} MiB of random bytes to ${src}`);
  const fd = openSync(src, 'w');
  for (let i = 0; i < SIZE_MIB; i++) writeSync(fd, randomBytes(MIB));
  closeSync(fd);
  const srcSha = await sha256File(src);

  const d = await startDaemon(home, data);
  await sleep(500);
  const daemonBaseKiB = statusKiB(d.pid, 'VmRSS');
  log(`daemon pid ${d.pid} on ${d.address}, ${fmt(daemonBaseKiB / 1024)} MiB RSS before any transfer`);
  const node = process.execPath;
  const kinds = {
    'sw put': () => timed(node, [CLI, 'put', '--quiet', src, `${d.address}:${data}/sw-put.bin`], d.env, d.pid),
    'scp put': () => timed('scp', [...scpBase, src, `127.0.0.1:${data}/scp-put.bin`], process.env),
    'sw get': () => timed(node, [CLI, 'get', '--quiet', `${d.address}:${src}`, `${data}/sw-get.bin`], d.env, d.pid),
    'scp get': () => timed('scp', [...scpBase, `127.0.0.1:${src}`, `${data}/scp-get.bin`], process.env),
  } as const;
  const results: Record<keyof typeof kinds, Run[]> = { 'sw put': [], 'scp put': [], 'sw get': [], 'scp get': [] };
  for (let i = 0; i < RUNS; i++) {
    for (const name of Object.keys(kinds) as Array<keyof typeof kinds>) {
      for (const f of ['sw-put.bin', 'scp-put.bin', 'sw-get.bin', 'scp-get.bin']) rmSync(join(data, f), { force: true });
      // Untimed: start every run with no dirty pages. scp does not fsync, so without this the
      // run after it would pay for writing back scp's gigabyte.
      spawnSync('sync');
      const run = await kinds[name]();
      results[name].push(run);
      log(`${name} #${i + 1}: ${fmt(run.seconds, 3)} s (${fmt(SIZE_MIB / run.seconds)} MiB/s)${run.daemonCpu ? `, daemon CPU ${fmt(run.daemonCpu, 2)} s` : ''}`);
      if (i === 0 && name.startsWith('sw')) {
        const out = join(data, name === 'sw put' ? 'sw-put.bin' : 'sw-get.bin');
        if ((await sha256File(out)) !== srcSha) throw new Error(`${name}: SHA-256 of the copy differs`);
      }
    }
  }
  // Reference for the client's memory: the same CLI listing a directory (no transfer).
  const idle = await timed(node, [CLI, 'ls', `${d.address}:${data}`], d.env, d.pid);
  const row = (dir: 'put' | 'get') => {
    const sw = median(results[`sw ${dir}`].map((r) => r.seconds));
    const scp = median(results[`scp ${dir}`].map((r) => r.seconds));
    const peakClient = Math.max(...results[`sw ${dir}`].map((r) => r.clientPeakKiB)) / 1024;
    const peakDaemon = Math.max(...results[`sw ${dir}`].map((r) => r.daemonPeakKiB)) / 1024;
    return `| ${dir} ${SIZE_MIB} MiB | ${fmt(sw, 2)} s (${fmt(SIZE_MIB / sw)} MiB/s) | ${fmt(scp, 2)} s (${fmt(SIZE_MIB / scp)} MiB/s) | ${fmt(scp / sw, 2)}× | ${fmt(peakClient)} MiB | ${fmt(peakDaemon)} MiB |`;
  };
  const table = [
    `shellwire vs scp -c aes128-gcm@openssh.com, loopback, median of ${RUNS} (interleaved), warm page cache`,
    '',
    '| transfer | shellwire | scp | ratio (scp time / sw time; ≥1.0 = as fast) | sw client peak RSS | daemon peak RSS |',
    '|---|---|---|---|---|---|',
    row('put'),
    row('get'),
    '',
    `Memory reference: daemon ${fmt(daemonBaseKiB / 1024)} MiB RSS before any transfer; the CLI peaks at ${fmt(idle.clientPeakKiB / 1024)} MiB for \`ls\`.`,
  ].join('\n');
  process.stdout.write(`${table}\n`);
  log(`all runs: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((r) => Number(r.seconds.toFixed(3)))])))}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
