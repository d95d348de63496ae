/**
 * An authenticated connection to one daemon. Many commands run on it at once, each on
 * its own channel with its own flow-control window.
 */
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { FrameConnection, type FrameConnectionHandlers } from '../transport/frame-connection.js';
import type { ExecOpen, ExecParams, Welcome } from '../protocol/messages.js';
import { ConnectionError, ErrorCode, RequestError, ShellwireError, remoteErrorCode, type CommandResult } from '../errors.js';
import { relayHostName } from './via.js';
import { gatewayRequest, type GatewayRequestOptions } from './gateway-request.js';
import { DEFAULT_MAX_PACKET, DEFAULT_WINDOW } from '../channel/window.js';
import { ChannelTable } from '../channel/channel-table.js';
import { ChannelRole, type Channel, type ChannelHooks, type OpenMessage } from '../channel/channel-state.js';
import { asyncDispose } from '../dispose.js';
import { RemoteProcess } from './remote-process.js';
import { canceledBeforeStart, runBuffered, type ExecOptions } from './run-command.js';
import { checkAbortSignal, checkOptionsObject } from './option-checks.js';
import { ShellSession, type SessionHost } from './shell-session.js';
import { checkCommand, checkCwd, checkEnv, checkPty, checkTimeout, timeoutOption, type OsText, type SpawnOptions } from './spawn-options.js';
import type { ChannelOpener } from './channel-host.js';
import type { GetOptions, PutOptions, RemoteEntry, TransferResult, TreeOptions, TreeResult } from './files/common.js';
import { putFile, putTree } from './files/put.js';
import { putSourceToHosts, putToHosts, type PutHostsOptions, type PutHostsResult, type PutSource } from './files/put-hosts.js';
import { getFile, getTree } from './files/get.js';
import { listRemote, mkdirRemote, statRemote } from './files/meta.js';

/**
 * The client's ping interval unless `keepaliveMs` says otherwise: a daemon silent for
 * `KEEPALIVE_MISSES` (3) intervals, 15-20 s, is declared lost (SW_ERR_KEEPALIVE_TIMEOUT) and
 * every command on the connection rejects. Not the daemon's interval (15 s, so 45-60 s):
 * a frozen host must not hold an idle client for a minute.
 */
export const DEFAULT_CLIENT_KEEPALIVE_MS = 5_000;
/** How long `close()` waits for the daemon to end the connection before destroying it. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;

export interface ConnectionOptions {
  /** Output credit granted per command (bytes). Default 2 MiB. */
  window?: number;
  /** Largest data frame we ask for. Default 64 KiB. */
  maxPacket?: number;
  /** Ping interval (0: none); default 5 s (`DEFAULT_CLIENT_KEEPALIVE_MS`), lost after 3 silent intervals. */
  keepaliveMs?: number;
}

/**
 * Command text, argv words, env values and cwd are OS byte strings: a Buffer gives the exact
 * bytes (`caf\xe9` in Latin-1 is not UTF-8); a string is UTF-8, or the output of
 * `decodeOsBytes` (docs/protocol.md §4.11).
 */
export type { OsText, SpawnOptions } from './spawn-options.js';
export type { ExecOptions } from './run-command.js';


/**
 * @internal The connection's transport, for tests that simulate faults (drop the socket,
 * read the keepalive interval): `conn[transportOf]()`. Not part of the public API.
 */
export const transportOf = Symbol('shellwire.Connection.transport');

/**
 * @internal A bare channel on this connection, its frames handled by the caller's hooks
 * (the gateway's relays, src/gateway/relay-channel.ts): `conn[rawChannel](open, hooks)`.
 * Throws as the channel classes' opens do. Not part of the public API.
 */
export const rawChannel = Symbol('shellwire.Connection.rawChannel');

/**
 * @internal `gatewayConn[ownedRelay](host)`: the relay view `connect(host, { via })` returns,
 * which owns the gateway connection (closing it closes that connection). Not public API.
 */
export const ownedRelay = Symbol('shellwire.Connection.ownedRelay');

