/**
 * Helper processes of a bench run (bench/idle-clients.ts, bench/slow-reader.ts, hyperfine):
 * each is tracked so `killChildrenSync()` can stop it by PID on any exit path, and helper
 * scripts talk back line by line on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type BenchDaemon } from './daemon.js';

const children = new Set<ChildProcess>();

/** Kill `child` with the rest when the bench ends. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Last resort on exit: SIGKILL every tracked child still alive. */
export function killChildrenSync(): void {
  for (const child of children) {
    try {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
  killPidsSync();
}

export interface Helper {
  child: ChildProcess;
  lines: AsyncIterableIterator<string>;
  stderr: () => string;
}

/** Start a helper script (bench/*.ts) in its own process with tsx, pointed at daemon `d`. */
export function startHelper(script: string, args: string[], d: BenchDaemon): Helper {
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], {
      cwd: ROOT,
      env: { ...d.env, BENCH_FINGERPRINT: d.fingerprint },
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
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

/** The helper's next stdout line, or an error naming `what` after `timeoutMs`. */
export async function nextLine(it: AsyncIterableIterator<string>, timeoutMs: number, what: string): Promise<string> {
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

/** Wait for `child` to exit; SIGKILL it after `timeoutMs`. */
export function waitExit(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
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

/** The next stdout line of a tracked child (no tsx helper protocol), or an error after `timeoutMs`. */
export function nextLineOf(child: ChildProcess, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const onData = (c: Buffer) => {
      buf += c.toString('utf8');
      const i = buf.indexOf('\n');
      if (i >= 0) done(null, buf.slice(0, i));
    };
    const onExit = (code: number | null) => done(new Error(`${what} exited (${code}) before saying anything`));
    function done(err: Error | null, line?: string) {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.stdout!.resume();
      if (err) reject(err);
      else resolve(line!);
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

const pids = new Set<number>();

/** A process this run started that is not our child (a daemonized `ssh -fN` master): killed by PID at exit. */
export function trackPid(pid: number): void {
  pids.add(pid);
}

export function untrackPid(pid: number): void {
  pids.delete(pid);
}

/** Last resort on exit: SIGKILL the tracked PIDs still alive. */
export function killPidsSync(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  pids.clear();
}
