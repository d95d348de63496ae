/**
 * A command running in its own process group, so that a signal reaches everything it
 * started (pipelines, background jobs), and — with a `Containment` — in its own cgroup, so
 * that an explicit stop reaches what left the group too (setsid): `terminate()` sends
 * SIGTERM to all of it, then SIGKILL after a grace period.
 *
 * When the command exits by itself (docs/processes.md), what it left behind gets the
 * hang-up a terminal would give it — SIGHUP and SIGCONT to its process group — and no
 * kill: `nohup prog >out 2>&1 </dev/null &` survives, a plain `prog &` ends. The output
 * pipes are read until they close, or for the output grace if a survivor holds them; then
 * whatever survived is released from containment (containment.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import type { Containment } from './containment.js';
import { exactSpawnLine, type SpawnLine } from './exact-spawn.js';
import { DEFAULT_KILL_GRACE_MS, ProcessGroup } from './process-group.js';
import { SpawnerError, type SpawnedChild, type Spawner } from './spawner.js';

export { DEFAULT_KILL_GRACE_MS, HANGUP_DELAY_MS, hangUpGroup } from './process-group.js';

/**
 * After the command exits by itself, how long processes it left behind may hold its stdout
 * and stderr open (and the channel with them) before we stop reading and end the channel.
 * OpenSSH waits forever here ("ssh hangs on exit"); we wait this long.
 */
export const DEFAULT_OUTPUT_GRACE_MS = 2_000;

/** Past the output grace: how often we look whether the output can be cut without losing bytes. */
const OUTPUT_CUT_POLL_MS = 50;

/**
 * Past the output grace, how much more a pipe is read before it is cut although output still
 * flows (a survivor that writes without pause). Nothing holds more than a pipe's capacity
 * (64 KiB; a process can raise it up to /proc/sys/fs/pipe-max-size, 1 MiB by default), so
 * everything written before the grace ended lies within that many bytes and arrives; what a
 * survivor writes after it does not have to.
 */
const PIPE_MAX_BYTES = pipeMaxSize();

function pipeMaxSize(): number {
  try {
    const size = Number(readFileSync('/proc/sys/fs/pipe-max-size', 'latin1').trim());
    if (Number.isSafeInteger(size) && size > 0) return size;
  } catch {
    // not Linux, or no /proc: the Linux default
  }
  return 1024 * 1024;
}

/** Bytes the stream took from its pipe so far (child pipes are net.Sockets). */
function bytesRead(stream: Readable): number {
  return (stream as Partial<Socket>).bytesRead ?? 0;
}

/**
 * Cut a pipe: what Node already read from it goes to its consumer — read() emits 'data' also
 * while the consumer is paused, and a paused consumer keeps it until it has credit — then the
 * stream is destroyed, so nothing more is read (a survivor's next write gets EPIPE).
 */
function cutStream(stream: Readable): void {
  while (stream.readableLength > 0 && stream.read() !== null);
  stream.destroy();
}

/** What `CommandProcess` spawns: the line after setpriv (command-spec.ts `spawnLine`), and its limits. */
export interface ProcessOptions {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Open fd 3 as an extra pipe (sessions read the shell's state from it). */
  statePipe?: boolean;
  /** SIGTERM → SIGKILL delay when the command is stopped. */
  killGraceMs?: number;
  /** After a normal exit, how long survivors may hold the output open (DEFAULT_OUTPUT_GRACE_MS). */
  outputGraceMs?: number;
  /** The command's container (cgroup + supervisor); without one, the process group only. */
  containment?: Containment;
}

export interface CommandExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /**
   * Set when the command could not be started at all: Node's error (ENOENT, EACCES), or a
   * SpawnerError when the spawner helper died while starting it.
   */
  spawnError?: NodeJS.ErrnoException;
  /** Set when the spawner helper died while the command ran: its group was killed (SW_ERR_SPAWNER). */
  spawnerError?: SpawnerError;
}

/** The command's leader: forked by the daemon (`serve --spawner off`) or by the spawner helper. */
export type CommandChild = ChildProcess | SpawnedChild;

/** Was this rejection of `Spawner.spawn` a program that could not start (ENOENT, EACCES: Node's `spawn FILE` error)? */
function isSpawnFailure(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  return typeof e?.errno === 'number' && typeof e.syscall === 'string' && e.syscall.startsWith('spawn');
}

export class CommandProcess {
  /** Null when the command could not be started (its close reports the spawnError). */
  readonly child: CommandChild | null;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly state: Readable | null;
  #exited = false;
  /** Signals, the stop's escalation, the hang-up, and the containment's finish (process-group.ts). */
  #group: ProcessGroup;
  #outputTimer: NodeJS.Timeout | null = null;
  /** When each output stream last resumed (the consumer had credit again). */
  #resumedAt = new Map<Readable, number>();
  /** When the output grace ended, and how much each stream had read from its pipe by then. */
  #graceEndedAt: number | null = null;
  #readAtGraceEnd = new Map<Readable, number>();

