/**
 * The daemon's end of the spawner: commands are forked by a small long-lived helper process
 * (spawner-main.ts) instead of by the daemon, because fork() copies the parent's page tables:
 * from a daemon of 255 MB a spawn took 14 ms against 1.6 ms at 54 MB, and grows with every
 * connection the daemon holds. The helper stays small whatever the daemon holds.
 *
 * The command's stdio are Unix-socket connections the helper opened to a socket only the
 * daemon listens on (in a 0700 directory, each connection proven by a per-helper token), so
 * output flows from the child straight to the daemon: the helper never sees a byte. Control
 * (spawn, pid, exit status, kill) goes over the Node IPC channel.
 *
 * What a `SpawnedChild` gives is what CommandProcess used of a ChildProcess: pid (= process
 * group id: setsid, as with `detached: true`), stdin/stdout/stderr and extra pipes as sockets
 * (Node's own 'pipe' stdio are socketpairs too), 'exit' when the leader exits, 'close' after
 * the exit and the end of every output stream. Signalling the process group stays with the
 * caller (`process.kill(-pid, …)`, as before): a group id cannot be reused while a member
 * lives. `kill()` of the leader goes through the helper, which alone knows whether the pid is
 * still its unreaped child.
 *
 * If the helper dies, pending spawns reject and running commands get 'error' with a
 * `SpawnerError` (SW_ERR_SPAWNER): their process groups are SIGKILLed (nothing could report
 * their exit any more), then 'exit' (null, 'SIGKILL') and 'close' follow. The next spawn starts
 * a new helper. If the daemon dies, the helper sees its channel close, kills the groups of
 * commands still running (the supervisor does as much) and exits.
 */
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ErrorCode, ShellwireError } from '../errors.js';
import { directReadable } from './direct-read.js';
import { spawnerMain, type FromHelper, type SpawnerHelperConfig, type SpawnFailure, type ToHelper } from './spawner-main.js';

/** The spawner helper died or could not be started (SW_ERR_SPAWNER). */
export class SpawnerError extends ShellwireError {
  override name = 'SpawnerError';
  constructor(reason: string, cause?: unknown) {
    super(ErrorCode.SPAWNER, reason, cause === undefined ? {} : { cause });
  }
}

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Pipes beyond stdin/stdout/stderr, as fds 3, 4, …: readable on the daemon's side. */
  extraPipes?: number;
  /**
   * Start the command in this cgroup: `procs` is its cgroup.procs file, `home` the helper's
   * own (where it returns right after the fork). The child is born there, before it can fork
   * anything, without the `/bin/sh` wrapper that moves itself in (containment.ts).
   */
  cgroup?: { procs: string; home: string };
}

export interface SpawnerOptions {
  /** Where the private socket directory is made (mode 0700); os.tmpdir() by default. */
  dir?: string;
  /** Connections the helper keeps ready (3 per command). */
  poolSize?: number;
  /** The helper's V8 heap limit, MB. */
  maxOldSpaceMb?: number;
  /** Told when a helper dies or cannot start. */
  onLog?: (message: string) => void;
  /** How long a started command's stdio connections may take to reach us (default `STDIO_TIMEOUT_MS`). */
  stdioTimeoutMs?: number;
}

const HEADER_BYTES = 20;
const HEADER_TIMEOUT_MS = 5_000;
const READY_TIMEOUT_MS = 10_000;
/**
 * How long a started command's stdio connections may be missing while NO connection from its
 * helper arrives. The helper flushed each header before it pooled the connection, so they are
 * in our accept queue already and only our own loop delays them; while other connections keep
 * arriving the loop is merely slow (an overloaded machine: 10,000 agents on 2 cores took over
 * 10 s to accept a burst's connections, measured), so the wait goes on. When nothing has
 * arrived for this long, this command's connections went elsewhere (something else answers at
 * the socket path; or its header timer dropped them) and never will: waiting longer would leave
 * the command unstarted and its caller waiting for ever. Twice the header timeout, so a
 * connection the header timer still gives a chance is never given up on first.
 */
