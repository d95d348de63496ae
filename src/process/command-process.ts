/**
 * A command running in its own process group, so that a signal reaches everything it
 * started (pipelines, background jobs), and — with a `Containment` — in its own cgroup, so
 * that an explicit stop reaches what left the group too (setsid): `terminate()` sends
 * SIGTERM to all of it, then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { Containment } from './containment.js';
import { exactSpawnLine } from './exact-spawn.js';

/** How long a command gets between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_GRACE_MS = 2_000;

export interface CommandSpec {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Open fd 3 as an extra pipe (sessions read the shell's state from it). */
  statePipe?: boolean;
  /** SIGTERM → SIGKILL delay for what the command leaves behind. */
  killGraceMs?: number;
  /** The command's container (cgroup + supervisor); without one, the process group only. */
  containment?: Containment;
}

export interface CommandExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started at all. */
  spawnError?: NodeJS.ErrnoException;
}

export class CommandProcess {
  readonly child: ChildProcess;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly state: Readable | null;
  #exited = false;
  #killTimer: NodeJS.Timeout | null = null;
  #killAllPending = false;

  #killGraceMs: number;
  readonly containment: Containment | null;

  constructor(spec: CommandSpec, onClose: (exit: CommandExit) => void) {
    this.#killGraceMs = spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    const containment = spec.containment ?? null;
    this.containment = containment;
    try {
      // Bytes that are not UTF-8 (in argv, env, cwd) reach the command exactly: exact-spawn.ts.
      const { file, args, cwd, env } = exactSpawnLine(spec, containment ? (line) => containment.wrap(line.file, line.args, line.env, line.cwd) : undefined);
      this.child = spawn(file, args, {
        cwd,
        env,
        // detached: the child calls setsid(), so its pid is also its process group id.
        detached: true,
        stdio: spec.statePipe ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      containment?.removeNow();
      throw err;
    }
    containment?.attach(this.child.pid);
    this.stdin = this.child.stdin!;
    this.stdout = this.child.stdout!;
    this.stderr = this.child.stderr!;
    this.state = spec.statePipe ? (this.child.stdio[3] as Readable) : null;
    // A command that exits without reading its input makes our writes fail with EPIPE:
    // that is the command's choice, not an error of ours.
    this.stdin.on('error', () => {});
    let spawnError: NodeJS.ErrnoException | undefined;
    this.child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
    });
    this.child.on('exit', () => {
      this.#exited = true;
      // The command is over when its leader exits. Background jobs it left in the group
      // would hold stdout open (and the channel with it): they get SIGTERM, then SIGKILL.
      // Output already written still arrives.
      this.endBackgroundJobs(this.#killGraceMs);
    });
    // 'close' comes after the exit *and* after stdout/stderr ended, so every byte of output
    // has been read by then.
    this.child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      this.#exited = true;
      const exit: CommandExit = { exitCode: code, signal };
      if (spawnError) exit.spawnError = spawnError;
      containment?.finish();
      onClose(exit);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Signal the whole process group; false when no process of it is left. */
  signalGroup(signal: NodeJS.Signals): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** True while any process of the group is alive (the leader or something it started). */
  groupAlive(): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stop the command (close, cancel, disconnect, timeout): SIGTERM to all of it — its cgroup,
   * setsid'd processes included, else its process group — and SIGKILL after `graceMs`.
   */
  terminate(graceMs: number = DEFAULT_KILL_GRACE_MS): void {
    const containment = this.containment;
    const signaled = containment ? containment.signalAll('SIGTERM') : this.signalGroup('SIGTERM');
    if (!signaled || (this.#killTimer && this.#killAllPending)) return;
    // A pending group-only SIGKILL (endBackgroundJobs) is widened to all of it.
    if (this.#killTimer) clearTimeout(this.#killTimer);
    this.#killAllPending = true;
    this.#killTimer = setTimeout(() => {
      this.#killTimer = null;
      this.kill();
    }, graceMs);
    this.#killTimer.unref();
  }

  /**
   * The leader exited by itself: end what it left in its process group (SIGTERM, then
   * SIGKILL). What left the group on purpose is released from the cgroup, not killed.
   */
  endBackgroundJobs(graceMs: number = DEFAULT_KILL_GRACE_MS): void {
    if (!this.signalGroup('SIGTERM') || this.#killTimer) return;
    this.#killTimer = setTimeout(() => {
      this.#killTimer = null;
      this.signalGroup('SIGKILL');
    }, graceMs);
    this.#killTimer.unref();
  }

  /** Kill all of it at once (daemon shutdown after its grace period). */
  kill(): void {
    if (this.containment) this.containment.killAll();
    else this.signalGroup('SIGKILL');
  }
}
