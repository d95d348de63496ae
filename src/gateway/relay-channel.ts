/**
 * A relayed channel: the operator's exec, session or file channel at the gateway, and the
 * same kind opened on the host over the pooled connection (host-pool.ts), with the operator's
 * parameters and `onBehalfOf: { user: <as>, operator }`. Frames go both ways as they are:
 * stdin DATA, EOF, SIGNAL, RESIZE one way; OPEN_OK, STDOUT/STDERR DATA, EXIT the other; CLOSE
 * both. The host's OPEN_OK fields and OPEN_FAIL (code, message, errno) reach the operator unchanged.
 *
 * Flow control end to end: the gateway grants the operator the host's stdin window (at most
 * RELAY_MAX_WINDOW) and returns the operator's credit only as the host's window and the
 * pooled connection's socket take the bytes; it opens the host channel with the operator's
 * output window, capped at RELAY_MAX_WINDOW, and returns the host's credit only as bytes go
 * out to the operator's socket — within her window, and not while that socket is congested
 * (as the daemon's output pumps do, server/output-pump.ts). So each direction holds at most
 * RELAY_MAX_WINDOW here, whatever window the operator asks and however slowly she reads
 * (docs/gateway.md "Limits").
 *
 * One operator may hold at most `maxChannelsPerOperatorHost` channels to one host at once,
 * across her connections: the pooled connection is shared, and one operator must not fill it.
 */
import type { Logger } from 'pino';
import { ChannelState, CloseReason, type Channel, type ChannelHooks, type CloseDetail, type DataStream } from '../channel/channel-state.js';
import { decodeResize, decodeSignal, parseJsonObject, type ExitMessage, type OpenOkMessage, type OpenRequest } from '../protocol/messages.js';
import { decodePutEof } from '../protocol/file-messages.js';
import { FrameType } from '../protocol/frame.js';
import { ErrorCode, ProtocolError, type ShellwireError } from '../errors.js';
import { rawChannel, transportOf, type Connection } from '../client/connection.js';
import type { ChannelHost, Refusal, ServerChannel } from '../server/channel-host.js';
import type { Inventory } from '../fleet/inventory.js';
import type { AuditEvent } from '../audit/audit-event.js';
import { commandText } from '../auth/policy.js';
import { checkHost } from './gateway-policy.js';
import { gatewayPolicyOf } from './gateway-config.js';
import type { HostPool } from './host-pool.js';
import { DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST, RELAY_MAX_WINDOW, hostFullMessage, hostLostMessage, hostUnreachableMessage, operatorCapMessage } from './relay-messages.js';
import type { ExecOutputRecording, RecordingResult, RecordingStore, TerminalRecording } from '../audit/recording.js';

/** What every relay of one gateway shares. */
export interface RelayContext {
  pool: HostPool;
  /** The inventory in force (re-read on reload). */
  inventory(): Inventory;
  log: Logger;
  /**
   * Terminal sessions (and, for operators with `record.output`, exec output) are recorded
   * here when given (src/audit/recording.ts).
   */
  recordings?: RecordingStore | undefined;
  /** Recordings being finished (their end rows not yet written): the gateway waits for them on close. */
  finishing?: Set<Promise<void>>;
  /**
   * Send `onBehalfOf` to the hosts (default true). False only for hosts that predate onward
   * identity, which then run everything as the gateway's own user entry.
   */
  onBehalfOf?: boolean;
  /** One operator's channels to one host at once, across her connections (default DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST). */
  maxChannelsPerOperatorHost?: number;
  /** Channels open by operator and host (`operator\0host`), shared by every relay of the gateway. */
  openChannels?: Map<string, number>;
}

/** Bytes handed to a socket per write before its congestion is looked at again. */
const RELAY_WRITE_SLICE = 256 * 1024;

/** How often a relay asks the pool again when the connection it got filled up meanwhile. */
const POOL_RETRIES = 3;

/** A relayed session channel, for exec channels opened with `session: <id>` on the same connection. */
interface RelayedSession {
  host: string;
  remote: Channel;
}

/** Per operator connection: its relayed sessions by the operator's channel id. */
const sessionsOf = new WeakMap<ChannelHost, Map<number, RelayedSession>>();

