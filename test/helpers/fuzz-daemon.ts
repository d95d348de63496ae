/**
 * The fuzz target: the real `shellwire serve` (bin/shellwire.cjs, built by `npm run build`)
 * in a child process, so a crash shows as the child exiting rather than the test runner
 * dying. When we are root it runs as `nobody` with a scratch directory as working and file
 * root: the fuzz runs real commands, and they must not be able to touch anything else.
 *
 * It also measures what must come back to baseline after an attack: open fds
 * (/proc/PID/fd), RSS, and the processes the daemon started. Every command inherits
 * FUZZ_RUN_TAG from the daemon's environment, so a leftover is found even after it was
 * re-parented to init.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLI } from './daemon.js';
import { connect } from '../../src/client/connect.js';

const NOBODY = 65534;
const MEMPROBE = resolve(import.meta.dirname, 'fuzz-memprobe.cjs');

export interface FuzzDaemon {
  child: ChildProcess;
  pid: number;
  port: number;
  token: string;
  fingerprint: string;
  /** Scratch directory the daemon account owns: cwd and file root of the fuzz. */
  root: string;
  /** A regular file in `root`. */
  file: string;
  /** Value of FUZZ_RUN_TAG in the environment of the daemon and everything it starts. */
  tag: string;
  /** Set once the child exited: how. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** The last 64 KiB of the daemon's stderr (JSON log lines). */
  stderrTail(): string;
  /** Log lines at level error (50) or above seen so far. */
  errorLines: string[];
  fdCount(): number;
  /** What the open fds are (socket:[…], pipe:[…], paths), for a leak report. */
  fdTargets(): string[];
  rssKiB(): number;
  /**
   * process.memoryUsage() of the daemon after a full gc (test/helpers/fuzz-memprobe.cjs, via
   * SIGUSR2). With `snapshot`, a heap snapshot is written to that path first (it must be
   * writable by the daemon's account).
   */
  memoryAfterGc(snapshot?: string): Promise<MemoryAfterGc>;
  /**
   * Harness only: make glibc hand the free memory it keeps for reuse back to the OS (gdb
   * calls malloc_trim(0) in the daemon), so RSS then counts memory in use rather than the
   * allocator's cache. Returns null, or why it could not (no gdb, no ptrace, not glibc).
   * Call it only while the daemon is idle: a thread stopped inside malloc would deadlock it.
   */
  mallocTrim(): string | null;
  /** Pids of processes the daemon started that still exist (zombies included). */
  leftovers(): Array<{ pid: number; cmd: string }>;
  /** A normal exec through the library: resolves with its stdout. */
  echoOk(): Promise<string>;
  stop(): Promise<void>;
}