  #outputGraceMs: number;
  #killGraceMs: number;
  readonly containment: Containment | null;

  /**
   * Start the command: directly (fork from this process) without a `spawner`, else through
   * the spawner helper (spawner.ts: a small process forks, so the cost does not grow with the
   * daemon). A program that cannot start (ENOENT, EACCES) is not a rejection: the process
   * closes with `spawnError`, as Node reports it. Rejects (nothing started, nothing to clean
   * up) only for a spawn line that cannot be spawned at all (Node throws synchronously).
   */
  static async start(spec: ProcessOptions, onClose: (exit: CommandExit) => void, spawner: Spawner): Promise<CommandProcess> {
    const containment = spec.containment ?? null;
    // The spawner forks the command inside its cgroup: no wrapper to exec first.
    const placement = containment?.placement ?? null;
    let line: SpawnLine;
    try {
      line = placement ? exactSpawnLine(spec) : CommandProcess.#line(spec);
    } catch (err) {
      containment?.removeNow();
      throw err;
    }
    let child: SpawnedChild;
    try {
      child = await spawner.spawn({ file: line.file, args: line.args, cwd: line.cwd, env: line.env, extraPipes: spec.statePipe ? 1 : 0, ...(placement ? { cgroup: placement } : {}) });
    } catch (err) {
      // A helper that died mid-spawn may have forked the wrapper already, unreported: what
      // reached the cgroup goes too (the helper killed the groups it knew of).
      if (containment) {
        containment.killAll();
        containment.finish();
      }
      if (!(err instanceof SpawnerError) && !isSpawnFailure(err)) throw err;
      return new CommandProcess(spec, onClose, { failed: err as NodeJS.ErrnoException });
    }
    return new CommandProcess(spec, onClose, { child });
  }

