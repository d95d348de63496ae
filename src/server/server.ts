/**
 * The daemon: a TLS listener that hands each authenticated connection to a
 * `ServerConnection`, enforces the connection limit, and stops gracefully.
 */
import { createServer as createTlsServer, createSecureContext, TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import type { Logger } from 'pino';
import { ErrorCode } from '../errors.js';
import { TLS_CIPHERS, TLS_GROUPS, TLS_MIN_VERSION, ALPN_PROTOCOL } from '../transport/tls.js';
import { loadOrCreateIdentity, readIdentity, type HostIdentity } from '../auth/identity.js';
import { loadOrCreateToken, tokenPath } from '../auth/token.js';
import { defaultServerStateDir } from '../auth/paths.js';
import { ConfigAuthenticator, type Authenticator } from '../auth/authenticator.js';
import type { OneTimeLogins } from '../auth/one-time-logins.js';
import { AuthThrottle, type LockInfo, type ThrottleOptions } from '../auth/throttle.js';
import { takeUnlockRequests, writeLockState } from '../auth/lock-state.js';
import { loadUsersConfig, type UsersConfig } from '../auth/users-config.js';
import { stateDirExposure } from '../auth/state-dir-exposure.js';
import { ContainedSink, type AuditSink } from '../audit/audit-sink.js';
import { AuditLog, auditLogPath } from '../audit/audit-log.js';
import { DaemonAudit, type AuditFailureAction } from '../audit/daemon-audit.js';
import { connectFailedEvent } from '../audit/events.js';
import { silentLogger } from '../silent-logger.js';
import { commandBaseEnv } from './command-env.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { loadNodePty, nodePtyUnavailable } from '../process/pty-process.js';
import { Containers, type ContainmentMode } from '../process/containment.js';
import { Spawner } from '../process/spawner.js';
import { recoverLostCommands } from './lost-commands.js';
import { ServerConnection } from './server-connection.js';
import type { ChannelFactory } from './channel-host.js';
import { channelKinds } from './channel-kinds.js';
import { daemonForbiddenDirs } from './files/forbidden.js';
import { daemonAccount } from '../auth/os-account.js';
import { StartupGate, type Startup } from './startup-gate.js';
import { refuseSocket } from './refuse-socket.js';
import { DEFAULT_PORT } from '../transport/address.js';
import type { Transport, TransportPeer } from '../transport/transport.js';

export { DEFAULT_PORT };
export const DEFAULT_HOST = '127.0.0.1';

export interface ServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Holds the host key, certificate and token; created on first start. */
  stateDir?: string;
  limits?: Partial<ServerLimits>;
  logger?: Logger;
  /** Replace authentication entirely (tests, embedding). Default: daemon token + users.yaml. */
  authenticator?: Authenticator;
  /** Brute-force backoff settings (and an injectable clock for tests), or the throttle itself. */
  throttle?: ThrottleOptions | AuthThrottle;
  /**
   * Audit trail. Default: the chained SQLite log `<state-dir>/audit.sqlite`; `false` for none;
   * or any sink: an object with `record(event: AuditEvent)` (should not throw, must be quick;
   * the server fills in the peer address and, after login, the user) and optionally `admit()`,
   * asked before each new channel (return a refusal to refuse it). Types from `shellwire/audit`.
   *
   * A sink that throws never ends the process or a connection: the throw is logged (`error`)
   * and read as "the audit trail is unavailable" (docs/audit.md). The row it was recording is
   * lost; what it recorded goes on (a `connect` or `auth-ok`: the connection is served; a
   * `command-start`: the command, already admitted, runs; a `command-end`: the result was
   * already sent). Until a later `record()` succeeds, new channels are refused with
   * `SW_ERR_AUDIT_UNAVAILABLE` under `auditFailure: 'refuse'` (the default), or served under
   * `'continue'`; each refusal records a `denied` row, which is the retry. A throw from
   * `admit()` refuses that channel the same way.
   */
  audit?: AuditSink | false;
  /**
   * While the audit log (the default one, or a sink that throws) cannot be written (disk full, I/O error): `refuse` new
   * commands with `SW_ERR_AUDIT_UNAVAILABLE` (default), or `continue` serving. Either way rows
   * wait in memory (up to `auditQueueLimit`) and a gap row marks the outage when writing resumes.
   */
  auditFailure?: AuditFailureAction;
  /** Rows held in memory while the audit log cannot be written. Default `AUDIT_QUEUE_LIMIT`. */
  auditQueueLimit?: number;
  /** Extra channel kinds beside exec, session and file (channel-kinds.ts); the same name replaces one. */
  channelKinds?: Iterable<[string, ChannelFactory]>;
  /**
   * Directories file transfers with the daemon token may touch (after resolving `..` and
   * symlinks). Default: `/`, any path (the token runs any command anyway). Users in users.yaml have their own `fileRoots`.
   */
  fileRoots?: string[];
  /**
   * How commands are contained (docs/processes.md): 'auto' (default) uses a cgroup per command
   * where cgroup v2 is writable, else process groups; 'cgroup' insists; 'process-group' never
   * uses cgroups.
   */
  containment?: ContainmentMode | 'auto';
  /**
   * Fork commands on pipes from a small helper process (process/spawner.ts; default true), so
   * that a spawn does not grow with the daemon; false: the daemon forks them itself
   * (`serve --spawner off`). Terminals are always started by the daemon.
   */
  spawner?: boolean;
  /**
   * Serve as a gateway (src/gateway/): users.yaml may hold the gateway-only fields `hosts`,
   * `as` and `record` (a daemon's refuses them). The relay kinds come in `channelKinds`.
   */
  gateway?: boolean;
  /**
   * Waited for on close after the last connection, before the audit log closes: work that
   * still writes rows (a gateway's recordings being finished). Should not reject.
   */
  beforeAuditClose?: () => Promise<void>;
  /**
   * One-time web login tokens the default authenticator accepts, only on connections whose
   * TransportPeer.origin is 'web' (a gateway with --web: src/web/in-process.ts).
   */
  oneTimeLogins?: OneTimeLogins;
}