export const STDIO_TIMEOUT_MS = 10_000;
/** The longest a command waits for its stdio connections even while others keep arriving. */
export const STDIO_MAX_WAIT_MS = 120_000;

/** A command started by the spawner: the part of a ChildProcess that CommandProcess uses. */
export class SpawnedChild extends EventEmitter {
  readonly pid: number;
  /** [stdin, stdout, stderr, extra pipes…] */
  readonly stdio: readonly Socket[];
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  #exited = false;
  #closeEmitted = false;
  #onKill: (signal: NodeJS.Signals | number) => boolean;

  /** @internal */
  constructor(pid: number, stdio: Socket[], onKill: (signal: NodeJS.Signals | number) => boolean) {
    super();
    this.pid = pid;
    this.stdio = stdio;
    this.stdin = stdio[0]!;
    this.stdout = stdio[1]!;
    this.stderr = stdio[2]!;
    this.#onKill = onKill;
    // As ChildProcess: 'close' waits for the exit and for every output stream's 'close'
    // (one may have closed already: a command without output that exited at once).
    for (const stream of stdio.slice(1)) if (!stream.closed) stream.once('close', () => this.#maybeClose());
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Signal the leader (through the helper, which knows whether the pid is still ours); false once it exited. */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.#exited) return false;
    return this.#onKill(signal);
  }

  /** @internal */
  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exited) return;
    this.#exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    // As ChildProcess does on exit: what the command did not read of its input is dropped.
    this.stdin.destroy();
    this.emit('exit', code, signal);
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#closeEmitted || !this.#exited || !this.stdio.slice(1).every((stream) => stream.closed)) return;
    this.#closeEmitted = true;
    this.emit('close', this.exitCode, this.signalCode);
  }
}

interface Pending {
  request: SpawnRequest;
  resolve(child: SpawnedChild): void;
  reject(err: Error): void;
  /** Set once the helper reported the pid; the sockets may still be on their way. */
  pid?: number;
  child?: SpawnedChild;
  /** An exit reported before the child was handed out. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/** One helper process and what belongs to it. */
class Helper {
  readonly token = randomBytes(16);
  readonly process: ChildProcess;
  readonly ready: Promise<void>;
  dead = false;
  /** Accepted, authenticated connections not yet handed to a command, by slot. */
  readonly slots = new Map<number, Socket>();
  readonly slotWaiters = new Map<number, (socket: Socket) => void>();
  /** When a connection of this helper last arrived (performance.now()): the accept path's progress. */
  lastArrivalMs = performance.now();
  /** Spawn requests and commands not yet exited, by request id. */
  readonly commands = new Map<number, Pending>();
  #active = 0;