export class RelayChannel implements ServerChannel {
  readonly id: number;
  readonly hooks: ChannelHooks;
  #ctx: RelayContext;
  #host: ChannelHost;
  #request: OpenRequest;
  /** The operator's channel (we accept it). */
  #channel: Channel | null = null;
  /** The host's channel (we open it). */
  #remote: Channel | null = null;
  #hostName = '';
  #as = '';
  /** Output from the host waiting for the operator's credit (at most one host window). */
  #toOperator: { stream: DataStream; bytes: Buffer }[] = [];
  /** Stdin from the operator waiting for the host's credit (at most one operator window). */
  #toHost: Buffer[] = [];
  /** The operator's EOF, forwarded once the stdin before it went. */
  #eof: Buffer | null = null;
  /** The host's EXIT, forwarded once the output before it went. */
  #exit: Record<string, unknown> | null = null;
  #exited = false;
  /** The operator's channel ended before the host answered: nothing more is opened or sent. */
  #abandoned = false;
  #bytesIn = 0;
  #bytesOut = 0;
  #startedWall = new Date();
  #startedMs = performance.now();
  #recording: TerminalRecording | null = null;
  #execOutput: ExecOutputRecording | null = null;
  /** Why a recording the policy asked for could not start (the end row says so). */
  #recordingError: string | null = null;
  #recordInput = false;
  #endRecorded = false;
  /** The key this channel counts under in `openChannels`, while it counts. */
  #counted: string | null = null;
  /** The pooled connection the host channel is on. */
  #hostConn: Connection | null = null;
  #waitingOperatorDrain = false;
  #waitingHostDrain = false;