export interface MemoryAfterGc {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Resident part of the JS heap (sum of the heap spaces' physical sizes). */
  heapPhysical: number;
  /** Active libuv handles (sockets, timers, pipes) of the daemon. */
  handles: number;
}

export interface FuzzDaemonOptions {
  killGraceS?: number;
  /** Keep the SQLite audit log (default true: it is part of what is under attack). */
  audit?: boolean;
  extraArgs?: string[];
}

export async function startFuzzDaemon(options: FuzzDaemonOptions = {}): Promise<FuzzDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'shellwire-fuzz-'));
  const stateDir = join(dir, 'server');
  const root = join(dir, 'root');
  const file = join(root, 'plain-file');
  // The health check's `echo ok` runs here, out of the fuzz's reach (file ops may chmod the root).
  const okDir = join(dir, 'ok');
  mkdirSync(okDir, { mode: 0o700 });
  mkdirSync(stateDir, { mode: 0o700 });
  mkdirSync(root, { mode: 0o700 });
  writeFileSync(file, 'fuzz\n');
  const asNobody = process.getuid?.() === 0;
  if (asNobody) for (const p of [dir, okDir, stateDir, root, file]) chownSync(p, NOBODY, NOBODY);
  const tag = randomBytes(8).toString('hex');
  const probe = join(dir, 'memory.json');
  const args = [
    // Harness only: lets the fuzz ask for memoryUsage() after a gc (and heap snapshots).
    '--expose-gc', '-r', MEMPROBE,
    CLI, 'serve', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--file-root', root,
    '--kill-grace', String(options.killGraceS ?? 0.5), '--shutdown-grace', '0.5', '--log-level', 'warn',
    ...(options.audit === false ? ['--no-audit'] : []), ...(options.extraArgs ?? []),
  ];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SHELLWIRE_') && !k.startsWith('FUZZ_')) env[k] = v;
  Object.assign(env, { HOME: root, SHELLWIRE_HOME: dir, FUZZ_RUN_TAG: tag, FUZZ_MEMPROBE: probe });
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let stderr = '';
  const errorLines: string[] = [];
  let partial = '';
  child.stderr!.on('data', (c: Buffer) => {
    const text = c.toString('utf8');
    stderr = (stderr + text).slice(-65536);
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const level = /"level":(\d+)/.exec(line);
      if (!level || Number(level[1]) >= 50) errorLines.push(line.slice(0, 2000));
    }
  });
  const daemon: FuzzDaemon = {
    child,
    pid: 0,
    port: 0,
    token: '',
    fingerprint: '',
    root,
    file,
    tag,
    exit: null,
    stderrTail: () => stderr,
    errorLines,
    fdCount: () => readdirSync(`/proc/${child.pid}/fd`).length,
    fdTargets: () => readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
      } catch {
        return '?';
      }
    }),
    rssKiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0),
    leftovers: () => findTagged(tag, child.pid!),
    mallocTrim: () => {
      try {
        const out = execFileSync('gdb', ['-p', String(child.pid), '-batch', '-nx', '-ex', 'call (int)malloc_trim(0)'], { timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
        return /^\$1 = [01]$/m.test(out) ? null : `gdb said: ${out.trim().split('\n').slice(-3).join(' | ')}`;
      } catch (err) {
        const e = err as Error & { stderr?: Buffer };
        return `gdb failed: ${e.message.split('\n')[0]} ${e.stderr?.toString('utf8').trim().split('\n').slice(-3).join(' | ') ?? ''}`;
      }
    },
    memoryAfterGc: async (snapshot) => {
      rmSync(probe, { force: true });
      if (snapshot) {
        writeFileSync(`${probe}.snap-request`, snapshot);
        if (asNobody) chownSync(`${probe}.snap-request`, NOBODY, NOBODY);
      }
      child.kill('SIGUSR2');
      const deadline = Date.now() + 120_000;
      while (!existsSync(probe)) {
        if (daemon.exit !== null || Date.now() > deadline) throw new Error('the daemon did not report its memory after SIGUSR2');
        await new Promise((r) => setTimeout(r, 50));
      }
      return JSON.parse(readFileSync(probe, 'utf8')) as MemoryAfterGc;
    },
    echoOk: async () => {
      const conn = await connect({ host: '127.0.0.1', port: daemon.port }, { token: daemon.token, fingerprint: daemon.fingerprint, connectTimeoutMs: 10_000 });
      try {
        const result = await conn.exec('echo ok', { cwd: okDir, timeout: 10_000 });
        return result.stdout.toString();
      } finally {
        await conn.close();
      }
    },
    async stop() {
      if (daemon.exit === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      // Whatever the daemon left behind is ours to remove (tagged, so never anyone else's).
      for (const { pid } of findTagged(tag, -1)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  child.on('exit', (code, signal) => {
    daemon.exit = { code, signal };
  });
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`daemon did not start within 20 s; stderr: ${stderr}`)), 20_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      reject(err);
    };
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      const listen = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
      const fp = /host key fingerprint: (SHA256:\S+)/.exec(stdout);
      if (listen && fp) {
        clearTimeout(timer);
        daemon.port = Number(listen[1]);
        daemon.fingerprint = fp[1]!;
        resolve();
      }
    });
    child.once('exit', (code, signal) => fail(new Error(`daemon exited during start (${code ?? signal}); stderr: ${stderr}`)));
  });
  child.stdout!.resume();
  daemon.pid = child.pid!;
  daemon.token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
  return daemon;
}

/** Processes whose environment carries FUZZ_RUN_TAG=tag, or whose parent is `parent`. */
function findTagged(tag: string, parent: number): Array<{ pid: number; cmd: string }> {
  const found: Array<{ pid: number; cmd: string }> = [];
  const needle = Buffer.from(`FUZZ_RUN_TAG=${tag}\0`);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === parent || pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may contain spaces and parentheses.
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(after[1]);
      let tagged = ppid === parent;
      if (!tagged) {
        try {
          tagged = readFileSync(`/proc/${pid}/environ`).includes(needle);
        } catch {
          // a zombie or a process we may not read: only its parent tells
        }
      }
      // The daemon's own supervisor (src/process/supervisor.ts) and spawner (src/process/spawner.ts)
      // live as long as the daemon by design.
      if (tagged && isHelperOf(pid, parent)) continue;
      if (tagged) found.push({ pid, cmd: `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))} [${after[0]}] ppid ${ppid}` });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

function isHelperOf(pid: number, daemon: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '');
    return cmdline === `shellwire-supervisor ${daemon}` || cmdline === `shellwire-spawner ${daemon}`;
  } catch {
    return false;
  }
}

/** Poll `read` until `ok` holds or `timeoutMs` passes; returns the last value. */
export async function settle<T>(read: () => T, ok: (value: T) => boolean, timeoutMs: number, stepMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, stepMs));
    value = read();
  }
  return value;
}
