/**
 * One classic (plaintext) client: the token line, then one command per message, run one at
 * a time in order, each answered with one reply written whole.
 *
 *   client: TOKEN "\n" → (COMMAND ("\n" | pause))* → EOF?
 *   server: "OK\n" | "ERROR <code>: <why>\n" then close
 *           per command: OUTPUT (stdout and stderr as produced) | "Done.\n" | "ERROR <code>: <why>\n"
 *
 * Teardown is the point of this file. EOF from the client means "no more commands": the
 * running and queued ones finish, are answered, and we close — but TCP cannot tell a
 * half-close (`nc -N`, `shutdown(SHUT_WR)`) from a client that closed and left, so after EOF
 * the remaining work gets `halfCloseTimeoutMs`, then its process group is terminated. A
 * socket that is gone (reset, error, destroyed) terminates the running command at once.
 * Node reports EOF once ('end'); nothing here polls the socket.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode } from '../errors.js';
import { tokensEqual } from '../auth/token.js';
import type { CommandExit } from '../process/command-process.js';
import type { CommandSpec } from '../process/command-spec.js';
import { launchCommand, startCommand, startsHere, type LaunchedProcess, type LaunchResult } from '../process/launch.js';
import { decodeOsBytes } from '../protocol/os-bytes.js';
import type { Containers } from '../process/containment.js';
import type { Spawner } from '../process/spawner.js';
import { ClassicFramer, type MessageEnd } from './classic-framer.js';
import type { ClassicLimits } from './classic-limits.js';
import { ConnectionAudit, type AuditSink } from '../audit/audit-sink.js';
import { authFailEvent, authOkEvent, connectEvent, deniedEvent, disconnectEvent } from '../audit/events.js';
import { commandEndEvent, commandStartEvent, endCommand, type CommandRecord } from '../audit/command-record.js';
import { daemonPrincipal, type Principal } from '../auth/authenticator.js';

export const CLASSIC_OK = Buffer.from('OK\n');
export const CLASSIC_DONE = Buffer.from('Done.\n');

/** The reply line for a refusal: `ERROR SW_ERR_…: message`. */
export function classicErrorLine(code: ErrorCode, message: string): Buffer {
  return Buffer.from(`ERROR ${code}: ${message}\n`);
}

export interface ClassicConnectionContext {
  token: string;
  limits: ClassicLimits;
  log: Logger;
  cwd: string;
  env: Record<string, string>;
  /** Where commands are contained (cgroups + supervisor). */
  containers?: Containers | undefined;
  /** Forks commands (process/spawner.ts); without it this process forks them. */
  spawner?: Spawner | undefined;
  /** The daemon's audit trail: connections, logins and commands are recorded as on the main port. */
  audit?: AuditSink | null | undefined;
  onClosed(connection: ClassicConnection): void;
}

/** A command waiting its turn, or the place of one refused for its length (replies keep the order). */
type QueuedCommand = { kind: 'run'; text: string; bytes: number } | { kind: 'too-long' };

interface RunningCommand {
  /** Null while the spawner starts it. */
  process: LaunchedProcess | null;
  /** A stop that came while it was starting: applied once it runs. */
  stopWanted: 'terminate' | 'kill' | null;
  command: string;
  /** What the audit start row recorded; the end row goes with it. */
  record: CommandRecord;
  chunks: Buffer[];
  bytes: number;
  /** Why the output will not be sent (too large, abandoned after EOF, shutdown). */
  refused: Buffer | null;
  startedAt: number;
  timedOut: boolean;
}

type Phase = 'auth' | 'ready' | 'ending' | 'closed';

export class ClassicConnection {
  readonly remote: string;
  /** Who and where for every audit row of this client. */
  readonly audit: ConnectionAudit;
  #principal: Principal | null = null;
  #authenticated = false;
  #socket: Socket;
  #ctx: ClassicConnectionContext;
  #framer: ClassicFramer;
  #phase: Phase = 'auth';
  #queue: QueuedCommand[] = [];
  #queuedBytes = 0;
  #running: RunningCommand | null = null;
  #inputEnded = false;
  #waitingForDrain = false;
  #idleTimer: NodeJS.Timeout | null = null;
  #authTimer: NodeJS.Timeout | null = null;
  #halfCloseTimer: NodeJS.Timeout | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;