/** What a gateway connection and the relay views on it share (one transport, one channel table). */
interface Shared {
  closeError: ShellwireError | null;
  /** The relay views on this connection: each hears its 'close'. */
  views: Set<Connection>;
}

/** Constructor argument for a relay view (`relay()`); module-private, so only this class makes views. */
class RelaySpec {
  constructor(readonly parent: Connection, readonly host: string, readonly owns: boolean) {}
}

export class Connection extends EventEmitter implements AsyncDisposable {
  /** The frames under this connection: private, so callers go through the facade. */
  readonly #conn: FrameConnection;
  /** What the channel classes and file operations see of this connection (client/channel-host.ts). */
  readonly #host: ChannelOpener & SessionHost;
  /** `host:port` of the daemon. */
  readonly hostLabel: string;
  /** What the server said about itself in WELCOME. */
  readonly server: Welcome;
  /** Ids, dispatch, UNKNOWN_CHANNEL, maxChannels, "connection lost": src/channel/channel-table.ts. */
  #table: ChannelTable;
  #window: number;
  #maxPacket: number;
  #shared: Shared;
  #closed: Promise<void>;
  /** A relay view: the gateway host every OPEN names (`host`); null on a direct connection. */
  readonly #relayHost: string | null;
  /**
   * A view that does not own the gateway connection ends alone (`close()`, `destroy()`):
   * its channels are closed, the shared connection stays. Set once it ended so.
   */
  #viewEnded: ShellwireError | null = null;
  /** A non-owning view's channels, for ending them alone. Ended ones are dropped as new ones open. */
  readonly #viewChannels: Set<Channel> | null;

  /**
   * Over a TLS socket right after WELCOME, or over the `FrameConnection` whose reader
   * received WELCOME (connect.ts): it is taken over as it is, so no byte read after
   * WELCOME is lost.
   */
  constructor(socket: TLSSocket | FrameConnection, welcome: Welcome, hostLabel: string, options?: ConnectionOptions);
  /** @internal A relay view on a gateway connection (`relay()`). */
  constructor(socket: RelaySpec);
  constructor(socket: TLSSocket | FrameConnection | RelaySpec, welcome?: Welcome, hostLabel?: string, options: ConnectionOptions = {}) {
    super();
    if (socket instanceof RelaySpec) {
      const parent = socket.parent;
      this.hostLabel = `${socket.host} via ${parent.hostLabel}`;
      this.server = parent.server;
      this.#window = parent.#window;
      this.#maxPacket = parent.#maxPacket;
      this.#shared = parent.#shared;
      this.#closed = parent.#closed;
      this.#conn = parent.#conn;
      this.#table = parent.#table;
      this.#relayHost = socket.host;
      this.#viewChannels = socket.owns ? null : new Set();
      this.#shared.views.add(this);
      this.#host = this.#channelHost();
      return;
    }
    this.#relayHost = null;
    this.#viewChannels = null;
    this.#shared = { closeError: null, views: new Set() };
    this.hostLabel = hostLabel!;
    this.server = welcome!;
    this.#window = options.window ?? DEFAULT_WINDOW;
    this.#maxPacket = Math.min(options.maxPacket ?? DEFAULT_MAX_PACKET, welcome!.maxPayload);
    const shared = this.#shared;
    let markClosed!: () => void;
    this.#closed = new Promise((resolve) => (markClosed = resolve));
    const handlers: FrameConnectionHandlers = {
      onFrame: (frame) => this.#withHost(() => this.#table.dispatch(frame)),
      onClose: (error, goodbye) => {
        const reason =
          error ??
          (goodbye
            ? new ConnectionError(remoteErrorCode(goodbye.code, ErrorCode.CONNECTION_CLOSED), `${hostLabel} closed the connection: ${goodbye.message}`, { host: hostLabel })
            : new ConnectionError(ErrorCode.CONNECTION_CLOSED, `Connection to ${hostLabel} closed.`, { host: hostLabel }));
        shared.closeError = reason;
        try {
          this.#table.connectionLost(reason);
        } finally {
          markClosed();
          this.emit('close', error);
          for (const view of shared.views) if (view.#viewEnded === null) view.emit('close', error);
        }
      },
    };
    const keepaliveMs = options.keepaliveMs ?? DEFAULT_CLIENT_KEEPALIVE_MS;
    if (socket instanceof FrameConnection) {
      this.#conn = socket;
      this.#conn.setHandlers(handlers);
      this.#conn.decoder.maxPayload = welcome!.maxPayload;
      this.#conn.authenticated = true;
      this.#conn.startKeepalive(keepaliveMs);
    } else {
      this.#conn = new FrameConnection(socket, handlers, { maxPayload: welcome!.maxPayload, keepaliveMs, peer: hostLabel! });
    }
    this.#table = new ChannelTable({ role: ChannelRole.OPENER, sink: this.#conn, maxChannels: welcome!.maxChannels, peer: hostLabel! });
    this.#host = this.#channelHost();
  }

  /** What the channel classes and file operations see of this connection (or relay view). */
  #channelHost(): ChannelOpener & SessionHost {
    const isClosed = () => this.closed;
    return {
      transport: this.#conn,
      hostLabel: this.hostLabel,
      server: this.server,
      get closed() {
        return isClosed();
      },
      openChannel: (message, hooks) => this.#openChannel(message, hooks),
      spawn: (command, options) => this.spawn(command, options),
    };
  }

