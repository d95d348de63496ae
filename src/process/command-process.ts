/**
 * A command running in its own process group, so that a signal reaches everything it
 * started (pipelines, background jobs), and so that nothing it started outlives it:
 * `terminate()` sends SIGTERM to the group, then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

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

  #killGraceMs: number;

  constructor(spec: CommandSpec, onClose: (exit: CommandExit) => void) {
    this.#killGraceMs = spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.child = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      // detached: the child calls setsid(), so its pid is also its process group id.
      detached: true,
      stdio: spec.statePipe ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
    });
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
      // would hold stdout open (and the channel with it): nothing a command started may
      // outlive it, so they get SIGTERM, then SIGKILL. Output already written still arrives.
      if (this.groupAlive()) this.terminate(this.#killGraceMs);
    });
    // 'close' comes after the exit *and* after stdout/stderr ended, so every byte of output
    // has been read by then.
    this.child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      this.#exited = true;
      const exit: CommandExit = { exitCode: code, signal };
      if (spawnError) exit.spawnError = spawnError;
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

  /** SIGTERM to the group now, SIGKILL after `graceMs` if any of it is still alive. */
  terminate(graceMs: number = DEFAULT_KILL_GRACE_MS): void {
    if (!this.signalGroup('SIGTERM')) return;
    if (this.#killTimer) return;
    this.#killTimer = setTimeout(() => {
      this.#killTimer = null;
      this.signalGroup('SIGKILL');
    }, graceMs);
    this.#killTimer.unref();
  }

  /** Kill at once (daemon shutdown after its grace period). */
  kill(): void {
    this.signalGroup('SIGKILL');
  }
}
