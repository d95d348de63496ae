/**
 * A command on a pseudo-terminal (node-pty), with the same surface as `CommandProcess`
 * so the exec channel treats both alike. The terminal merges stdout and stderr; its
 * output is paused at the master side when the channel window is exhausted, which blocks
 * the program on a full terminal buffer, exactly as a slow ssh client would.
 */
import { Readable, Writable } from 'node:stream';
import { constants } from 'node:os';
import type { IPty } from 'node-pty';
import type { CommandExit, ProcessOptions } from './command-process.js';
import { DEFAULT_KILL_GRACE_MS, ProcessGroup } from './process-group.js';
import type { Containment } from './containment.js';
import { exactSpawnLine } from './exact-spawn.js';
import { loadOptional } from '../optional-dependency.js';

export interface PtyOptions extends ProcessOptions {
  term: string;
  cols: number;
  rows: number;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

type NodePty = typeof import('node-pty');
let nodePty: NodePty | null = null;
let nodePtyProblem: string | null = null;

/**
 * node-pty is a native addon and an optional peer dependency: the daemon loads it once at
 * start (`loadNodePty`), and a daemon where it is missing or fails to load still serves
 * everything but terminals; `nodePtyUnavailable()` says why and how to install it.
 */
export async function loadNodePty(): Promise<NodePty | null> {
  if (nodePty) return nodePty;
  try {
    const module = loadOptional<NodePty & { default?: NodePty }>('node-pty');
    nodePty = module.default ?? module;
    nodePtyProblem = null;
  } catch (err) {
    nodePty = null;
    nodePtyProblem = (err as Error).message;
  }
  return nodePty;
}

export function loadedNodePty(): NodePty | null {
  return nodePty;
}

/** Why terminals are unavailable (the missing-dependency message), or null once node-pty loaded. */
export function nodePtyUnavailable(): string | null {
  return nodePty ? null : nodePtyProblem;
}

export class PtyProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly state: Readable | null = null;
  #pty: IPty;
  #exited = false;
  /** Signals, the stop's escalation, the hang-up, and the containment's finish (process-group.ts). */
  #group: ProcessGroup;
  readonly containment: Containment | null;

  constructor(ptyModule: NodePty, spec: PtyOptions, onClose: (exit: CommandExit) => void) {
    const containment = spec.containment ?? null;
    this.containment = containment;
    let pty: IPty;
    try {
      // node-pty encodes strings as UTF-8 too: the same rewrite as CommandProcess.
      const { file, args, cwd, env } = exactSpawnLine(spec, containment ? (line) => containment.wrap(line.file, line.args, line.env, line.cwd) : undefined);
      pty = ptyModule.spawn(file, args, {
        name: spec.term,
        cols: spec.cols,
        rows: spec.rows,
        cwd,
        env,
        // Buffers, not strings: output must stay byte-exact.
        encoding: null,
      } as Parameters<NodePty['spawn']>[2]);
    } catch (err) {
      containment?.removeNow();
      throw err;
    }
    this.#pty = pty;
    containment?.attach(pty.pid);
    // The terminal's program is a session leader: its pid is its process group.
    this.#group = new ProcessGroup(pty.pid, containment, spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    const output = new Readable({
      highWaterMark: 64 * 1024,
      read: () => pty.resume(),
    });
    pty.onData((data: string | Buffer) => {
      if (!output.push(typeof data === 'string' ? Buffer.from(data, 'utf8') : data)) pty.pause();
    });
    // node-pty reports the exit once the master side closed (at most 200 ms after the leader
    // exited, node-pty's DESTROY_SOCKET_TIMEOUT_MS): the terminal is hung up, so no output
    // grace is needed here. The kernel has sent SIGHUP to the terminal's foreground group;
    // the same hang-up as without a terminal (command-process.ts) then goes to the command's
    // own process group, and what survives it is released.
    pty.onExit(({ exitCode, signal }) => {
      this.#exited = true;
      output.push(null);
      const name = signal ? SIGNAL_NAMES.get(signal) ?? null : null;
      // The exit is also the end (the terminal is closed): hang-up, then finish.
      this.#group.leaderExited();
      this.#group.end();
      // Defer: the pump must see 'end' for the output before the exit is reported.
      setImmediate(() => onClose({ exitCode: name ? null : exitCode, signal: name }));
    });
    this.stdout = output;
    this.stderr = Readable.from([]);
    this.stdin = new Writable({
      // One chunk at a time, acknowledged only once the terminal took it (see #whenWritten):
      // the exec channel returns STDIN credit from this callback.
      highWaterMark: 0,
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.#exited) return callback();
        pty.write(chunk as unknown as string);
        this.#whenWritten(callback);
      },
      // EOF on a terminal is the VEOF character (^D), as when a user types it.
      final: (callback) => {
        if (!this.#exited) pty.write('\x04');
        callback();
      },
    });
  }

  /**
   * Call back once node-pty has handed every queued byte to the terminal. Its `write()` has
   * no callback and queues without bound while the program does not read (issue 8: 400 MiB
   * in seconds), so we watch its write queue (node-pty 1.x `_writeStream._writeQueue`, filled
   * and drained by non-blocking writes to the master fd) and poll while it is not empty.
   * With another node-pty whose queue we cannot see, we call back at once, as before.
   */
  #whenWritten(callback: () => void, delayMs = 1): void {
    const queue = (this.#pty as unknown as { _writeStream?: { _writeQueue?: unknown[] } })._writeStream?._writeQueue;
    if (this.#exited || !Array.isArray(queue) || queue.length === 0) {
      callback();
      return;
    }
    // Backs off to 50 ms while the program reads nothing: a few wake-ups a second, no spin.
    const timer = setTimeout(() => this.#whenWritten(callback, Math.min(delayMs * 2, 50)), delayMs);
    timer.unref();
  }

  get pid(): number | undefined {
    return this.#pty.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  resize(cols: number, rows: number): void {
    if (!this.#exited) this.#pty.resize(cols, rows);
  }

  signalGroup(signal: NodeJS.Signals): boolean {
    return this.#group.signal(signal);
  }

  groupAlive(): boolean {
    return this.#group.alive();
  }

  /**
   * Stop it (close, cancel, disconnect, timeout): SIGHUP (the terminal hangs up) and SIGTERM
   * to all of it, SIGKILL after `graceMs`. Once the program has exited and its survivors were
   * released, they are no longer ours to stop (the containment refuses).
   */
  terminate(graceMs?: number): void {
    this.#group.terminate(['SIGHUP', 'SIGTERM'], graceMs);
  }

  kill(): void {
    this.#group.kill();
  }
}