export class Server {
  #identity: HostIdentity;
  readonly stateDir: string;
  readonly limits: ServerLimits;
  /** The access token clients present (v1 authentication). */
  readonly token: string;
  readonly tokenFile: string;
  /** True when this start made the identity (first start). */
  readonly created: boolean;
  #log: Logger;
  #tls: TlsServer;
  #connections = new Set<ServerConnection>();
  #gate: StartupGate;
  /** The startup of each accepted TCP socket, found again when its TLS is up. */
  #startups = new WeakMap<object, Startup>();
  /** Who each accepted TCP socket came from, kept from the accept (a reset socket forgets it). */
  #peers = new WeakMap<object, Peer>();
  /** Who is behind each connection that came over a transport (its socket has no address). */
  #transportPeers = new WeakMap<object, Peer>();
  #draining = false;
  #channelKinds: ReadonlyMap<string, ChannelFactory>;
  #host: string;
  #port: number;
  #gateway: boolean;
  #beforeAuditClose: (() => Promise<void>) | undefined;
  #users: UsersConfig;
  #authenticator: Authenticator;
  #audit: AuditSink | null;
  #ownAudit: DaemonAudit | null = null;
  #attached: Array<{ close(graceMs: number): Promise<void> }> = [];
  #containers: Containers;
  #spawner: Spawner | undefined;
  #baseEnv: Record<string, string>;
  /** The daemon's TLS context for connections that come over a transport (handleConnection). */
  #secureContext: SecureContext;

