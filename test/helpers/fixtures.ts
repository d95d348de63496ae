/**
 * More test helpers (daemon.ts has the daemon, runCli, waitFor): temp dirs, hashes,
 * process-group checks, a free port, and the CLI as a long-running child we can signal
 * (`startCli`), including the real `shellwire serve` daemon (`startServeCli`).
 */
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { after } from 'node:test';
import { CLI, waitFor } from './daemon.js';

/** A fresh temp dir; remove it with `removeDir` (or leave it to the OS on failure). */
export function tempDir(prefix = 'shellwire-it-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Every byte value 0..255 once, then once more in reverse (so 0x00 and 0xff sit at both ends). */
export function allByteValues(): Buffer {
  const up = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  return Buffer.concat([up, Buffer.from(up).reverse()]);
}

/** `seq 1 n` output, followed by extra lines. */
export function seqText(n: number, ...extra: string[]): string {
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) lines.push(String(i));
  lines.push(...extra);
  return lines.join('\n') + '\n';
}

/** True while any process of process group `pgid` is alive. */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but is not ours; ESRCH means it is gone.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A process state from /proc (Linux): 'R', 'S', 'Z' (zombie)…; null when there is no such
 * process. Elsewhere: 'S' while `kill(pid, 0)` succeeds.
 */
function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ...; comm may hold spaces and parentheses, so split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || existsSync('/proc/self/stat')) return null;
    try {
      process.kill(pid, 0);
      return 'S';
    } catch {
      return null;
    }
  }
}

/**
 * True while `pid` runs. Unlike `processAlive` (kill -0), a zombie counts as dead: an
 * orphan whose parent shell died is a zombie until init reaps it, and some inits (this
 * test VM's, for one) reap only every couple of seconds.
 */
export function processRunning(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== 'Z' && state !== 'X';
}

/** True while any process of group `pgid` runs (zombies do not count, see processRunning). */
export function processGroupRunning(pgid: number): boolean {
  if (!processGroupAlive(pgid)) return false;
  if (!existsSync('/proc/self/stat')) return true;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === pgid && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for `serve --listen`, which refuses port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface CliChild {
  child: ChildProcessWithoutNullStreams;
  /** Everything the child wrote to stdout / stderr so far. */
  stdout(): Buffer;
  stderr(): string;
  /** Resolves when the child exited and its output streams closed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Wait until stdout matches `pattern`; returns the match (throws after `timeoutMs`). */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGKILL it if it is still running (cleanup). */
  kill(): void;
}

/**
 * Temp dirs and CLI children for one test file, removed and killed after it: `home()` makes a
 * fresh dir; push what `startCli` returns onto `children`. Call at the top level of the file.
 */
export function scratch(prefix: string): { home(): string; children: CliChild[] } {
  const children: CliChild[] = [];
  const dirs: string[] = [];
  after(() => {
    for (const child of children) child.kill();
    for (const dir of dirs) removeDir(dir);
  });
  return {
    children,
    home: () => {
      const dir = tempDir(prefix);
      dirs.push(dir);
      return dir;
    },
  };
}

/**
 * Start the real CLI as a child and leave it running, stdin open unless `closeStdin`.
 * It is SIGKILLed after `timeoutMs` so a hung test never leaves it behind.
 */
export function startCli(args: string[], options: { env?: NodeJS.ProcessEnv; closeStdin?: boolean; timeoutMs?: number } = {}): CliChild {
  const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  child.stdin.on('error', () => {});
  if (options.closeStdin) child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  const stdout = () => Buffer.concat(out);
  const stderr = () => Buffer.concat(err).toString('utf8');
  const waitForText = async (read: () => string, pattern: RegExp, timeoutMs: number, what: string) => {
    let match: RegExpMatchArray | null = null;
    const ok = await waitFor(() => (match = read().match(pattern)) !== null || child.exitCode !== null || child.signalCode !== null, timeoutMs);
    match ??= read().match(pattern);
    if (!ok || !match) {
      throw new Error(`CLI ${args.join(' ')}: ${what} did not match ${pattern} (exit ${child.exitCode ?? child.signalCode}).\nstdout: ${stdout().toString('utf8')}\nstderr: ${stderr()}`);
    }
    return match;
  };
  return {
    child,
    stdout,
    stderr,
    exited,
    waitForStdout: (pattern, timeoutMs = 10_000) => waitForText(() => stdout().toString('utf8'), pattern, timeoutMs, 'stdout'),
    waitForStderr: (pattern, timeoutMs = 10_000) => waitForText(stderr, pattern, timeoutMs, 'stderr'),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** An environment for CLI children without any SHELLWIRE_* variable of the test runner. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SHELLWIRE_')) env[name] = value;
  return { ...env, ...extra };
}

export interface ServeChild extends CliChild {
  address: string;
  port: number;
  fingerprint: string;
  home: string;
  tokenFile: string;
}

/**
 * The real `shellwire serve` on a free loopback port with SHELLWIRE_HOME=`home`
 * (state in `home/server`); resolves once it printed its address and fingerprint.
 */
export async function startServeCli(home: string, extraArgs: string[] = []): Promise<ServeChild> {
  const port = await freePort();
  const cli = startCli(['serve', '--listen', `127.0.0.1:${port}`, ...extraArgs], {
    env: cleanEnv({ SHELLWIRE_HOME: home }),
    closeStdin: true,
    timeoutMs: 60_000,
  });
  await cli.waitForStdout(/listening on .*\n/);
  const [, fingerprint] = await cli.waitForStdout(/host key fingerprint: (SHA256:\S+)/);
  return { ...cli, address: `127.0.0.1:${port}`, port, fingerprint: fingerprint!, home, tokenFile: join(home, 'server', 'token') };
}