  get closed(): boolean {
    return this.#conn.closed || this.#viewEnded !== null;
  }

  /**
   * Why the connection closed, once it has: the daemon's GOODBYE (its code, e.g.
   * SW_ERR_DENIED for a login revoked at a gateway reload), a keepalive timeout, a network
   * error, or this client's own close/destroy. null while open.
   */
  get closeReason(): ShellwireError | null {
    return this.#shared.closeError;
  }

  /**
   * The gateway host this connection's channels go to (`connect(host, { via })`, `relay()`),
   * or null for a direct connection.
   */
  get relayHost(): string | null {
    return this.#relayHost;
  }

  /**
   * Through this connection to a gateway (`shellwire gateway`), a view whose channels go on
   * to `host`, a name from the gateway's inventory: every OPEN it sends carries `host`, and
   * everything a `Connection` does (exec, spawn, shell, put/get, list…) works on it. Views
   * share this connection (one TLS session for a whole fleet, as `run --via` uses it):
   * closing a view closes only its channels; closing this connection ends every view. The
   * connection keeps each view until it is closed, so close views you are done with.
   *
   * @throws {UsageError} `SW_ERR_BAD_TARGET` for a name that is not a host name (see client/via.ts).
   * @throws {ConnectionError} `SW_ERR_CONNECTION_CLOSED` when this connection is closed.
   */
  relay(host: string): Connection {
    if (this.#relayHost !== null) throw new RequestError(ErrorCode.BAD_REQUEST, `${this.hostLabel} already goes to a host; relay() from the gateway's connection instead.`);
    this.#assertOpen();
    return new Connection(new RelaySpec(this, relayHostName(host, this.hostLabel), false));
  }

  /** @internal See `ownedRelay`. */
  [ownedRelay](host: string): Connection {
    return new Connection(new RelaySpec(this, host, true));
  }

  /** @internal See `transportOf`. */
  [transportOf](): FrameConnection {
    return this.#conn;
  }

  /** @internal See `rawChannel`. */
  [rawChannel](message: OpenMessage, hooks: ChannelHooks): Channel {
    return this.#openChannel(message, hooks);
  }

  /** Channels open right now. */
  get channelCount(): number {
    if (this.#viewChannels === null) return this.#table.size;
    let open = 0;
    for (const channel of this.#viewChannels) if (!channel.ended) open++;
    return open;
  }

  /**
   * Start a command and stream it: `proc.stdout`/`proc.stderr` are Readables (read both,
   * or the command stalls when the window fills), `proc.stdin` a Writable, `proc.exited`
   * the exit status. A string runs with `/bin/sh -c`; an array runs without a shell.
   *
   * @throws {RequestError} `SW_ERR_BAD_REQUEST` at once for invalid options (command, env, cwd,
   *   `timeoutMs`, pty, signal); `SW_ERR_TOO_MANY_CHANNELS` when the connection is full.
   * @throws {CommandError} `SW_ERR_COMMAND_CANCELED` when `signal` was already aborted: nothing is sent.
   * @throws {ConnectionError} `SW_ERR_CONNECTION_CLOSED` when the connection is closed.
   *   Refusals by the daemon (policy, limits) reject `proc.exited` and `proc.started` instead.
   */
  spawn(command: OsText | OsText[] | null, options: SpawnOptions & { session?: number } = {}): RemoteProcess {
    this.#assertOpen();
    checkOptionsObject(options, 'spawn()');
    const words = checkCommand(command);
    const env = checkEnv(options.env);
    const cwd = checkCwd(options.cwd);
    checkPty(options.pty);
    const timeout = timeoutOption(options);
    const timeoutMs = checkTimeout(timeout.value, timeout.option);
    const signal = checkAbortSignal(options.signal);
    const params: ExecParams = {};
    if (typeof words === 'string') params.command = words;
    else if (words !== null) params.argv = words;
    if (options.pty) params.pty = options.pty;
    if (env) params.env = env;
    if (cwd !== undefined) params.cwd = cwd;
    if (timeoutMs !== undefined) params.timeoutMs = timeoutMs;
    if (options.session !== undefined) params.session = options.session;
    const request: ExecOpen = { kind: 'exec', window: this.#window, maxPacket: this.#maxPacket, params };
    const label = typeof words === 'string' ? words : words === null ? '(login shell)' : words.join(' ');
    // Already aborted: no OPEN goes out. A CLOSE sent after it would wait for OPEN_OK, by
    // which time the command has run (docs/protocol.md §9.1).
    if (signal?.aborted) throw canceledBeforeStart(label, this.hostLabel);
    const proc = new RemoteProcess(this.#host, request, label);
    if (signal) {
      const abort = () => proc.close();
      signal.addEventListener('abort', abort, { once: true });
      const forget = () => signal.removeEventListener('abort', abort);
      proc.exited.then(forget, forget);
    }
    return proc;
  }

  /**
   * Run a command and buffer its output. Resolves with `{ stdout, stderr, exitCode, signal,
   * durationMs, … }`; rejects with a `CommandError` of the same shape when it fails
   * (unless `reject: false`).
   *
   * @throws {CommandError} (rejects) the command exited non-zero (`SW_ERR_COMMAND_FAILED`), was
   *   killed by a signal, timed out (`SW_ERR_COMMAND_TIMED_OUT`), was canceled
   *   (`SW_ERR_COMMAND_CANCELED`) or overflowed `maxBuffer` (`SW_ERR_MAX_BUFFER`); never with `reject: false`.
   * @throws {RequestError} (rejects) invalid options, or the daemon refused the command (`SW_ERR_DENIED`, …).
   * @throws {ConnectionError} (rejects) the connection was closed or lost while it ran.
   */
  exec(command: OsText | OsText[], options: ExecOptions = {}): Promise<CommandResult> {
    return runBuffered(() => this.spawn(command, options), options);
  }

  /**
   * Open a shell session: `cd` and `export` persist from one `session.exec()` to the next.
   *
   * @throws {RequestError} (rejects) the daemon refused the session, or invalid `cwd`/`env`.
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  async shell(options: { cwd?: OsText; env?: Record<string, OsText> } = {}): Promise<ShellSession> {
    this.#assertOpen();
    const env = checkEnv(options.env);
    const cwd = checkCwd(options.cwd);
    const session = new ShellSession(this.#host, { ...(cwd !== undefined ? { cwd } : {}), ...(env ? { env } : {}) });
    await session.opened;
    return session;
  }

  /**
   * Upload one file (atomic, SHA-256 verified, resumable); see client/files/put.ts.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  put(local: string, remote: string, options: PutOptions = {}): Promise<TransferResult> {
    return putFile(this.#host, local, remote, options);
  }

  /**
   * Download one file (atomic, SHA-256 verified, resumable).
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  get(remote: string, local: string, options: GetOptions = {}): Promise<TransferResult> {
    return getFile(this.#host, remote, local, options);
  }

  /**
   * Upload files and (with `recursive`) directory trees into `remote`.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   *   Per-entry failures do not reject: they are in the result's `failures`.
   */
  putRecursive(locals: string | string[], remote: string, options: TreeOptions = {}): Promise<TreeResult> {
    return putTree(this.#host, typeof locals === 'string' ? [locals] : locals, remote, options);
  }

  /**
   * Download files and (with `recursive`) directory trees into `local`.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   *   Per-entry failures do not reject: they are in the result's `failures`.
   */
  getRecursive(remotes: string | string[], local: string, options: TreeOptions = {}): Promise<TreeResult> {
    return getTree(this.#host, typeof remotes === 'string' ? [remotes] : remotes, local, options);
  }

  /**
   * The entries of a remote directory (a file lists as itself); `signal` cancels.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  list(remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry[]> {
    return listRemote(this.#host, remote, options);
  }

  /**
   * A remote path's type, size, mode and mtime (symlinks followed); `signal` cancels.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  stat(remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry & { path: string }> {
    return statRemote(this.#host, remote, options);
  }

  /**
   * Create a remote directory and its parents (no error when it exists); `signal` cancels.
   *
   * @throws {FileTransferError} (rejects) the transfer failed: a local or remote path is missing
   *   or not allowed (`errno`, `path`), the data did not verify (`SW_ERR_INTEGRITY`), or `signal`
   *   canceled it (`SW_ERR_COMMAND_CANCELED`).
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  mkdir(remote: string, options: { mode?: number; mtimeMs?: number; signal?: AbortSignal } = {}): Promise<string> {
    return mkdirRemote(this.#host, remote, options);
  }

  /**
   * On a connection to a gateway (not a relay view): upload `local` once and let the gateway
   * push it to every host in `hosts` (its inventory names), each copy verified by SHA-256 and
   * renamed into place by the host; resolves with every host's outcome. See
   * client/files/put-hosts.ts and docs/gateway.md "Files to many hosts".
   *
   * @throws {RequestError} (rejects) refused as a whole (no host permitted: `SW_ERR_DENIED`;
   *   a daemon, or a relay view: `SW_ERR_BAD_REQUEST`).
   * @throws {FileTransferError} (rejects) the local file, or the upload to the gateway failed.
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  putToHosts(local: string, hosts: readonly string[], remote: string, options: PutHostsOptions = {}): Promise<PutHostsResult> {
    if (this.#relayHost !== null) {
      return Promise.reject(new RequestError(ErrorCode.BAD_REQUEST, `${this.hostLabel} is a host behind the gateway; put to many hosts on the gateway's own connection.`));
    }
    return putToHosts(this.#host, local, hosts, remote, options);
  }

  /**
   * `putToHosts` for bytes that are not a local file (`PutSource`: a stream's, read once in
   * order; the web console's upload). `onOpened` runs once the gateway accepted the put.
   *
   * @throws as `putToHosts`.
   */
  putSourceToHosts(source: PutSource, hosts: readonly string[], remote: string, options: PutHostsOptions & { onOpened?: () => void } = {}): Promise<PutHostsResult> {
    if (this.#relayHost !== null) {
      return Promise.reject(new RequestError(ErrorCode.BAD_REQUEST, `${this.hostLabel} is a host behind the gateway; put to many hosts on the gateway's own connection.`));
    }
    try {
      this.#assertOpen();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return putSourceToHosts(this.#host, source, hosts, remote, options);
  }

  /**
   * Ask the gateway this connection goes to (not a host behind it) for `{ op, ... }` on a
   * `gateway` channel: `{ op: 'hosts' }` resolves with the JSON list of hosts the operator
   * may reach. See client/gateway-request.ts.
   *
   * @throws {RequestError} (rejects) refused (`SW_ERR_DENIED`; a daemon: `SW_ERR_BAD_REQUEST`), or canceled.
   * @throws {ConnectionError} (rejects) the connection is closed or was lost.
   */
  gatewayRequest(params: { op: string } & Record<string, unknown>, options: GatewayRequestOptions = {}): Promise<Buffer> {
    if (this.#relayHost !== null) {
      return Promise.reject(new RequestError(ErrorCode.BAD_REQUEST, `${this.hostLabel} is a host behind the gateway; ask the gateway's own connection (connect to it without a host).`));
    }
    try {
      this.#assertOpen();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return gatewayRequest(this.#host, params, options);
  }

  /**
   * Open a channel on a fresh id and send its OPEN (the client's channel kinds reach it
   * through `#host`). Throws when the connection is closed, or SW_ERR_TOO_MANY_CHANNELS.
   */
  #openChannel(message: OpenMessage, hooks: ChannelHooks): Channel {
    this.#assertOpen();
    // Through a gateway every kind names the host (docs/gateway.md): exec, session, file.
    const stamped: OpenMessage = this.#relayHost === null ? message : { ...message, host: this.#relayHost };
    const channel = this.#withHost(() => this.#table.open(stamped, hooks));
    if (this.#viewChannels) {
      for (const old of this.#viewChannels) if (old.ended) this.#viewChannels.delete(old);
      this.#viewChannels.add(channel);
    }
    return channel;
  }

  /**
   * A view that does not own the gateway connection ends alone: its channels are closed
   * (the gateway closes them on the host, which kills their commands), it refuses new ones
   * with `error`, and says 'close'. The shared connection and the other views go on.
   */
  #endView(error: ShellwireError): void {
    if (this.#viewEnded !== null || this.#conn.closed) return;
    this.#viewEnded = error;
    this.#shared.views.delete(this);
    for (const channel of this.#viewChannels!) channel.close();
    this.#viewChannels!.clear();
    this.emit('close', null);
  }

  /**
   * Close the connection; commands still running are killed by the server and their
   * `exited` rejects. Resolves when the daemon has closed its side, or after `timeoutMs`
   * (default 2 000; 0: at once; `timeout` is its deprecated alias) when the socket is
   * destroyed: never waits on a frozen peer. Never rejects.
   */
  async close(options: { timeoutMs?: number; /** @deprecated Use `timeoutMs`. */ timeout?: number } = {}): Promise<void> {
    if (this.#viewChannels !== null) {
      return this.#endView(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `The connection to ${this.hostLabel} was closed by this client.`, { host: this.hostLabel }));
    }
    const timeout = options.timeoutMs ?? options.timeout ?? DEFAULT_CLOSE_TIMEOUT_MS;
    if (!this.#conn.closed) this.#conn.socket.end();
    const timer = setTimeout(() => {
      if (this.#conn.closed) return;
      this.#conn.destroy(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `${this.hostLabel} did not close the connection within ${timeout} ms; it was dropped.`, { host: this.hostLabel }));
    }, Math.max(0, timeout));
    await this.#closed;
    clearTimeout(timer);
  }

  /** `await using conn = await connect(…)`: closed (as `close()`) when the block ends. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * End the connection now, without waiting for the daemon (which kills the commands when it
   * notices). Running commands reject with SW_ERR_CONNECTION_CLOSED.
   */
  destroy(): void {
    if (this.#viewChannels !== null) {
      return this.#endView(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `The connection to ${this.hostLabel} was destroyed by this client.`, { host: this.hostLabel }));
    }
    if (this.#conn.closed) return;
    this.#conn.destroy(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `The connection to ${this.hostLabel} was destroyed by this client.`, { host: this.hostLabel }));
  }

  #assertOpen(): void {
    if (this.#viewEnded !== null) throw this.#viewEnded;
    if (this.#conn.closed) {
      throw this.#shared.closeError ?? new ConnectionError(ErrorCode.CONNECTION_CLOSED, `Connection to ${this.hostLabel} is closed.`, { host: this.hostLabel });
    }
  }

  /** Errors of the channel table name this daemon (`err.host`), as all of the client's errors do. */
  #withHost<T>(run: () => T): T {
    try {
      return run();
    } catch (err) {
      if (err instanceof ShellwireError) err.host ??= this.hostLabel;
      throw err;
    }
  }
}
