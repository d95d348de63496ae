/**
 * Server side of an exec channel (docs/protocol.md §6):
 *
 *   client: OPEN{kind:"exec"} → STDIN* → EOF? → (SIGNAL | WINDOW)* → CLOSE
 *   server: OPEN_OK → (STDOUT | STDERR | WINDOW)* → EXIT → CLOSE
 *
 * STDOUT and STDERR share one window granted by the client; STDIN credit is returned as
 * the command's pipe accepts the bytes. EXIT is sent only after every output byte. The
 * Channel (channel/channel-state.ts) owns the windows, the ordering and the close
 * handshake; this is what an exec does with its frames, and the command behind them.
 */
import { statSync } from 'node:fs';
import { decodeResize, decodeSignal, type ExecOpen, type ExecParams, type ExitStatus } from '../protocol/messages.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { CloseReason, type Channel, type ChannelHooks, type DataStream } from '../channel/channel-state.js';
import type { CommandExit, CommandProcess } from '../process/command-process.js';
import { PtyProcess } from '../process/pty-process.js';
import { SpawnerError } from '../process/spawner.js';
import { buildCommandSpec, spawnLine } from '../process/command-spec.js';
import { argumentTooLong } from '../process/arg-limits.js';
import { launchCommand, startCommand, startsHere, type LaunchResult } from '../process/launch.js';
import { argvText, hasCommandRules } from '../auth/policy.js';
import { OutputPump } from './output-pump.js';
import { MAX_SESSION_STATE_BYTES, sessionStatus, type SessionState } from './session-state.js';
import type { ChannelHost, Refusal, ServerChannel } from './channel-host.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';
import { commandEndEvent, commandEndLogFields, commandStartEvent, endCommand, type CommandEnd, type CommandRecord } from '../audit/command-record.js';

export class ExecChannel implements ServerChannel {
  readonly id: number;
  readonly hooks: ChannelHooks;
  #host: ChannelHost;
  /** The OPEN's exec parameters (command or argv, env, cwd, pty, timeoutMs, session). */
  #request: ExecParams;
  #session: SessionState | undefined;
  #channel: Channel | null = null;
  #process: CommandProcess | PtyProcess | null = null;
  /** EXIT was sent: the command's end is told and recorded. */
  #finished = false;
  /** The channel ended before the command did (client CLOSE, connection lost). */
  #abandoned = false;
  #stdout: OutputPump | null = null;
  #stderr: OutputPump | null = null;
  #exit: CommandExit | null = null;
  #timedOut = false;
  #timer: NodeJS.Timeout | null = null;
  #stateReport: Buffer[] = [];
  #stateBytes = 0;
  #stdinBytes = 0;
  #endRecorded = false;
  #startedAt = performance.now();
  #startedWall = new Date();
  #cwd = '';
  #channelError: { code: string; message: string } | null = null;
  /** kill() came while the spawn was in flight: the command dies as soon as it exists. */
  #killWanted = false;

