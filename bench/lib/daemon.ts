/**
 * The real daemon for the benchmarks: `node bin/shellwire(.js/.cjs) serve` in its own process
 * (client and server never share a process), with its own SHELLWIRE_HOME and state dir.
 * Every daemon started here is registered so `killAllDaemonsSync()` can stop it by PID
 * on any exit path.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sleep } from './util.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** The CLI entry point: package.json's `bin.shellwire` (bin/shellwire.js, or the bundled .cjs). */
function resolveCli(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
    const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.shellwire;
    if (bin) return join(ROOT, bin);
  } catch {
    // fall through
  }
  return join(ROOT, 'bin/shellwire.js');
}
export const CLI = resolveCli();

const live = new Set<ChildProcess>();
let benchHome: string | null = null;

/** One temp dir per bench run: SHELLWIRE_HOME (known_hosts) and the daemon state dir. */
export function benchDirs(): { home: string; stateDir: string } {
  if (!benchHome) {
    benchHome = mkdtempSync(join(tmpdir(), 'shellwire-bench-'));
    mkdirSync(join(benchHome, 'server'), { recursive: true, mode: 0o700 });
  }
  return { home: benchHome, stateDir: join(benchHome, 'server') };
}

export function removeBenchDirs(): void {
  if (benchHome) rmSync(benchHome, { recursive: true, force: true });
  benchHome = null;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

export interface BenchDaemon {
  pid: number;
  stateDir: string;
  port: number;
  /** `127.0.0.1:PORT` */
  address: string;
  fingerprint: string;
  token: string;
  home: string;
  /** Environment for the CLI and helper processes: SHELLWIRE_HOME (known_hosts pinned) and the token. */
  env: NodeJS.ProcessEnv;
  stderrTail(): string;
  stop(): Promise<void>;
}

let stateDirSerial = 0;

export interface DaemonOptions {
  /** Listen on this loopback address (127.0.0.x) instead of 127.0.0.1. */
  host?: string;
  /** users.yaml for the daemon; it then gets a state dir of its own, never the shared one. */
  usersYaml?: string;
}

export async function startDaemon(extraArgs: string[] = [], options: DaemonOptions = {}): Promise<BenchDaemon> {
  if (!existsSync(CLI) || !existsSync(join(ROOT, 'dist/index.js'))) throw new Error(`${CLI} or dist/ is missing: run \`npm run build\` first`);
  const { home, stateDir: firstStateDir } = benchDirs();
  // One daemon per state dir (serve refuses a second one): each daemon after the first alive
  // gets its own; clients are given the token (SHELLWIRE_TOKEN), so no lookup depends on it.
  // A daemon with its own users.yaml never uses the first dir, so later daemons do not inherit it.
  const stateDir = live.size === 0 && options.usersYaml === undefined ? firstStateDir : join(home, `server-${++stateDirSerial}`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (options.usersYaml !== undefined) writeFileSync(join(stateDir, 'users.yaml'), options.usersYaml, { mode: 0o600 });
  const host = options.host ?? '127.0.0.1';
  const port = await freePort(host);
  const address = `${host}:${port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, SHELLWIRE_HOME: home };
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--listen', address, '--state-dir', stateDir, '--log-level', 'warn', '--shutdown-grace', '1', '--kill-grace', '1', ...extraArgs],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  child.on('exit', () => live.delete(child));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-8192);
  });
  const fingerprint = await new Promise<string>((resolveFp, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start within 15 s; stderr: ${stderr}`)), 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      const m = /host key fingerprint: (SHA256:\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolveFp(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited during start (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
  });
  child.stdout!.resume();
  const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
  appendFileSync(join(home, 'known_hosts'), `${address} ${fingerprint}\n`, { mode: 0o600 });
  const pid = child.pid!;
  return {
    pid,
    stateDir,
    port,
    address,
    fingerprint,
    token,
    home,
    env: { ...env, SHELLWIRE_TOKEN: token },
    stderrTail: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Last resort on exit: SIGKILL every daemon this process started that is still alive. */
export function killAllDaemonsSync(): void {
  for (const child of live) {
    try {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}