  constructor(execArgv: string[], config: Omit<SpawnerHelperConfig, 'token'>) {
    const program = `var __name = (f) => f;\n(${spawnerMain.toString()})(require('node:child_process'), require('node:net'), require('node:fs'), process, JSON.parse(process.argv[1]));`;
    const full: SpawnerHelperConfig = { ...config, token: this.token.toString('hex') };
    const env = { ...process.env };
    // The helper runs plain node: no loaders or options meant for the daemon.
    delete env.NODE_OPTIONS;
    this.process = spawnProcess(process.execPath, [...execArgv, '-e', program, JSON.stringify(full)], {
      // Its own session: a terminal's Ctrl-C to the daemon's group must not reach it.
      detached: true,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      env,
    });
    this.process.unref();
    this.#unrefChannel();
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SpawnerError(`the spawner helper did not start within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      timer.unref();
      this.process.once('error', (err) => {
        clearTimeout(timer);
        reject(new SpawnerError(`cannot start the spawner helper (${process.execPath}): ${err.message}`, err));
      });
      this.process.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new SpawnerError(`the spawner helper exited (${signal ?? `code ${code}`}) before it was ready`));
      });
      this.process.on('message', (m: FromHelper) => {
        if (m.t === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    this.ready.catch(() => {});
  }

  /**
   * A spawn or a command is in flight: the channel and the helper's process handle keep the
   * daemon's loop alive meanwhile (the handle so that the helper's death is always noticed:
   * a dead helper's channel closes and holds nothing).
   */
  hold(): void {
    if (this.#active++ > 0) return;
    (this.process.channel as unknown as { ref?: () => void } | undefined)?.ref?.();
    this.process.ref();
  }

  release(): void {
    if (--this.#active > 0) return;
    this.#unrefChannel();
    this.process.unref();
  }

  #unrefChannel(): void {
    (this.process.channel as unknown as { unref?: () => void } | undefined)?.unref?.();
  }

  send(message: ToHelper): boolean {
    if (this.dead || !this.process.connected) return false;
    try {
      this.process.send(message);
      return true;
    } catch {
      return false;
    }
  }

  takeSlot(slot: number): Promise<Socket> {
    const socket = this.slots.get(slot);
    if (socket) {
      this.slots.delete(slot);
      return Promise.resolve(socket);
    }
    return new Promise((resolve) => this.slotWaiters.set(slot, resolve));
  }
}

export class Spawner {
  #server: Server;
  #dir: string;
  #socketPath: string;
  #options: SpawnerOptions;
  #helper: Helper | null = null;
  #helpers = new Map<string, Helper>();
  #nextId = 1;
  #closed = false;

  private constructor(server: Server, dir: string, socketPath: string, options: SpawnerOptions) {
    this.#server = server;
    this.#dir = dir;
    this.#socketPath = socketPath;
    this.#options = options;
  }

  /** Listen on a private socket and start the helper; resolves once the helper is ready. */
  static async start(options: SpawnerOptions = {}): Promise<Spawner> {
    const dir = mkdtempSync(join(options.dir ?? tmpdir(), 'shellwire-spawner-'));
    const socketPath = join(dir, 's');
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // A deep backlog: a burst of spawns opens 3 connections each (the kernel caps it at somaxconn).
        server.listen({ path: socketPath, backlog: 4096 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new SpawnerError(`cannot listen on ${socketPath} for the spawner helper: ${(err as Error).message}`, err);
    }
    server.unref();
    const spawner = new Spawner(server, dir, socketPath, options);
    server.on('connection', (socket) => spawner.#accept(socket));
    await spawner.#currentHelper();
    return spawner;
  }

  /** The helper's pid (for tests and logs); undefined while none runs. */
  get helperPid(): number | undefined {
    return this.#helper && !this.#helper.dead ? this.#helper.process.pid : undefined;
  }

  /**
   * Start a command. Resolves when it runs (Node's 'spawn'), with its pid and pipes; rejects
   * with Node's error for a program that cannot be started (ENOENT, EACCES: `code`, `errno`,
   * `syscall: 'spawn FILE'`, `path`, `spawnargs`), or with a SpawnerError if the helper died.
   */
  async spawn(request: SpawnRequest): Promise<SpawnedChild> {
    if (this.#closed) throw new SpawnerError('the spawner is closed');
    const helper = await this.#currentHelper();
    const id = this.#nextId++;
    const fds = 3 + (request.extraPipes ?? 0);
    return new Promise<SpawnedChild>((resolve, reject) => {
      helper.hold();
      helper.commands.set(id, { request, resolve, reject });
      const sent = helper.send({ t: 'spawn', id, file: request.file, args: request.args, cwd: request.cwd, env: request.env, fds, ...(request.cgroup ? { cgroup: request.cgroup } : {}) });
      if (sent) return;
      // It died between ready and now (its death may be known already, so fail this one here).
      helper.commands.delete(id);
      helper.release();
      reject(new SpawnerError(`the spawner helper died before it could start ${request.file}; the next command starts a new helper`));
      this.#helperDied(helper, 'its channel is closed');
    });
  }

  /**
   * Stop: the helper exits, SIGKILLing the process group of each command whose leader still
   * runs (as when the daemon dies: stop commands before); the socket directory is removed.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const helper of this.#helpers.values()) {
      // Nothing may wait for ever on a spawner that is gone: spawns in flight fail (what the
      // helper forked for them it kills, unreported or not), commands still running are
      // killed here too (their exit would never be reported) and end as killed.
      for (const [id, pending] of helper.commands) {
        helper.commands.delete(id);
        helper.release();
        if (!pending.child) {
          if (pending.pid !== undefined) killGroup(pending.pid);
          pending.reject(new SpawnerError(`the spawner was closed (the daemon is stopping) before ${pending.request.file} started`));
        } else if (!pending.child.exited) {
          killGroup(pending.child.pid);
          pending.child.exit(null, 'SIGKILL');
        }
      }
      helper.process.disconnect?.();
    }
    this.#server.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async #currentHelper(): Promise<Helper> {
    if (!this.#helper || this.#helper.dead) this.#helper = this.#launch();
    const helper = this.#helper;
    // Waiting for it keeps the loop alive (its channel is unref'd otherwise).
    helper.hold();
    try {
      await helper.ready;
    } catch (err) {
      this.#helperDied(helper, (err as Error).message);
      throw err;
    } finally {
      helper.release();
    }
    return helper;
  }

  #launch(): Helper {
    const helper = new Helper([`--max-old-space-size=${this.#options.maxOldSpaceMb ?? 32}`], {
      socketPath: this.#socketPath,
      poolSize: this.#options.poolSize ?? 12,
      daemonPid: process.pid,
    });
    const key = helper.token.toString('hex');
    this.#helpers.set(key, helper);
    helper.process.on('message', (m: FromHelper) => this.#onMessage(helper, m));
    helper.process.on('exit', (code, signal) => this.#helperDied(helper, signal ? `killed by ${signal}` : `exit code ${code}`));
    helper.process.on('disconnect', () => {
      // close(): the helper exits by itself, after killing what still runs.
      if (helper.dead || this.#closed) return;
      // Without its channel it is of no use: make sure it is gone. Its 'exit', which follows,
      // says how it died; the timer only guards against an exit that never comes.
      helper.process.kill('SIGKILL');
      setTimeout(() => this.#helperDied(helper, 'its channel closed'), 1_000).unref();
    });
    helper.process.on('error', () => {});
    return helper;
  }

  #accept(socket: Socket): void {
    socket.on('error', () => {});
    // Timers run before the poll phase: after the loop was blocked past the timeout (a starved
    // daemon), the header may be waiting in the kernel, unread. setImmediate runs after a poll
    // phase, so it is read first; dropping such a connection left the spawn that takes its
    // slot waiting forever.
    const timer = setTimeout(() => setImmediate(() => {
      if (!socket.destroyed && socket.listenerCount('readable') > 0) {
        onReadable();
        if (socket.listenerCount('readable') > 0) socket.destroy();
      }
    }), HEADER_TIMEOUT_MS);
    timer.unref();
    const onReadable = (): void => {
      const header = socket.read(HEADER_BYTES) as Buffer | null;
      if (header === null) return;
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      clearTimeout(timer);
      const helper = this.#helpers.get(header.subarray(0, 16).toString('hex'));
      // Only the helper knows the token; the hex lookup is not constant-time, so compare again.
      if (!helper || helper.dead || !timingSafeEqual(header.subarray(0, 16), helper.token)) {
        socket.destroy();
        return;
      }
      // Read nothing more until a command has it: a net.Socket that reads EOF with nothing
      // buffered emits 'end' at once, before its consumer could listen (claim() restarts it).
      setReading(socket, false);
      const slot = header.readUInt32BE(16);
      helper.lastArrivalMs = performance.now();
      // Pooled connections do not keep the daemon alive; a command's do, as a ChildProcess's pipes.
      socket.unref();
      const waiter = helper.slotWaiters.get(slot);
      if (waiter) {
        helper.slotWaiters.delete(slot);
        waiter(socket);
      } else helper.slots.set(slot, socket);
    };
    const onEnd = (): void => {
      socket.destroy();
    };
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
  }

  #onMessage(helper: Helper, m: FromHelper): void {
    if (m.t === 'ready') return;
    const pending = helper.commands.get(m.id);
    if (!pending) return;
    if (m.t === 'failed') {
      helper.commands.delete(m.id);
      helper.release();
      // The daemon's ends of the connections it had taken for this command: nobody will
      // claim them, and a pooled socket is not read, so it would never see its EOF.
      for (const slot of m.slots ?? []) void helper.takeSlot(slot).then((socket) => socket.destroy());
      pending.reject(spawnErrorOf(m.error, pending.request));
    } else if (m.t === 'spawned') {
      pending.pid = m.pid;
      void this.#claim(helper, m.id, pending, m.pid, m.slots);
    } else if (m.t === 'exit') {
      helper.commands.delete(m.id);
      if (pending.child) {
        pending.child.exit(m.code, m.signal);
        helper.release();
      } else pending.exit = { code: m.code, signal: m.signal };
    }
  }

  async #claim(helper: Helper, id: number, pending: Pending, pid: number, slots: number[]): Promise<void> {
    const sockets = await this.#takeSlots(helper, slots);
    if (sockets === null) {
      const ours = helper.commands.get(id) === pending;
      // Out of `commands` without an early exit: the helper's death or close() failed it already.
      // One whose leader's exit came first is out of `commands` too, but only we can fail it.
      if (!ours && pending.exit === undefined) return;
      if (ours) helper.commands.delete(id);
      helper.release();
      // It started (or is about to): nothing could ever give it input or read its output.
      killGroup(pid);
      const limit = this.#options.stdioTimeoutMs ?? STDIO_TIMEOUT_MS;
      this.#options.onLog?.(`the stdio connections of ${pending.request.file} (pid ${pid}) did not reach the daemon from the spawner helper (none of its connections arrived for ${limit} ms); its process group was killed`);
      pending.reject(new SpawnerError(
        `${pending.request.file} (pid ${pid}) was started, but its stdio connections from the spawner helper did not reach the daemon (none of the helper's connections arrived for ${limit} ms) ` +
          `(the daemon was too busy to accept them, or something else listens at ${this.#socketPath}); its process group was killed. ` +
          'Run the command again; if this keeps happening, look in the daemon\'s log and check that nothing replaced that socket.',
      ));
      return;
    }
    if (pending.child || helper.dead || this.#closed) {
      for (const socket of sockets) socket.destroy();
      return;
    }
    for (const [fd, pooled] of sockets.entries()) {
      pooled.ref();
      // One direction each: stdin is written, the others read (their write side ends now, and
      // they read from now on, as a ChildProcess's pipes do from their creation: the caller
      // gets them before any more I/O is handled, so no 'end' passes unheard). Output is read
      // into buffers its consumer may choose (direct-read.ts: the output pump's frames).
      if (fd !== 0) {
        const socket = directReadable(pooled);
        sockets[fd] = socket;
        socket.on('error', () => {});
        socket.end();
        setReading(socket, true);
      }
    }
    const child = new SpawnedChild(pid, sockets, (signal) => helper.send({ t: 'kill', id, signal }));
    pending.child = child;
    pending.resolve(child);
    const early = pending.exit;
    if (early) {
      // After the caller's continuation ran, so that it has its listeners on.
      setImmediate(() => {
        child.exit(early.code, early.signal);
        helper.release();
      });
    }
  }

  /**
   * The command's connections by fd, or null if they did not all arrive within the time limit
   * (those that did are closed; one arriving later is closed on arrival).
   */
  #takeSlots(helper: Helper, slots: number[]): Promise<Socket[] | null> {
    if (slots.length === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const sockets: Socket[] = new Array<Socket>(slots.length);
      let missing = slots.length;
      let settled = false;
      const giveUp = (): void => {
        if (settled) return;
        settled = true;
        for (const socket of sockets) socket?.destroy();
        resolve(null);
      };
      // As the header timer (#accept): after a loop blocked past the limit, timers run before
      // the poll phase that accepts the connections waiting in the kernel (a first setImmediate)
      // and the one after it that reads their headers (a second): judge only after both.
      const limit = this.#options.stdioTimeoutMs ?? STDIO_TIMEOUT_MS;
      const startedMs = performance.now();
      let timer: NodeJS.Timeout;
      const check = (): void => {
        if (settled) return;
        const now = performance.now();
        const quietMs = now - helper.lastArrivalMs;
        if (quietMs >= limit || now - startedMs >= Math.max(limit, STDIO_MAX_WAIT_MS)) giveUp();
        else arm(limit - quietMs);
      };
      const arm = (ms: number): void => {
        timer = setTimeout(() => setImmediate(() => setImmediate(check)), ms);
        // The spawn in flight holds the helper's channel, which keeps the loop alive meanwhile.
        timer.unref();
      };
      arm(limit);
      slots.forEach((slot, fd) => {
        void helper.takeSlot(slot).then((socket) => {
          if (settled) {
            socket.destroy();
            return;
          }
          sockets[fd] = socket;
          if (--missing > 0) return;
          settled = true;
          clearTimeout(timer);
          resolve(sockets);
        });
      });
    });
  }