  constructor(id: number, host: ChannelHost, request: ExecOpen) {
    this.id = id;
    this.#host = host;
    this.#request = request.params;
    const session = request.params.session;
    if (session !== undefined) {
      this.#session = host.session(session);
      if (!this.#session) {
        throw new ProtocolError(ErrorCode.UNKNOWN_CHANNEL, `Exec on channel ${id} names session channel ${session}, which is not an open session.`, { channel: id });
      }
    }
    this.hooks = {
      onData: (_stream: DataStream, bytes: Buffer) => this.#stdinOnData(bytes),
      onEof: () => this.#process?.stdin.end(),
      onWindow: () => {
        this.#stdout?.flush();
        this.#stderr?.flush();
      },
      onSignal: (payload) => {
        const signal = this.#decodeOrFail(() => decodeSignal(payload).signal);
        if (signal === null) return;
        this.#host.log.debug({ client: this.#host.remote, channel: this.id, signal }, 'signal from client');
        this.#process?.signalGroup(signal as NodeJS.Signals);
      },
      onResize: (payload) => {
        const size = this.#decodeOrFail(() => decodeResize(payload));
        // Without a terminal there is nothing to resize; harmless.
        if (size && this.#process instanceof PtyProcess) this.#process.resize(size.cols, size.rows);
      },
      onClose: (reason) => this.#channelOnClose(reason),
    };
  }

  get busy(): boolean {
    return this.#channel !== null && !this.#finished && !this.#abandoned;
  }

  /**
   * Start the command; returns an error message for OPEN_FAIL instead when the request is
   * refused. The spawn itself is asynchronous (the spawner helper forks it): OPEN_OK, or
   * OPEN_FAIL, follows once it runs, so nothing of the channel happens before (R1, R3).
   */
  start(channel: Channel): Refusal | null {
    this.#channel = channel;
    const req = this.#request;
    const cwd = req.cwd ?? this.#session?.cwd ?? this.#host.user.home;
    try {
      // As bytes: the cwd may name a directory that is not UTF-8 (OS byte string).
      if (!statSync(encodeOsBytes(cwd)).isDirectory()) return { code: ErrorCode.BAD_REQUEST, message: `Working directory ${cwd} is not a directory.` };
    } catch (err) {
      return { code: ErrorCode.BAD_REQUEST, message: `Working directory ${cwd} is not usable: ${(err as NodeJS.ErrnoException).code ?? String(err)}.` };
    }
    const user = this.#host.user;
    // Plain values in, plain data out: the spec (process/command-spec.ts) is what gets launched.
    const built = buildCommandSpec(
      { command: req.command, argv: req.argv, env: req.env, cwd, pty: req.pty },
      {
        withoutShell: hasCommandRules(user),
        account: { uid: user.account.uid, gid: user.account.gid, shell: user.account.shell, switch: user.switchAccount },
        baseEnv: this.#host.baseEnv,
        session: this.#session,
        killGraceMs: this.#host.limits.killGraceMs,
        outputGraceMs: this.#host.limits.outputGraceMs,
      },
    );
    if (!built.ok) return { code: ErrorCode.BAD_REQUEST, message: built.reason };
    // The same refusal on pipes and on a terminal (where exec would fail only in the child).
    const tooLong = argumentTooLong(spawnLine(built.spec));
    if (tooLong) return { code: ErrorCode.SPAWN_FAILED, message: `Cannot start the command: ${tooLong}. Pass long data on stdin or in a file instead.` };
    const options = { containers: this.#host.containers, spawner: this.#host.spawner, onClose: (exit: CommandExit) => this.#processOnClose(exit) };
    if (startsHere(built.spec, this.#host.spawner)) {
      // Terminals (node-pty, in this process: launch.ts says why), and `serve --spawner off`:
      // forked here and now, answered before the next frame is read.
      const launched = launchCommand(built.spec, options);
      if (!launched.ok) return { code: launched.code, message: launched.message };
      this.#launched(channel, launched, cwd);
      return null;
    }
    startCommand(built.spec, options)
      .then((launched) => this.#launched(channel, launched, cwd))
      .catch((err: unknown) => {
        // A bug of ours after the spawn: stop what runs rather than leave it unreported.
        this.#host.log.error({ client: this.#host.remote, channel: this.id, err: (err as Error).message }, 'starting the command failed');
        this.#process?.kill();
        channel.openFail(ErrorCode.SPAWN_FAILED, `Cannot start the command: ${(err as Error).message}`);
      });
    return null;
  }

  /** The spawn settled: answer the OPEN, or stop a command whose channel ended meanwhile. */
  #launched(channel: Channel, launched: LaunchResult, cwd: string): void {
    if (!launched.ok) {
      // A no-op if the channel ended meanwhile (the client closed, the connection went).
      channel.openFail(launched.code, launched.message);
      return;
    }
    const req = this.#request;
    const proc = launched.process;
    this.#process = proc;
    const conn = this.#host.conn;
    const settled = () => this.#maybeFinish();
    this.#stdout = new OutputPump(proc.stdout, conn, channel, 'stdout', settled);
    this.#stderr = new OutputPump(proc.stderr, conn, channel, 'stderr', settled);
    if (proc.state) {
      proc.state.on('data', (chunk: Buffer) => {
        this.#stateBytes += chunk.length;
        if (this.#stateBytes <= MAX_SESSION_STATE_BYTES) this.#stateReport.push(chunk);
      });
    }
    if (req.timeoutMs !== undefined && !this.#abandoned) {
      this.#timer = setTimeout(() => {
        this.#timedOut = true;
        this.#host.log.info({ client: this.#host.remote, channel: this.id, timeoutMs: req.timeoutMs }, 'command timed out');
        proc.terminate(this.#host.limits.killGraceMs);
      }, req.timeoutMs);
    }
    this.#cwd = cwd;
    this.#startedWall = new Date();
    channel.openOk({
      window: this.#host.limits.stdinWindow,
      maxPacket: this.#host.limits.maxPayload,
      ...(proc.pid !== undefined ? { pid: proc.pid } : {}),
      cwd,
    });
    if (this.#abandoned) {
      // The channel ended while the spawn was in flight (close, cancel, connection lost,
      // daemon stop): nobody takes its output; it is stopped as a close would have, and
      // still recorded (it ran, however briefly).
      this.#stdout.stop();
      this.#stderr.stop();
      if (this.#killWanted) proc.kill();
      else proc.terminate(this.#host.limits.killGraceMs);
    }
    // After OPEN_OK is on its way: the audit write never delays the client.
    this.#host.audit.record(commandStartEvent({ ...this.#commandRecord(), env: Object.keys(req.env ?? {}) }));
    // If the daemon dies before the end row, the supervisor keeps this for the next start.
    proc.containment?.note({
      channel: this.id, command: this.#commandLabel(), ...(req.argv ? { argv: req.argv } : {}), cwd, startedAt: this.#startedWall.toISOString(),
      user: this.#host.user.name, osUser: this.#host.user.account.name, address: this.#host.remote,
      // A gateway's channel: its end row names the gateway and the operator as the live rows do.
      ...(this.#host.onBehalf ? { via: this.#host.onBehalf.via, operator: this.#host.onBehalf.operator } : {}),
    });
  }

  /**
   * A malformed SIGNAL or RESIZE ends this channel, not the connection: the command is
   * stopped and its EXIT carries the error, so the client's other commands run on.
   */
  #decodeOrFail<T>(decode: () => T): T | null {
    try {
      return decode();
    } catch (err) {
      if (!(err instanceof ProtocolError) || err.code !== ErrorCode.BAD_MESSAGE) throw err;
      this.#host.log.warn({ client: this.#host.remote, channel: this.id, err: err.message }, 'malformed channel message; stopping the command');
      this.#channelError ??= { code: err.code, message: `${err.message} The command was stopped.` };
      this.#process?.terminate(this.#host.limits.killGraceMs);
      return null;
    }
  }

  #stdinOnData(payload: Buffer): void {
    const proc = this.#process;
    // Credit returns when the pipe took the bytes, so at most one window waits here; the
    // channel sends no WINDOW after its CLOSE (the callback can come after it).
    const returnCredit = () => this.#channel!.consumed(payload.length);
    this.#stdinBytes += payload.length;
    if (!proc || proc.stdin.destroyed || proc.stdin.writableEnded) return returnCredit();
    proc.stdin.write(payload, returnCredit);
  }

  #channelOnClose(reason: CloseReason): void {
    this.#clearTimer();
    if (this.#finished || reason === CloseReason.OPEN_FAILED) return;
    this.#abandoned = true;
    // Settle everything: nobody will take more output, so the pumps discard what is left
    // (a paused pipe would hold its fd and the command's exit forever), and what still runs
    // is ended. A command that already exited while its output waited for credit gets its
    // end row now, because its exit will not be reported again.
    this.#stdout?.stop();
    this.#stderr?.stop();
    this.#process?.terminate(this.#host.limits.killGraceMs);
    if (reason === CloseReason.NORMAL) {
      // The client gave up on the command (closed, canceled, went away): end it.
      this.#host.log.debug({ client: this.#host.remote, channel: this.id }, 'client closed a running channel');
      // The session's `$?`: the real status if it had exited, else 130 as for Ctrl-C.
      if (this.#session) this.#session.status = sessionStatus(this.#exit ?? null);
    }
    if (this.#exit) this.#auditEnd(this.#commandEnd(this.#exit));
  }

  kill(): void {
    this.#killWanted = true;
    this.#process?.kill();
  }

  #processOnClose(exit: CommandExit): void {
    this.#exit = exit;
    this.#clearTimer();
    if (this.#abandoned) {
      // Closed by the client or a lost connection before it finished: still on the record.
      this.#auditEnd(this.#commandEnd(exit));
      return;
    }
    this.#maybeFinish();
  }

  /** The command-end audit row, exactly once whichever way the channel ends. */
  #auditEnd(end: CommandEnd): void {
    if (this.#endRecorded) return;
    this.#endRecorded = true;
    // Recorded here: the supervisor need not keep it for a next start.
    this.#process?.containment?.note(null);
    this.#host.audit.record(commandEndEvent(end));
  }

  /** What started, for the audit rows (the start row adds the client's variable names). */
  #commandRecord(): CommandRecord {
    const argv = this.#request.argv;
    return { channel: this.id, command: this.#commandLabel(), ...(argv ? { argv } : {}), cwd: this.#cwd, startedAt: this.#startedWall };
  }

  /** The command's end, built once for the log line and the audit row. */
  #commandEnd(exit: { exitCode: number | null; signal: string | null }): CommandEnd {
    return endCommand(this.#commandRecord(), this.#startedAt, {
      exitCode: exit.exitCode,
      signal: exit.signal,
      timedOut: this.#timedOut,
      bytesIn: this.#stdinBytes,
      bytesOut: (this.#stdout?.bytesSent ?? 0) + (this.#stderr?.bytesSent ?? 0),
    });
  }

  #maybeFinish(): void {
    if (this.#finished || this.#abandoned || !this.#exit) return;
    if (!this.#stdout?.settled || !this.#stderr?.settled) return;
    const exit = this.#exit;
    this.#finished = true;
    // What the command left behind has had (or is about to get) the hang-up, and what
    // survives it is released (process/command-process.ts): nothing to stop here.
    const status: ExitStatus = { exitCode: exit.exitCode, signal: exit.signal, timedOut: this.#timedOut };
    if (exit.spawnError) {
      const notFound = exit.spawnError.code === 'ENOENT';
      status.exitCode = notFound ? 127 : 126;
      // Only in EXIT.error: a STDERR frame here could exceed the client's window.
      status.error = { code: ErrorCode.SPAWN_FAILED, message: `Cannot run ${this.#request.argv?.[0] ?? '/bin/sh'}: ${exit.spawnError.message}` };
      // The spawner helper died while starting it: not the program's fault, say so.
      if (exit.spawnError instanceof SpawnerError) status.error = { code: exit.spawnError.code, message: exit.spawnError.message };
    }
    // The helper died while it ran: killed (its status is SIGKILL), and why.
    if (exit.spawnerError) status.error = { code: exit.spawnerError.code, message: exit.spawnerError.message };
    if (this.#channelError) status.error = this.#channelError;
    if (this.#session) this.#session.status = sessionStatus(status);
    if (this.#session && this.#session.update(Buffer.concat(this.#stateReport))) status.cwd = this.#session.cwd;
    else if (this.#session) status.cwd = this.#session.cwd;
    const end = this.#commandEnd(status);
    this.#host.log.info(
      { client: this.#host.remote, channel: this.id, command: this.#commandLabel(), ...(this.#request.argv ? { argv: this.#request.argv } : {}), ...commandEndLogFields(end) },
      'command finished',
    );
    this.#channel!.exit({ ...status });
    // Recorded after the client has its answer, so the audit write is off the round trip.
    this.#auditEnd(end);
  }

  #commandLabel(): string {
    const req = this.#request;
    // Shell-quoted: `echo 'a b'` is not `echo a b` (the exact argv goes in detail.argv too).
    return req.command ?? (req.argv ? argvText(req.argv) : req.pty ? '(login shell)' : '');
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