  constructor(socket: Socket, ctx: ClassicConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.audit = new ConnectionAudit(ctx.audit, this.remote);
    this.audit.record(connectEvent());
    this.#framer = new ClassicFramer(ctx.limits.maxTokenLineBytes, {
      onMessage: (message, end) => this.#framerOnMessage(message, end),
      onTooLong: (bytes) => this.#framerOnTooLong(bytes),
    });
    // Replies are whole writes already; Nagle would only hold the last segment back.
    socket.setNoDelay(true);
    // Notices a vanished host (not a closed client: that is EOF) while a command runs.
    socket.setKeepAlive(true, ctx.limits.keepaliveMs);
    socket.on('data', (chunk: Buffer) => this.#socketOnData(chunk));
    socket.on('end', () => this.#socketOnEnd());
    socket.on('error', (err: NodeJS.ErrnoException) => ctx.log.debug({ client: this.remote, err: err.code ?? err.message }, 'classic socket error'));
    socket.on('close', () => this.#socketOnClose());
    this.#authTimer = setTimeout(() => {
      ctx.log.warn({ client: this.remote, timeoutMs: ctx.limits.authTimeoutMs }, 'classic client sent no token in time');
      this.#refuse(ErrorCode.HANDSHAKE_TIMEOUT, `No token within ${ctx.limits.authTimeoutMs / 1000} s; the first line must be the access token.`);
    }, ctx.limits.authTimeoutMs);
  }

  /** The classic port knows one credential, the daemon token: it acts as the daemon's account. */
  get user(): Principal {
    this.#principal ??= { ...daemonPrincipal(), credential: 'daemon token (classic port)' };
    return this.#principal;
  }

  get userName(): string | null {
    return this.#authenticated ? this.user.name : null;
  }

  /** Daemon stopping: run nothing new; the running command may finish (see `kill`). */
  shutdown(): void {
    if (this.#phase === 'closed' || this.#phase === 'ending') return;
    this.#dropQueue();
    this.#inputEnded = true;
    if (this.#phase === 'auth' || !this.#running) {
      this.#refuse(ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down.');
      return;
    }
    this.#socket.pause();
  }

  /** Shutdown grace is over: kill the running command's group now; its reply says so. */
  kill(): void {
    const running = this.#running;
    if (running) {
      running.refused ??= classicErrorLine(ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down; the command was killed.');
      this.#stop(running, 'kill');
    }
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #socketOnData(chunk: Buffer): void {
    if (this.#phase !== 'auth' && this.#phase !== 'ready') return;
    try {
      this.#framer.push(chunk);
      this.#armIdleTimer();
      // Backpressure: stop reading while enough commands wait; `#pump` resumes.
      if (this.#queuedBytes >= this.#ctx.limits.maxQueuedBytes) this.#socket.pause();
      this.#pump();
    } catch (err) {
      // Our bug, not the client's: it ends this client only, never the process, and the
      // client hears a generic SW_ERR_INTERNAL (the details stay in the daemon's log).
      this.#ctx.log.error({ client: this.remote, code: ErrorCode.INTERNAL, err: (err as Error)?.message, stack: (err as Error)?.stack }, 'classic connection closed: internal error (a bug in shellwire)');
      this.#refuse(ErrorCode.INTERNAL, 'Internal error while handling the request (a bug in shellwire); the details are in the daemon log.');
    }
  }

  #socketOnEnd(): void {
    this.#inputEnded = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#phase === 'auth' || this.#phase === 'ready') this.#framer.end();
    if (this.#phase === 'auth') {
      // EOF before a token line: nothing to answer.
      this.#end();
      return;
    }
    this.#pump();
    // Still busy (or a reply still waits for the client to read it): bound how long.
    if (this.#phase === 'ready') this.#halfCloseTimer = setTimeout(() => this.#halfCloseOnTimeout(), this.#ctx.limits.halfCloseTimeoutMs);
  }

  #socketOnClose(): void {
    const wasRunning = this.#running;
    this.#phase = 'closed';
    this.#dropQueue();
    this.#clearTimers();
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    if (wasRunning) {
      this.#ctx.log.info({ client: this.remote, command: logText(wasRunning.command) }, 'classic client left; terminating its command');
      wasRunning.refused ??= Buffer.alloc(0);
      this.#stop(wasRunning, 'terminate');
    }
    this.#ctx.log.debug({ client: this.remote }, 'classic client disconnected');
    this.audit.record(disconnectEvent());
    this.#ctx.onClosed(this);
  }

  #halfCloseOnTimeout(): void {
    this.#halfCloseTimer = null;
    const running = this.#running;
    const limitS = this.#ctx.limits.halfCloseTimeoutMs / 1000;
    this.#ctx.log.info(
      { client: this.remote, command: running ? logText(running.command) : undefined, queued: this.#queue.length, timeoutMs: this.#ctx.limits.halfCloseTimeoutMs },
      'classic client sent EOF and its commands outlived the half-close timeout; terminating',
    );
    this.#dropQueue();
    if (running) {
      // Its close answers (if anyone still listens) and then ends the connection via #pump.
      running.timedOut = true;
      running.refused ??= classicErrorLine(ErrorCode.COMMAND_TIMED_OUT, `Still running ${limitS} s after the client stopped sending; terminated (a client that left cannot be told from one that half-closed).`);
      this.#stop(running, 'terminate');
    } else {
      // Nothing runs: a reply has waited all this time for a client that does not read.
      this.#socket.destroy();
    }
  }

  #framerOnMessage(message: Buffer, end: MessageEnd): void {
    if (this.#phase === 'auth') {
      this.#authenticate(message);
      return;
    }
    if (this.#phase !== 'ready') return;
    if (end === 'newline') this.#framer.lineMode = true;
    // The line's bytes as an OS byte string: a Latin-1 `café` runs as sent, not as U+FFFD.
    this.#queue.push({ kind: 'run', text: decodeOsBytes(message), bytes: message.length });
    this.#queuedBytes += message.length;
  }

  #framerOnTooLong(bytes: number): void {
    if (this.#phase === 'auth') {
      this.#ctx.log.warn({ client: this.remote, bytes }, 'classic client: first line too long for a token');
      this.#refuse(ErrorCode.AUTH_FAILED, 'The first line must be the access token.');
      return;
    }
    if (this.#phase !== 'ready') return;
    const limit = this.#ctx.limits.maxLineBytes;
    this.#ctx.log.warn({ client: this.remote, bytes, limit }, 'classic command refused: too long');
    this.#queue.push({ kind: 'too-long' });
  }

  #authenticate(message: Buffer): void {
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    if (!tokensEqual(message.toString('utf8').trim(), this.#ctx.token)) {
      this.#ctx.log.warn({ client: this.remote, code: ErrorCode.AUTH_FAILED }, 'classic client: bad token');
      this.audit.record(authFailEvent(null, 'classic port: the token is not valid'));
      this.#refuse(ErrorCode.AUTH_FAILED, 'The token is not valid.');
      return;
    }
    this.#phase = 'ready';
    this.#authenticated = true;
    this.#framer.maxLineBytes = this.#ctx.limits.maxLineBytes;
    this.#ctx.log.info({ client: this.remote }, 'classic client authenticated');
    this.audit.loggedIn(this.user);
    this.audit.record(authOkEvent(this.user));
    this.#socket.write(CLASSIC_OK);
  }

  /** Start the next command when nothing runs and the last reply has been taken by the socket. */
  #pump(): void {
    if (this.#phase !== 'ready' || this.#running || this.#waitingForDrain) return;
    const next = this.#queue.shift();
    if (next === undefined) {
      if (this.#inputEnded) this.#end();
      else if (this.#socket.isPaused()) this.#socket.resume();
      return;
    }
    if (next.kind === 'run') this.#queuedBytes -= next.bytes;
    if (this.#queuedBytes < this.#ctx.limits.maxQueuedBytes && !this.#inputEnded && this.#socket.isPaused()) this.#socket.resume();
    if (next.kind === 'too-long') {
      this.#reply(classicErrorLine(ErrorCode.BAD_REQUEST, `Command longer than ${this.#ctx.limits.maxLineBytes} bytes; refused, nothing was run.`));
      return;
    }
    if (next.text.trim() === '') {
      this.#reply(CLASSIC_DONE); // an empty line runs nothing, but every command gets its reply
      return;
    }
    this.#run(next.text);
  }

  #run(command: string): void {
    // Nothing runs that the audit cannot record (--audit-failure refuse): the same rule as the main port.
    const refusal = this.audit.admit();
    if (refusal) {
      this.audit.record(deniedEvent(command, 'exec', refusal.message));
      this.#reply(classicErrorLine(refusal.code, refusal.message));
      return;
    }
    // The same spec and launcher as an exec channel: `sh -c` as the daemon's own account.
    const spec: CommandSpec = { file: '/bin/sh', args: ['-c', command], cwd: this.#ctx.cwd, env: this.#ctx.env, killGraceMs: this.#ctx.limits.killGraceMs, outputGraceMs: this.#ctx.limits.outputGraceMs };
    const record: CommandRecord = { channel: 0, command, cwd: this.#ctx.cwd, startedAt: new Date() };
    const running: RunningCommand = { process: null, stopWanted: null, command, record, chunks: [], bytes: 0, refused: null, startedAt: performance.now(), timedOut: false };
    // Its place is taken while it starts: the next command waits, a stop is kept for it.
    this.#running = running;
    const options = { containers: this.#ctx.containers, spawner: this.#ctx.spawner, onClose: (exit: CommandExit) => this.#processOnClose(exit) };
    if (startsHere(spec, this.#ctx.spawner)) {
      this.#started(running, launchCommand(spec, options));
      return;
    }
    void startCommand(spec, options).then((launched) => this.#started(running, launched));
  }

  /** Stop the command now, or as soon as it runs. */
  #stop(running: RunningCommand, how: 'terminate' | 'kill'): void {
    if (!running.process) {
      if (running.stopWanted !== 'kill') running.stopWanted = how;
      return;
    }
    if (how === 'kill') running.process.kill();
    else running.process.terminate(this.#ctx.limits.killGraceMs);
  }

  #started(running: RunningCommand, launched: LaunchResult): void {
    if (!launched.ok) {
      // Nothing ran (fork failed: EAGAIN, ENOMEM): this command fails alone, the connection goes on.
      this.#running = null;
      if (this.#phase === 'closed' || this.#phase === 'ending' || this.#socket.writableEnded) return;
      this.#reply(classicErrorLine(launched.code, launched.message));
      return;
    }
    const proc = launched.process;
    const record = running.record;
    running.process = proc;
    this.audit.record(commandStartEvent(record));
    // If the daemon dies first, its supervisor keeps this for the next start's end row.
    proc.containment?.note({
      ...record, startedAt: record.startedAt.toISOString(), user: this.user.name, osUser: this.user.account.name, address: this.remote,
    });
    // Classic commands get no input: `cat` must not wait for a stdin that never comes.
    proc.stdin.end();
    const collect = (chunk: Buffer) => {
      if (running.refused) return;
      running.bytes += chunk.length;
      if (running.bytes > this.#ctx.limits.maxOutputBytes) {
        // The reply must be whole, so past the limit there is nothing to send but a refusal.
        running.chunks = [];
        running.refused = classicErrorLine(ErrorCode.MAX_BUFFER, `Output exceeded ${this.#ctx.limits.maxOutputBytes} bytes; the command was stopped. Use \`shellwire exec\` for large output.`);
        proc.terminate(this.#ctx.limits.killGraceMs);
        return;
      }
      running.chunks.push(chunk);
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    if (running.stopWanted) this.#stop(running, running.stopWanted);
  }

  #processOnClose(exit: CommandExit): void {
    const running = this.#running!;
    this.#running = null;
    // What the command left behind gets the hang-up, and survivors are released, as on the
    // main port (process/command-process.ts).
    let reply: Buffer;
    if (running.refused) reply = running.refused;
    else if (exit.spawnError) reply = classicErrorLine(ErrorCode.SPAWN_FAILED, `Cannot run /bin/sh: ${exit.spawnError.message}`);
    else if (running.bytes === 0) reply = CLASSIC_DONE;
    else reply = Buffer.concat(running.chunks, running.bytes);
    // Built once for the log line and the audit row.
    const end = endCommand(running.record, running.startedAt, { exitCode: exit.exitCode, signal: exit.signal, timedOut: running.timedOut, bytesIn: 0, bytesOut: running.bytes });
    this.#ctx.log.info(
      { client: this.remote, command: logText(running.command), exitCode: end.exitCode, signal: end.signal, bytesOut: end.bytesOut, durationMs: end.durationMs },
      'classic command finished',
    );
    this.audit.record(commandEndEvent(end));
    // Our side already ended (refused, or ending): nothing may be written after the end.
    if (this.#phase === 'closed' || this.#phase === 'ending' || this.#socket.writableEnded) return;
    this.#reply(reply);
  }

  /** One reply, one write; the next command waits until the socket has taken it. */
  #reply(reply: Buffer): void {
    if (reply.length > 0 && !this.#socket.write(reply)) {
      this.#waitingForDrain = true;
      this.#socket.once('drain', () => {
        this.#waitingForDrain = false;
        this.#pump();
      });
      return;
    }
    this.#pump();
  }

  /** Answer with an error line and close. */
  #refuse(code: ErrorCode, message: string): void {
    if (this.#phase === 'closed' || this.#phase === 'ending') return;
    this.#socket.write(classicErrorLine(code, message));
    this.#end();
  }

  /** Close our side; a peer that does not close its side within the linger time is cut off. */
  #end(): void {
    if (this.#phase === 'closed' || this.#phase === 'ending') return;
    this.#phase = 'ending';
    this.#dropQueue();
    this.#clearTimers();
    this.#socket.end();
    this.#lingerTimer = setTimeout(() => this.#socket.destroy(), this.#ctx.limits.closeLingerMs);
  }

  #armIdleTimer(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (!this.#framer.waitingForIdle) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.#framer.idle();
      this.#pump();
    }, this.#ctx.limits.commandIdleMs);
  }

  #dropQueue(): void {
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #clearTimers(): void {
    for (const timer of [this.#idleTimer, this.#authTimer, this.#halfCloseTimer]) if (timer) clearTimeout(timer);
    this.#idleTimer = this.#authTimer = this.#halfCloseTimer = null;
  }
}

/** Commands can be 64 KiB; logs get their start. */
function logText(command: string): string {
  return command.length > 200 ? `${command.slice(0, 200)}… (${command.length} chars)` : command;
}