  private constructor(options: ServerOptions, identity: HostIdentity & { created: boolean }, token: string, stateDir: string, users: UsersConfig) {
    this.#identity = identity;
    this.created = identity.created;
    this.stateDir = stateDir;
    this.token = token;
    this.tokenFile = tokenPath(stateDir);
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#log = options.logger ?? silentLogger();
    this.#host = options.host ?? DEFAULT_HOST;
    this.#gateway = options.gateway === true;
    this.#beforeAuditClose = options.beforeAuditClose;
    this.#port = options.port ?? DEFAULT_PORT;
    this.#users = users;
    const authenticator = options.authenticator ?? new ConfigAuthenticator(token, users, options.throttle instanceof AuthThrottle ? options.throttle : new AuthThrottle(options.throttle), options.fileRoots);
    this.#authenticator = authenticator;
    if (authenticator instanceof ConfigAuthenticator) {
      if (options.oneTimeLogins) authenticator.oneTimeLogins = options.oneTimeLogins;
      authenticator.throttle.onLocksChanged = () => {
        try {
          writeLockState(stateDir, authenticator.throttle.locks());
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'cannot write locks.json');
        }
      };
    }
    // A sink from the embedder may throw: contained in one place, read as "audit unavailable".
    this.#audit = !options.audit ? null : options.audit instanceof DaemonAudit ? options.audit : ContainedSink.of(options.audit, this.#log, options.auditFailure);
    const baseEnv = commandBaseEnv();
    this.#baseEnv = baseEnv;
    this.#containers = new Containers({
      mode: options.containment ?? 'auto',
      // Lost commands are kept only for our own audit log, which the next start completes.
      lostDir: options.audit === undefined || options.audit instanceof DaemonAudit ? stateDir : null,
      onWarning: (message) => this.#log.warn(message),
    });
    this.#channelKinds = channelKinds({ forbidden: daemonForbiddenDirs(stateDir, daemonAccount().home), ...(options.channelKinds ? { extra: options.channelKinds } : {}) });
    this.#tls = createTlsServer({
      ...secureContextOptions(identity),
      ALPNProtocols: [ALPN_PROTOCOL],
      handshakeTimeout: this.limits.handshakeTimeoutMs,
    });
    this.#gate = new StartupGate({
      ...this.limits.maxStartups,
      perSource: this.limits.maxStartupsPerSource,
      handshakeTimeoutMs: this.limits.handshakeTimeoutMs,
      minHandshakeTimeoutMs: this.limits.minHandshakeTimeoutMs,
    });
    this.#tls.on('connection', (socket: Socket) => this.#tlsOnConnection(socket));
    this.#secureContext = createSecureContext(secureContextOptions(identity));
    this.#tls.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => this.#tlsOnClientError(err, socket));
    this.#tls.on('secureConnection', (socket: TLSSocket) => this.#tlsOnSecureConnection(socket, authenticator, baseEnv));
  }

  /** Load (or on first start create) identity and token, ready to `listen()`. */
  static async create(options: ServerOptions = {}): Promise<Server> {
    const stateDir = options.stateDir ?? defaultServerStateDir();
    const identity = await loadOrCreateIdentity(stateDir);
    const { token } = loadOrCreateToken(stateDir);
    const users = loadUsersConfig(stateDir, { gateway: options.gateway === true });
    await loadNodePty();
    let audit = options.audit;
    let ownAudit: DaemonAudit | null = null;
    if (audit === undefined) {
      ownAudit = new DaemonAudit(AuditLog.open(auditLogPath(stateDir)), options.logger ?? silentLogger(), {
        ...(options.auditFailure ? { onFailure: options.auditFailure } : {}),
        ...(options.auditQueueLimit ? { queueLimit: options.auditQueueLimit } : {}),
      });
      recoverLostCommands(stateDir, ownAudit.log, options.logger ?? silentLogger());
      audit = ownAudit;
    }
    // After the audit log opened: a daemon that cannot start says only why it cannot.
    const noTerminals = nodePtyUnavailable();
    if (noTerminals) (options.logger ?? silentLogger()).warn({ code: ErrorCode.MISSING_DEPENDENCY }, `${noTerminals}; serving everything but terminals`);
    const server = new Server({ ...options, audit }, identity, token, stateDir, users);
    server.#ownAudit = ownAudit;
    if (options.spawner !== false) {
      const log = options.logger ?? silentLogger();
      try {
        server.#spawner = await Spawner.start({ dir: spawnerDir(stateDir), onLog: (message) => log.warn(message) });
      } catch (err) {
        server.#ownAudit?.close();
        throw err;
      }
    }
    server.#warnExposedStateDir(users);
    return server;
  }

  /**
   * Start accepting TLS connections on `host:port` (port 0: a free one); resolves with the
   * address actually bound.
   *
   * @throws {Error} (rejects) Node's listen error: `EADDRINUSE` (another process has the port),
   *   `EACCES` (a port below 1024 without the privilege), `EADDRNOTAVAIL` (no such local address).
   */
  async listen(): Promise<AddressInfo> {
    this.#tls.listen({ host: this.#host, port: this.#port });
    await once(this.#tls, 'listening');
    const address = this.address;
    this.#log.info({ address: address.address, port: address.port, fingerprint: this.identity.fingerprint }, 'listening');
    return address;
  }

  get address(): AddressInfo {
    return this.#tls.address() as AddressInfo;
  }

  /** The host identity in force (the key clients pin). */
  get identity(): HostIdentity {
    return this.#identity;
  }

  /**
   * Re-read the host key and certificate (SIGHUP, after `shellwire rotate-host-key`): new
   * connections get the new key; open ones keep theirs. Unchanged files change nothing; a
   * broken pair is reported and the old identity stays in force.
   */
  reloadIdentity(): { ok: true; changed: boolean; fingerprint: string } | { ok: false; error: string } {
    try {
      const next = readIdentity(this.stateDir);
      if (next === undefined) return { ok: false, error: `no host key in ${this.stateDir}` };
      if (next.fingerprint === this.#identity.fingerprint) return { ok: true, changed: false, fingerprint: next.fingerprint };
      this.#tls.setSecureContext(secureContextOptions(next));
      this.#secureContext = createSecureContext(secureContextOptions(next));
      this.#log.warn({ old: this.#identity.fingerprint, fingerprint: next.fingerprint }, 'host key changed: new connections use the new key');
      this.#identity = next;
      return { ok: true, changed: true, fingerprint: next.fingerprint };
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'host key reload failed; keeping the old one');
      return { ok: false, error: (err as Error).message };
    }
  }

  /** The users and policy in force. */
  get users(): UsersConfig {
    return this.#users;
  }

  /**
   * Re-read users.yaml (SIGHUP). New logins use it; open connections keep the policy they
   * logged in with — except at a gateway, where each OPEN is judged by the file in force and
   * a removed operator's connection is closed. A broken file is reported and the old config stays in force. Never
   * throws: the result says whether the new file was taken.
   */
  reloadUsers(): { ok: true; users: number } | { ok: false; error: string } {
    this.#reloadLocks();
    try {
      const users = loadUsersConfig(this.stateDir, { gateway: this.#gateway });
      this.#users = users;
      if (this.#authenticator instanceof ConfigAuthenticator) this.#authenticator.config = users;
      this.#log.info({ users: users.users.size }, 'users config reloaded');
      this.#warnExposedStateDir(users);
      // A gateway judges each OPEN by the new file; an operator it no longer admits at all
      // (removed, or her key, token or password revoked) is disconnected now (docs/gateway.md).
      if (this.#gateway) for (const connection of this.#connections) connection.revokeIfRemoved();
      return { ok: true, users: users.users.size };
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'users config reload failed; keeping the old one');
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Restricted users who can read the state dir through their commands: said at every load. */
  #warnExposedStateDir(users: UsersConfig): void {
    // A gateway's operators run nothing on its machine (their commands run on the hosts, as
    // their `as` user): no account of its own can read its state dir through them.
    if (this.#gateway) return;
    for (const user of users.users.values()) {
      const warning = stateDirExposure(user, this.stateDir);
      if (warning) this.#log.warn({ user: user.name }, warning);
    }
  }

  /** The audit trail in force (null with `audit: false`); the classic port records to it too. */
  get audit(): AuditSink | null {
    return this.#audit;
  }

  /** Where commands are contained; the classic port shares them. */
  get containers(): Containers {
    return this.#containers;
  }

  /** The spawner forking commands on pipes (undefined with `spawner: false`); the classic port shares it. */
  get spawner(): Spawner | undefined {
    return this.#spawner;
  }

  /** Login locks in force (docs/policy.md#lock-out). */
  locks(): LockInfo[] {
    return this.#authenticator instanceof ConfigAuthenticator ? this.#authenticator.throttle.locks() : [];
  }

  /** Lift locks: one address or user name, `'addresses'`, or `'*'` for all. */
  clearLocks(which: string): number {
    if (!(this.#authenticator instanceof ConfigAuthenticator)) return 0;
    const lifted = this.#authenticator.throttle.clear(which);
    if (lifted > 0) this.#log.info({ which, lifted }, 'login locks lifted');
    return lifted;
  }

  // A reload (SIGHUP) lifts every address lock — an address is shared by many, so an
  // operator can always get back in — and applies `shellwire locks clear` requests.
  #reloadLocks(): void {
    this.clearLocks('addresses');
    for (const key of takeUnlockRequests(this.stateDir)) this.clearLocks(key);
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Another listener serving for this daemon (the classic port): `close()` stops it too, with
   * the same grace, and keeps the audit log and containers it shares open until it has stopped.
   */
  attach(listener: { close(graceMs: number): Promise<void> }): void {
    this.#attached.push(listener);
  }

  /**
   * Stop: no new connections or channels; idle connections are closed now, running
   * commands get `graceMs` (ms) to finish, then their process groups are killed; the spawner,
   * the containers and the audit log are closed last. Never rejects.
   */
  async close(graceMs: number = this.limits.shutdownGraceMs): Promise<void> {
    const attachedClosed = Promise.allSettled(this.#attached.map((listener) => listener.close(graceMs)));
    if (!this.#draining) {
      this.#draining = true;
      this.#tls.close();
      this.#log.info({ connections: this.#connections.size, graceMs }, 'shutting down');
    }
    const deadline = Date.now() + graceMs;
    while (this.#connections.size > 0) {
      for (const connection of this.#connections) {
        if (connection.conn.closed) this.#connections.delete(connection);
        else if (Date.now() >= deadline) connection.kill();
        else connection.goodbyeIfIdle();
      }
      if (this.#connections.size === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (Date.now() >= deadline + 3_000) {
        for (const connection of this.#connections) connection.conn.destroy();
        break;
      }
    }
    await attachedClosed;
    // Spawns still in flight fail now, and the helper kills what it forked that still runs
    // (nothing, normally: every connection is gone); their handlers run before the containers go.
    this.#spawner?.close();
    await new Promise((resolve) => setImmediate(resolve));
    this.#containers.close();
    await this.#beforeAuditClose?.().catch(() => {});
    this.#ownAudit?.close();
    this.#ownAudit = null;
  }

  /**
   * Serve one connection that arrives over `transport` instead of the TCP listener: the
   * same TLS 1.3 (this daemon's key), HELLO and frames, the same startup limits, connection
   * limit, logs and audit. This is the door for the gateway relay and the NATS tunnel
   * (src/transport/transport.ts). `peer` names the other end for logs, the audit trail and
   * login throttling (default address `transport`: every such connection then shares one
   * source's startup share). Works whether or not `listen()` was called; the transport is
   * destroyed when the connection ends. Never throws: a failed handshake is logged, audited
   * (a `connect` row with `detail.ok: false`) and ends only this connection.
   */
  handleConnection(transport: Transport, peer: TransportPeer = { address: 'transport' }): void {
    // For the transport's whole life, through its destroy: a Duplex.from() transport emits an
    // AbortError when destroyed (by us: a timeout, a GOODBYE), which unheard would end the process.
    transport.on('error', (err: Error) => this.#log.debug({ client: peer.remote ?? peer.address, err: err.message }, 'transport error'));
    const socket = new TLSSocket(transport, {
      isServer: true,
      secureContext: this.#secureContext,
      ALPNProtocols: [ALPN_PROTOCOL],
      requestCert: false,
      rejectUnauthorized: false,
    });
    const seen: Peer = { address: peer.address, remote: peer.remote ?? peer.address, ...(peer.origin ? { origin: peer.origin } : {}) };
    this.#transportPeers.set(socket, seen);
    this.#peers.set(socket, seen);
    const startup = this.#admitStartup(socket, seen);
    if (!startup) return;
    // What tls.Server does for its TCP sockets: a secure socket is served, a failed handshake told.
    let secured = false;
    socket.once('secure', () => {
      secured = true;
      if (socket.alpnProtocol !== ALPN_PROTOCOL) {
        this.#tlsOnClientError(Object.assign(new Error(`the client did not agree to ALPN ${ALPN_PROTOCOL}`), { code: 'ERR_SSL_NO_APPLICATION_PROTOCOL' }), socket);
        return;
      }
      this.#tlsOnSecureConnection(socket, this.#authenticator, this.#baseEnv);
    });
    // The handshake failed, timed out or the peer left: one `connect` row with ok:false, as
    // tls.Server gives TCP connections (its tlsClientError), which a bare TLSSocket never does.
    const failed = (err: NodeJS.ErrnoException) => {
      if (secured) return;
      secured = true;
      this.#tlsOnClientError(err, socket);
    };
    socket.on('error', failed);
    const left = () => failed(Object.assign(new Error('the peer closed the connection before the TLS handshake completed'), { code: 'ECONNRESET' }));
    socket.once('end', left);
    socket.once('close', left);
    startup.evict = (reason) => {
      if (reason === 'timeout') failed(Object.assign(new Error('TLS handshake timeout'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
      socket.destroy();
    };
  }

  #tlsOnClientError(err: NodeJS.ErrnoException, socket: TLSSocket): void {
    // The peer may be gone (reset right after ClientHello): its address is the one seen at accept.
    const peer = this.#peers.get(acceptedSocket(socket)) ?? peerOf(socket);
    const reason = err.code ?? err.message;
    this.#log.warn({ client: peer.remote, code: ErrorCode.TLS, err: reason }, 'TLS handshake failed');
    this.#audit?.record(connectFailedEvent(peer.address, peer.remote, 'tls', reason));
    // With a listener here Node leaves the socket to us: a handshake that timed out or
    // failed would otherwise hold its fd (and its startup slot) until the peer leaves.
    socket.destroy();
  }

  #tlsOnConnection(socket: Socket): void {
    // Nagle would hold our small handshake and exit frames for a delayed ACK (~40 ms).
    socket.setNoDelay(true);
    const peer = peerOf(socket);
    this.#peers.set(socket, peer);
    this.#admitStartup(socket, peer);
  }

  #admitStartup(socket: Socket, peer: Peer): Startup | null {
    const startup = this.#gate.admit(socket, peer.address);
    if (!startup) {
      // Before any TLS work: one address may not hold more of the table than its share.
      this.#log.warn({ client: peer.remote, limit: this.limits.maxStartupsPerSource }, 'connection dropped: too many unauthenticated connections from this address');
      this.#audit?.record(connectFailedEvent(peer.address, peer.remote, 'startup', 'too many unauthenticated connections from this address'));
      socket.destroy();
      return null;
    }
    this.#startups.set(socket, startup);
    return startup;
  }

  #tlsOnSecureConnection(socket: TLSSocket, authenticator: Authenticator, baseEnv: Record<string, string>): void {
    const startup = this.#startups.get(acceptedSocket(socket));
    if (!startup || socket.destroyed) {
      // Evicted or out of time while TLS was still going on.
      socket.destroy();
      return;
    }
    if (this.#draining) {
      this.#gate.release(startup);
      refuseSocket(socket, ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down.');
      return;
    }
    if (this.#authenticatedCount() >= this.limits.maxConnections) {
      this.#gate.release(startup);
      const peer = this.#peers.get(acceptedSocket(socket)) ?? peerOf(socket);
      this.#log.warn({ client: peer.remote, limit: this.limits.maxConnections }, 'connection refused: limit reached');
      this.#audit?.record(connectFailedEvent(peer.address, peer.remote, 'limit', 'connection limit reached (--max-connections)'));
      refuseSocket(socket, ErrorCode.TOO_MANY_CONNECTIONS, `The daemon already serves ${this.limits.maxConnections} connections (--max-connections); try again later.`);
      return;
    }
    const transportPeer = this.#transportPeers.get(socket);
    const connection = new ServerConnection(socket, {
      ...(transportPeer ? { peer: transportPeer } : {}),
      limits: this.limits,
      log: this.#log,
      authenticator,
      baseEnv,
      containers: this.#containers,
      spawner: this.#spawner,
      channelKinds: this.#channelKinds,
      audit: this.#audit,
      draining: () => this.#draining,
      gateway: this.#gateway,
      handshakeTimeoutMs: Math.max(0, startup.deadlineMs - (Date.now() - startup.acceptedAt)),
      admit: (principal) => this.#admitAuthenticated(principal),
      onHello: () => {
        startup.silent = false;
      },
      onClosed: (c) => {
        this.#gate.release(startup);
        this.#connections.delete(c);
      },
      onAuthenticated: () => this.#gate.release(startup),
    });
    // The gate's deadline and evictions now close this connection with a coded GOODBYE.
    startup.evict = (reason) => connection.evict(reason);
    this.#connections.add(connection);
  }

  #authenticatedCount(): number {
    let n = 0;
    for (const c of this.#connections) if (c.authenticated) n += 1;
    return n;
  }

  /**
   * The last word on a login that succeeded: the connection limit is checked again (many
   * handshakes may have started under it), and password logins leave the last
   * `reservedForStrongAuth` places to keys and tokens, so an administrator with a key
   * still gets in when password users (or guessers) have filled the daemon.
   */
  #admitAuthenticated(principal: { method: string }): { code: ErrorCode; message: string } | null {
    const max = this.limits.maxConnections;
    const count = this.#authenticatedCount();
    if (count >= max) return { code: ErrorCode.TOO_MANY_CONNECTIONS, message: `The daemon already serves ${max} connections (--max-connections); try again later.` };
    const reserve = Math.min(this.limits.reservedForStrongAuth, Math.floor(max / 4));
    if (principal.method === 'password' && count >= max - reserve) {
      return { code: ErrorCode.TOO_MANY_CONNECTIONS, message: `The daemon serves ${count} connections; its last ${reserve} places are kept for key and token logins. Try again later, or log in with a key.` };
    }
    return null;
  }
}

interface Peer {
  /** The source address (the unit of flood aggregation). */
  address: string;
  /** `ADDRESS:PORT`, `[V6]:PORT`, as ServerConnection spells it. */
  remote: string;
  /** Set only by handleConnection's caller (TransportPeer.origin): never from the network. */
  origin?: 'web' | 'web-link';
}

/**
 * Where the spawner's private socket directory goes: the state dir (private already), unless
 * its path is too long for a Unix socket (108 bytes with the `shellwire-spawner-XXXXXX/s`).
 */
function spawnerDir(stateDir: string): string {
  return Buffer.byteLength(stateDir) + 28 < 100 ? stateDir : tmpdir();
}

function peerOf(socket: Socket): Peer {
  const address = socket.remoteAddress ?? 'unknown';
  return { address, remote: socket.remoteFamily === 'IPv6' ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}` };
}

/** The accepted TCP socket a TLS socket wraps (Node keeps it as `_parent`). */
function acceptedSocket(socket: TLSSocket): object {
  return (socket as unknown as { _parent?: object })._parent ?? socket;
}

/** The TLS settings of the daemon's secure context (at start, and again on a key reload). */
function secureContextOptions(identity: HostIdentity) {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    minVersion: TLS_MIN_VERSION,
    ciphers: TLS_CIPHERS,
    // Our order (AES-128-GCM first: fastest with AES-NI), not the client's.
    honorCipherOrder: true,
    // Key exchange groups of at least 128-bit strength only (no 2048-bit finite-field DH).
    ecdhCurve: TLS_GROUPS,
  } as const;
}