  constructor(id: number, host: ChannelHost, request: OpenRequest, ctx: RelayContext) {
    this.id = id;
    this.#host = host;
    this.#ctx = ctx;
    this.#request = request;
    const onClose = (reason: CloseReason, detail: CloseDetail) => this.#operatorOnClose(reason, detail);
    // The frames each kind takes at a daemon, and no others: a frame the host's kind would
    // refuse must fail this operator's connection here, not the pooled one every operator shares.
    if (request.kind === 'session') this.hooks = { onClose };
    else if (request.kind === 'file') {
      const put = (request.params as { op?: unknown }).op === 'put';
      this.hooks = {
        ...(put ? { onData: (_s: DataStream, bytes: Buffer) => this.#operatorOnData(bytes), onEof: (payload: Buffer) => this.#operatorOnEof(payload) } : {}),
        onWindow: () => this.#flushToOperator(),
        onResize: () => {},
        onClose,
      };
    } else {
      this.hooks = {
        onData: (_s, bytes) => this.#operatorOnData(bytes),
        onEof: (payload) => this.#operatorOnEof(payload),
        onWindow: () => this.#flushToOperator(),
        onSignal: (payload) => {
          const { signal } = decodeSignal(payload);
          this.#remote?.signal(signal);
        },
        onResize: (payload) => {
          const size = decodeResize(payload);
          this.#remote?.resize(size.cols, size.rows);
          this.#recording?.resize(size.cols, size.rows);
        },
        onClose,
      };
    }
  }

  get busy(): boolean {
    return this.#channel !== null && !this.#channel.ended && this.#request.kind !== 'session';
  }

  start(channel: Channel): Refusal | null {
    this.#channel = channel;
    const user = this.#host.user;
    const name = this.#request.host;
    if (name === undefined) return { code: ErrorCode.BAD_REQUEST, message: 'This is a shellwire gateway: name the host (--via needs a target host).' };
    const decision = checkHost(user, name, this.#ctx.inventory());
    if (!decision.allowed) {
      this.#host.log.warn({ client: this.#host.remote, user: user.name, host: name, kind: this.#request.kind }, 'gateway: host not permitted');
      this.#record({ kind: 'denied', command: commandText(this.#request), detail: { channelKind: this.#request.kind, reason: decision.reason, host: name, outcome: { code: ErrorCode.DENIED, message: decision.reason } } });
      return { code: ErrorCode.DENIED, message: `Denied: ${decision.reason}.` };
    }
    this.#hostName = decision.host.name;
    this.#as = decision.as;
    let session: RelayedSession | undefined;
    const params = this.#request.params as { session?: number };
    if (this.#request.kind === 'exec' && params.session !== undefined) {
      session = sessionsOf.get(this.#host)?.get(params.session);
      if (!session) throw new ProtocolError(ErrorCode.UNKNOWN_CHANNEL, `Exec on channel ${this.id} names session channel ${params.session}, which is not an open session.`, { channel: this.id });
      if (session.host !== this.#hostName) return { code: ErrorCode.BAD_REQUEST, message: `Session channel ${params.session} is on host ${session.host}, not ${this.#hostName}.` };
    }
    const cap = this.#ctx.maxChannelsPerOperatorHost ?? DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST;
    const open = this.#ctx.openChannels ?? (this.#ctx.openChannels = new Map());
    const key = `${user.name}\0${this.#hostName}`;
    const held = open.get(key) ?? 0;
    if (held >= cap) {
      const message = operatorCapMessage(user.name, this.#hostName, cap);
      this.#host.log.warn({ client: this.#host.remote, user: user.name, host: name, cap }, 'gateway: operator at her channel cap for the host');
      this.#record({ kind: 'denied', command: commandText(this.#request), detail: { channelKind: this.#request.kind, reason: message, ...this.#where(), outcome: { code: ErrorCode.TOO_MANY_CHANNELS, message } } });
      return { code: ErrorCode.TOO_MANY_CHANNELS, message };
    }
    open.set(key, held + 1);
    this.#counted = key;
    this.#dial(decision.host, session, POOL_RETRIES);
    return null;
  }

  /** A pooled connection to the host, then the host channel on it. */
  #dial(host: Parameters<HostPool['get']>[0], session: RelayedSession | undefined, retries: number): void {
    const user = this.#host.user;
    this.#ctx.pool.get(host).then(
      (conn) => this.#open(conn, session, () => (retries > 0 ? this.#dial(host, session, retries - 1) : this.#refused(ErrorCode.TOO_MANY_CHANNELS, hostFullMessage(this.#hostName)))),
      (err: ShellwireError | Error) => {
        // The details (address, port, the dial's own words) are for the gateway's log only.
        this.#host.log.warn({ client: this.#host.remote, user: user.name, host: host.name, address: host.address, port: host.port, err: err.message }, 'gateway: cannot reach host');
        const code = (err as ShellwireError).code ?? ErrorCode.CONNECT_FAILED;
        if (code === ErrorCode.TOO_MANY_CHANNELS) return this.#refused(code, hostFullMessage(this.#hostName));
        this.#refused(ErrorCode.CONNECT_FAILED, hostUnreachableMessage(this.#hostName, code));
      },
    );
  }

  /** This channel no longer counts against the operator's cap for the host. */
  #uncount(): void {
    const key = this.#counted;
    if (key === null) return;
    this.#counted = null;
    const open = this.#ctx.openChannels!;
    const left = (open.get(key) ?? 1) - 1;
    if (left > 0) open.set(key, left);
    else open.delete(key);
  }

  kill(): void {
    this.#remote?.close();
  }

  /** The pooled connection is up: open the same kind on the host (`full`: it filled up meanwhile, ask the pool again). */
  #open(conn: Connection, session: RelayedSession | undefined, full: () => void): void {
    const operator = this.#channel!;
    if (this.#abandoned || operator.ended) return;
    const { host: _host, onBehalfOf: _behalf, ...header } = this.#request;
    const params = { ...(this.#request.params as Record<string, unknown>) };
    // A user with command rules had its argv resolved at the gateway (auth/policy.ts): the
    // host resolves its own, so the operator's command goes on as it was asked.
    if (params.command !== undefined && params.argv !== undefined) delete params.argv;
    if (session) {
      if (session.remote.ended || session.remote.state !== ChannelState.OPEN) return this.#refused(ErrorCode.CONNECTION_CLOSED, `The session on host ${this.#hostName} has ended; open a new one.`);
      params.session = session.remote.id;
    }
    const open = {
      ...header,
      // Never more in flight from the host than the gateway will hold for this channel.
      window: Math.min(header.window, RELAY_MAX_WINDOW),
      maxPacket: Math.min(header.maxPacket, conn.server.maxPayload),
      params,
      ...(this.#ctx.onBehalfOf === false ? {} : { onBehalfOf: { user: this.#as, operator: this.#host.user.name } }),
    } as OpenRequest;
    this.#hostConn = conn;
    try {
      this.#remote = conn[rawChannel](open, {
        onOpen: (payload) => this.#remoteOnOpen(payload),
        onData: (stream, bytes) => this.#remoteOnData(stream, bytes),
        onWindow: () => this.#flushToHost(),
        onExit: (payload) => this.#remoteOnExit(payload),
        onClose: (reason, detail) => this.#remoteOnClose(reason, detail),
      });
    } catch (err) {
      // The pooled connection died or filled up between get() and now.
      const code = (err as ShellwireError).code ?? ErrorCode.CONNECT_FAILED;
      this.#host.log.warn({ user: this.#host.user.name, host: this.#hostName, err: (err as Error).message }, 'gateway: cannot open a channel on the host');
      if (code === ErrorCode.TOO_MANY_CHANNELS) return full();
      this.#refused(code === ErrorCode.CONNECTION_CLOSED || code === ErrorCode.KEEPALIVE_TIMEOUT ? code : ErrorCode.CONNECT_FAILED, hostUnreachableMessage(this.#hostName, code));
    }
  }

  #remoteOnOpen(payload: Buffer): void {
    const ok = parseJsonObject(FrameType.OPEN_OK, payload) as Record<string, unknown>;
    const operator = this.#channel!;
    if (operator.ended || this.#abandoned) return this.#remote!.close();
    // The host's fields unchanged (pid, cwd; a file channel's path, offset, entry…), but no
    // more stdin credit than the gateway will hold for this channel.
    const window = typeof ok.window === 'number' ? Math.min(ok.window, RELAY_MAX_WINDOW) : ok.window;
    operator.openOk({ ...ok, window } as unknown as OpenOkMessage);
    if (this.#request.kind === 'session') {
      let sessions = sessionsOf.get(this.#host);
      if (!sessions) sessionsOf.set(this.#host, (sessions = new Map()));
      sessions.set(this.id, { host: this.#hostName, remote: this.#remote! });
    }
    this.#startRecording();
    this.#startedWall = new Date();
    if (this.#request.kind === 'exec') {
      this.#record({ kind: 'command-start', command: commandText(this.#request), startedAt: this.#startedWall, detail: { channel: this.id, ...this.#where(), ...(typeof ok.pid === 'number' ? { pid: ok.pid } : {}) } });
    }
  }

  #remoteOnData(stream: DataStream, bytes: Buffer): void {
    this.#bytesOut += bytes.length;
    this.#recording?.output(bytes);
    if (this.#execOutput) {
      if (stream === 'stderr') this.#execOutput.stderr(bytes);
      else this.#execOutput.stdout(bytes);
    }
    this.#toOperator.push({ stream, bytes });
    this.#flushToOperator();
  }

  #remoteOnExit(payload: Buffer): void {
    this.#exit = parseJsonObject(FrameType.EXIT, payload) as Record<string, unknown>;
    this.#flushToOperator();
  }

  #remoteOnClose(reason: CloseReason, detail: CloseDetail): void {
    const operator = this.#channel!;
    sessionsOf.get(this.#host)?.delete(this.id);
    if (reason === CloseReason.OPEN_FAILED) {
      const fail = detail.openFail!;
      const { code: _c, message: _m, ...extra } = parseJsonObject(FrameType.OPEN_FAIL, fail.payload) as Record<string, unknown>;
      return this.#refused(fail.code, fail.message, extra);
    }
    if (this.#exit || this.#exited) return; // the EXIT goes (or went) out with its output
    if (reason === CloseReason.NORMAL) {
      operator.close();
      return;
    }
    // The pooled connection was lost (host gone, gateway's link broken): say so, naming the
    // host by name only (the error's own words name its address: for the gateway's log).
    const code = (detail.error as ShellwireError | null | undefined)?.code ?? ErrorCode.CONNECTION_CLOSED;
    this.#host.log.warn({ user: this.#host.user.name, host: this.#hostName, err: detail.error?.message }, 'gateway: connection to host lost under a channel');
    const message = hostLostMessage(this.#hostName, code);
    if (operator.state === ChannelState.OPENING) return this.#refused(ErrorCode.CONNECTION_CLOSED, message);
    this.#toOperator = [];
    this.#exit = { exitCode: null, signal: null, timedOut: false, error: { code: ErrorCode.CONNECTION_CLOSED, message } };
    this.#flushToOperator();
  }

  #operatorOnData(bytes: Buffer): void {
    this.#bytesIn += bytes.length;
    if (this.#recordInput) this.#recording?.input(bytes);
    this.#toHost.push(bytes);
    this.#flushToHost();
  }

  #operatorOnEof(payload: Buffer): void {
    this.#eof = payload;
    this.#flushToHost();
  }

  #operatorOnClose(reason: CloseReason, detail: CloseDetail): void {
    sessionsOf.get(this.#host)?.delete(this.id);
    this.#uncount();
    this.#toOperator = [];
    this.#toHost = [];
    if (reason === CloseReason.OPEN_FAILED) return;
    this.#abandoned = true;
    // The operator gave up or went away: the host stops the command (no orphan).
    this.#remote?.close();
    if (!this.#exited) this.#end(this.#exit ?? { exitCode: null, signal: null, outcome: reason === CloseReason.NORMAL ? 'closed by the operator' : `operator's connection lost${detail.error ? `: ${detail.error.message}` : ''}` });
  }

  /**
   * Operator's stdin to the host, as far as the host's credit goes and while the pooled
   * connection's socket is not congested; the operator's credit follows.
   */
  #flushToHost(): void {
    const remote = this.#remote;
    const operator = this.#channel;
    if (!remote || !operator) return;
    const socket = this.#hostConn![transportOf]();
    while (this.#toHost.length > 0) {
      if (socket.congested) return this.#waitForHostDrain();
      const head = this.#toHost[0]!;
      const slice = head.length > RELAY_WRITE_SLICE ? head.subarray(0, RELAY_WRITE_SLICE) : head;
      const sent = remote.write('stdin', slice);
      if (sent > 0) operator.consumed(sent);
      if (sent < head.length) {
        this.#toHost[0] = head.subarray(sent);
        if (sent < slice.length) return; // onWindow goes on
        continue;
      }
      this.#toHost.shift();
    }
    if (this.#eof !== null) {
      const payload = this.#eof;
      this.#eof = null;
      remote.eof(payload.length === 0 ? undefined : decodePutEof(payload));
    }
  }

  /**
   * Host output to the operator, as far as the operator's credit goes and while her socket is
   * not congested; the host's credit follows, so the host sends no faster than she reads.
   */
  #flushToOperator(): void {
    const operator = this.#channel;
    if (!operator || operator.ended) return;
    while (this.#toOperator.length > 0) {
      if (this.#host.conn.congested) return this.#waitForOperatorDrain();
      const head = this.#toOperator[0]!;
      const slice = head.bytes.length > RELAY_WRITE_SLICE ? head.bytes.subarray(0, RELAY_WRITE_SLICE) : head.bytes;
      const sent = operator.write(head.stream, slice);
      if (sent > 0) this.#remote?.consumed(sent);
      if (sent < head.bytes.length) {
        head.bytes = head.bytes.subarray(sent);
        if (sent < slice.length) return; // onWindow goes on
        continue;
      }
      this.#toOperator.shift();
    }
    if (this.#exit && !this.#exited) {
      this.#exited = true;
      const exit = this.#exit;
      operator.exit(exit as unknown as ExitMessage);
      this.#end(exit);
    }
  }

  #waitForOperatorDrain(): void {
    if (this.#waitingOperatorDrain) return;
    this.#waitingOperatorDrain = true;
    this.#host.conn.whenDrained(() => {
      this.#waitingOperatorDrain = false;
      this.#flushToOperator();
    });
  }

  #waitForHostDrain(): void {
    if (this.#waitingHostDrain || !this.#hostConn) return;
    this.#waitingHostDrain = true;
    this.#hostConn[transportOf]().whenDrained(() => {
      this.#waitingHostDrain = false;
      this.#flushToHost();
    });
  }

  /** OPEN_FAIL to the operator (host refused, host unreachable), with its audit row. */
  #refused(code: string, message: string, extra: Record<string, unknown> = {}): void {
    const operator = this.#channel!;
    if (operator.state !== ChannelState.OPENING) {
      operator.close();
      return;
    }
    operator.openFail(code, message, extra);
    // Only a policy refusal (the host's SW_ERR_DENIED) is `denied`; the rest is operational.
    this.#record({ kind: code === ErrorCode.DENIED ? 'denied' : 'failed', command: commandText(this.#request), detail: { channelKind: this.#request.kind, reason: message, ...this.#where(), outcome: { code, message } } });
  }

  /**
   * Recording, when the gateway has a store: a terminal (exec with a pty) always, its input
   * only with the operator's `record.input`; an exec command's output (exact bytes) only with
   * `record.output` (its command, times, exit and byte counts are in the audit row anyway).
   */
  #startRecording(): void {
    const store = this.#ctx.recordings;
    const params = this.#request.params as { pty?: { term: string; cols: number; rows: number } };
    if (!store || this.#request.kind !== 'exec') return;
    const policy = gatewayPolicyOf(this.#host.user);
    const command = commandText(this.#request);
    const who = { operator: this.#host.user.name, host: this.#hostName, as: this.#as };
    try {
      if (params.pty) {
        this.#recordInput = policy.record.input;
        this.#recording = store.startTerminal({
          ...who, command, cols: params.pty.cols, rows: params.pty.rows, term: params.pty.term, recordInput: policy.record.input,
        });
      } else if (policy.record.output) {
        this.#execOutput = store.startExecOutput({ ...who, command: command ?? '' });
      }
    } catch (err) {
      // The command goes on unrecorded; the end row says so.
      this.#recordingError = `the recording could not start: ${(err as Error).message}`;
      this.#host.log.error({ user: this.#host.user.name, host: this.#hostName, err: (err as Error).message }, 'gateway: cannot start the recording');
    }
  }

  /** The end row: exec and file channels (session channels run nothing themselves). */
  #end(exit: Record<string, unknown>): void {
    if (this.#endRecorded || this.#request.kind === 'session') return;
    this.#endRecorded = true;
    const recording = this.#recording ?? this.#execOutput;
    this.#recording = null;
    this.#execOutput = null;
    const outcome = exit.error ?? exit.outcome ?? { exitCode: exit.exitCode ?? null, signal: exit.signal ?? null };
    // `recording: { id, sha256 }` is what `audit verify` recomputes; `error` when it was cut short.
    const write = (rec: RecordingResult | null, recordingError: string | null = this.#recordingError) => {
      const detail = {
        channel: this.id, ...this.#where(), outcome, timedOut: exit.timedOut === true, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut,
        ...(rec ? { recording: { id: rec.id, sha256: rec.sha256, ...(rec.error !== undefined ? { error: rec.error } : {}) } } : {}),
        ...(recordingError ? { recordingError } : {}),
      };
      if (this.#request.kind === 'file') {
        const params = this.#request.params as Record<string, unknown>;
        this.#record({ kind: 'file', detail: { op: params.op, path: params.path, ...detail } });
        return;
      }
      this.#record({
        kind: 'command-end', command: commandText(this.#request), startedAt: this.#startedWall, endedAt: new Date(),
        exitCode: typeof exit.exitCode === 'number' ? exit.exitCode : null, signal: typeof exit.signal === 'string' ? exit.signal : null,
        bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, durationMs: Math.round(performance.now() - this.#startedMs), detail,
      });
    };
    if (!recording) return write(null);
    const finishing = this.#ctx.finishing;
    const done = recording.end().then(
      (result) => write(result),
      (err: Error) => write(null, `the recording ${recording.id} could not be finished: ${err.message}`),
    );
    finishing?.add(done);
    void done.finally(() => finishing?.delete(done));
  }

  #where(): Record<string, unknown> {
    return { host: this.#hostName || this.#request.host, as: this.#as || gatewayPolicyOf(this.#host.user).as };
  }

  /** Gateway audit rows: `user` is the operator (the connection fills it in), `osUser` the host user. */
  #record(event: AuditEvent): void {
    this.#host.audit.record({ osUser: this.#as || null, ...event });
  }
}