  #helperDied(helper: Helper, how: string): void {
    if (helper.dead) return;
    helper.dead = true;
    this.#helpers.delete(helper.token.toString('hex'));
    if (this.#helper === helper) this.#helper = null;
    for (const socket of helper.slots.values()) socket.destroy();
    helper.slots.clear();
    helper.slotWaiters.clear();
    if (this.#closed) return;
    const running = [...helper.commands.values()];
    helper.commands.clear();
    if (running.length > 0 || helper.process.exitCode !== null || helper.process.signalCode !== null) {
      this.#options.onLog?.(`the spawner helper (pid ${helper.process.pid}) died (${how}); ${running.length} command(s) affected; the next command starts another`);
    }
    for (const pending of running) {
      const err = new SpawnerError(
        `the spawner helper died (${how}) while ${pending.child ? `the command ${pending.request.file} (pid ${pending.child.pid}) ran: its exit status is lost, so its process group was killed` : `starting ${pending.request.file}`}; the next command starts a new helper`,
      );
      if (!pending.child) {
        // Started but not handed out: its group goes (nothing would ever report it), then the request fails.
        if (pending.pid !== undefined) killGroup(pending.pid);
        pending.reject(err);
        continue;
      }
      const child = pending.child;
      if (!child.exited) killGroup(child.pid);
      child.emit('error', err);
      child.exit(null, 'SIGKILL');
    }
    for (let i = 0; i < running.length; i++) helper.release();
  }
}

/**
 * Start or stop reading a socket's fd, as Node itself does for sockets it hands to a child
 * (lib/internal/child_process.js, 'wrap' stdio). The Readable's own state is left alone: a
 * read it asked for stays pending and is answered once reading starts again.
 */
function setReading(socket: Socket, on: boolean): void {
  const handle = (socket as unknown as { _handle?: { reading: boolean; readStart(): number; readStop(): number } | null })._handle;
  if (!handle || handle.reading === on) return;
  handle.reading = on;
  if (on) handle.readStart();
  else handle.readStop();
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

/** Node's error for a spawn that failed, rebuilt from what the helper sent. */
function spawnErrorOf(failure: SpawnFailure, request: SpawnRequest): NodeJS.ErrnoException {
  const err = new Error(failure.message) as NodeJS.ErrnoException & { spawnargs?: string[] };
  if (failure.errno !== undefined) err.errno = failure.errno;
  if (failure.code !== undefined) err.code = failure.code;
  if (failure.syscall !== undefined) err.syscall = failure.syscall;
  if (failure.path !== undefined) err.path = failure.path;
  err.spawnargs = failure.spawnargs ?? request.args;
  return err;
}