  /** The exact line to spawn: bytes that are not UTF-8 (in argv, env, cwd) reach the command exactly (exact-spawn.ts), in its cgroup. */
  static #line(spec: ProcessOptions): SpawnLine {
    const containment = spec.containment;
    return exactSpawnLine(spec, containment ? (line) => containment.wrap(line.file, line.args, line.env, line.cwd) : undefined);
  }

  /**
   * Without `started`: spawn directly, now (a throw means nothing started). With it: the
   * child the spawner started, or why it could not start.
   */
  constructor(spec: ProcessOptions, onClose: (exit: CommandExit) => void, started?: { child: SpawnedChild } | { failed: NodeJS.ErrnoException }) {
    this.#outputGraceMs = spec.outputGraceMs ?? DEFAULT_OUTPUT_GRACE_MS;
    this.#killGraceMs = spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    const containment = spec.containment ?? null;
    this.containment = containment;
    if (started && 'failed' in started) {
      // What a ChildProcess does when spawn fails: empty output that ends, input that goes
      // nowhere, then close with -errno (-2 for ENOENT) and the error.
      const ended = () => new Readable({ read() { this.push(null); } });
      this.child = null;
      this.#group = new ProcessGroup(undefined, containment, this.#killGraceMs);
      this.stdin = new Writable({ write: (_chunk, _encoding, callback) => callback() });
      this.stdout = ended();
      this.stderr = ended();
      this.state = spec.statePipe ? ended() : null;
      this.#startFailed(started.failed, onClose);
      return;
    }
    let child: CommandChild;
    if (started) child = started.child;
    else {
      try {
        const { file, args, cwd, env } = CommandProcess.#line(spec);
        child = spawn(file, args, {
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
    }
    this.child = child;
    containment?.attach(child.pid);
    this.#group = new ProcessGroup(child.pid, containment, this.#killGraceMs);
    this.stdin = child.stdin!;
    this.stdout = child.stdout!;
    this.stderr = child.stderr!;
    this.state = spec.statePipe ? (child.stdio[3] as Readable) : null;
    // A command that exits without reading its input makes our writes fail with EPIPE:
    // that is the command's choice, not an error of ours.
    this.stdin.on('error', () => {});
    let spawnError: NodeJS.ErrnoException | undefined;
    let spawnerError: SpawnerError | undefined;
    if (started) {
      // From a SpawnedChild, 'error' means the helper died: the group was SIGKILLed (nothing
      // could report its exit any more); the stop reaches what left the group, in the cgroup.
      child.on('error', (err: SpawnerError) => {
        spawnerError = err;
        this.terminate();
      });
    } else {
      child.on('error', (err: NodeJS.ErrnoException) => {
        spawnError = err;
      });
    }
    for (const stream of [this.stdout, this.stderr, this.state]) stream?.on('resume', () => this.#resumedAt.set(stream, performance.now()));
    child.on('exit', () => {
      this.#exited = true;
      if (child.pid !== undefined) this.#afterExit();
    });
    // 'close' comes after the exit *and* after stdout/stderr ended (or were cut after the
    // output grace), so every byte of output the pipes delivered has been read by then.
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      this.#exited = true;
      if (this.#outputTimer) clearTimeout(this.#outputTimer);
      this.#outputTimer = null;
      const exit: CommandExit = { exitCode: code, signal };
      if (spawnError) exit.spawnError = spawnError;
      if (spawnerError) exit.spawnerError = spawnerError;
      // What survives the hang-up is released; until the hang-up went out, it stays contained.
      this.#group.end();
      onClose(exit);
    });
  }

  /** The spawner could not start it: close on a later turn, so that the caller has its listeners on. */
  #startFailed(err: NodeJS.ErrnoException, onClose: (exit: CommandExit) => void): void {
    this.#exited = true;
    setImmediate(() => {
      this.#group.end();
      onClose({ exitCode: typeof err.errno === 'number' ? err.errno : null, signal: null, spawnError: err });
    });
  }

  /**
   * The leader exited. If by itself, hang up what it left in its group (after
   * HANGUP_DELAY_MS). Either way, what still holds the output pipes gets the output grace
   * before we stop reading them (after a stop, that is only what escaped it: a setsid'd
   * process without a cgroup). Output already written still arrives.
   */
  #afterExit(): void {
    this.#group.leaderExited();
    // setImmediate after the timer: the check runs after an I/O poll phase, so what the pipes
    // held when the grace ended has been read if they are flowing.
    this.#outputTimer = setTimeout(() => setImmediate(() => this.#cutOutput()), this.#outputGraceMs);
    this.#outputTimer.unref();
  }

  /**
   * The output grace is over and something still holds a pipe: stop reading it, so 'close'
   * comes and the channel ends (a survivor's next write fails with EPIPE, as after sshd
   * closed the channel). What was written before the grace ended is not lost for a consumer
   * that is merely slow: a pipe is cut once
   * - it flowed for a poll interval with nothing buffered (the kernel's pipe buffer has been
   *   drained since; a survivor that writes now and then), or
   * - it has read PIPE_MAX_BYTES since the grace ended (all that the pipe held then has been
   *   read; a survivor that never stops writing, which the first rule would wait for forever),
   * and what Node read is handed to the consumer before the cut. A pipe the consumer keeps
   * paused (no credit) is not read on, and so waits — but only until the kill grace has also
   * passed: then every pipe is cut, so that a client withholding credit cannot keep a command
   * and its survivors contained (the daemon's state) for as long as it likes.
   */
  #cutOutput(): void {
    this.#outputTimer = null;
    if (this.#group.ended) return;
    const now = performance.now();
    this.#graceEndedAt ??= now;
    const overdue = now - this.#graceEndedAt >= this.#killGraceMs;
    let waiting = false;
    for (const stream of [this.stdout, this.stderr, this.state]) {
      if (!stream || stream.destroyed || stream.readableEnded) continue;
      if (!this.#readAtGraceEnd.has(stream)) this.#readAtGraceEnd.set(stream, bytesRead(stream));
      const readSinceGrace = bytesRead(stream) - this.#readAtGraceEnd.get(stream)!;
      const flowingSince = this.#resumedAt.get(stream) ?? 0;
      const drained = stream.readableFlowing !== false && stream.readableLength === 0 && now - flowingSince >= OUTPUT_CUT_POLL_MS;
      if (overdue || drained || readSinceGrace >= PIPE_MAX_BYTES) cutStream(stream);
      else waiting = true;
    }
    if (!waiting) return;
    this.#outputTimer = setTimeout(() => setImmediate(() => this.#cutOutput()), OUTPUT_CUT_POLL_MS);
    this.#outputTimer.unref();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Signal the whole process group; false when no process of it is left. */
  signalGroup(signal: NodeJS.Signals): boolean {
    return this.#group.signal(signal);
  }

  /** True while any process of the group is alive (the leader or something it started). */
  groupAlive(): boolean {
    return this.#group.alive();
  }

  /**
   * Stop the command (close, cancel, disconnect, timeout), also while survivors of its exit
   * still hold the output: SIGTERM to all of it — its cgroup, setsid'd processes included,
   * else its process group — and SIGKILL after `graceMs`. Once the command has closed, what
   * survived was released and is no longer ours to stop.
   */
  terminate(graceMs: number = this.#killGraceMs): void {
    if (this.#released) return;
    this.#group.terminate(['SIGTERM'], graceMs);
  }

  /** Kill all of it at once (daemon shutdown after its grace period). */
  kill(): void {
    if (this.#released) return;
    this.#group.kill();
  }

  /**
   * It exited by itself and closed: what survives is released (or about to be, after the
   * hang-up). A stop that began earlier goes on to the end (its SIGKILL after the grace).
   */
  get #released(): boolean {
    return this.#group.ended && !this.#group.stopping;
  }
}
