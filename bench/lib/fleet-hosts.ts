/**
 * Many daemons for fan-out benches (bench/fleet.ts, bench/measures/nats-fleet.ts): every
 * target is its own `Server` on its own loopback address 127.0.x.y and the same port, PER_PROCESS
 * of them per child process (bench/fleet-daemons.mjs), and a timed CLI run with its peak RSS.
 * Children and the CLI run under `ulimit -n` raised to the hard limit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

// Few servers per process: fork() cost grows with the parent's RSS (measured: 1.6 ms per spawn at 54 MB,
// 14 ms at 255 MB), and a real host runs one daemon, so lean processes are the honest model.
export const PER_PROCESS = 50;

/** 127.0.x.y for target i (skipping .0 and .255; 127.0.0.1 stays free for everything else). */
export const addressOf = (i: number) => `127.0.${Math.floor((i + 2) / 254)}.${((i + 2) % 254) + 1}`;

export const hardLimit = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();

/** `cmd` run through bash with the soft fd limit raised to the hard one. */
export const withUlimit = (cmd: string[]) => ['bash', ['-c', `ulimit -n ${hardLimit} 2>/dev/null; exec "$@"`, 'sh', ...cmd]] as const;

/**
 * `total` daemons (targets 0…total−1 on `addressOf(i)`:`port`), sharing `stateDir` (one identity
 * and token); each child is passed to `onChild` (for killing by PID at the end).
 */
export async function startDaemons(total: number, stateDir: string, port: number, onChild: (child: ChildProcess) => void): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (let first = 0; first < total; first += PER_PROCESS) {
    const [file, args] = withUlimit([process.execPath, join(ROOT, 'bench/fleet-daemons.mjs'), stateDir, String(first), String(Math.min(PER_PROCESS, total - first)), String(port)]);
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
    onChild(child);
    jobs.push(new Promise((ok, fail) => {
      child.stdout!.on('data', (c: Buffer) => c.toString().includes('READY') && ok());
      child.once('exit', (code) => fail(new Error(`daemon host process exited ${code}`)));
    }));
  }
  await Promise.all(jobs);
}

/** Wall time of one command (stdout discarded, or its last 4,000 characters kept), plus its peak RSS (VmHWM polled) and stderr. */
export function timed(cmd: string[], env: NodeJS.ProcessEnv, options: { stdoutTail?: boolean } = {}): Promise<{ s: number; code: number | null; stderr: string; stdout: string; hwmKiB: number }> {
  return new Promise((done) => {
    const [file, args] = withUlimit(cmd);
    const t0 = performance.now();
    const child = spawn(file, args, { env, stdio: ['ignore', options.stdoutTail ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout?.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-4000)));
    let hwm = 0;
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwm = Math.max(hwm, Number(m[1]));
      } catch {
        // exited
      }
    }, 10);
    child.on('close', (code) => {
      clearInterval(poll);
      done({ s: (performance.now() - t0) / 1000, code, stderr, stdout, hwmKiB: hwm });
    });
  });
}
