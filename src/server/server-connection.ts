/**
 * One client connection on the daemon: the handshake with its deadline, then its channels
 * (a ChannelTable, channel/channel-table.ts: ids, dispatch, the channel lifecycle) with the
 * kind registered for each OPEN (channel-kinds.ts). Nothing but HELLO is accepted before
 * authentication, and any protocol violation closes this connection alone with a coded GOODBYE.
 */
import type { TLSSocket } from 'node:tls';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { FrameConnection } from '../transport/frame-connection.js';
import { FrameType, frameTypeName, type Frame } from '../protocol/frame.js';
import { ChannelRole, type Channel } from '../channel/channel-state.js';
import { ChannelTable, tooManyChannels, type AcceptResult, type IncomingOpen } from '../channel/channel-table.js';
import {
  decodeHello, decodeOpen, encodeWelcome, FEATURES, isOpenOf, SUPPORTED_VERSIONS, type Hello, type OpenRequest,
} from '../protocol/messages.js';
import { ErrorCode, ProtocolError, type ShellwireError } from '../errors.js';
import { ConfigAuthenticator, type Authenticator } from '../auth/authenticator.js';
import { AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../auth/ssh-key.js';
import { checkOpen, commandText } from '../auth/policy.js';
import { ConnectionAudit, type AuditSink } from '../audit/audit-sink.js';
import { authFailEvent, authOkEvent, connectEvent, deniedEvent, disconnectEvent } from '../audit/events.js';
import type { ServerLimits } from './limits.js';
import type { AuthenticatedUser, ChannelFactory, ChannelHost, ServerChannel } from './channel-host.js';
import { userBaseEnv } from './command-env.js';
import { actAs, OnBehalfHost, type ChannelOwner } from './on-behalf.js';
import { loginInForce } from '../auth/login-in-force.js';
import { gatewayPolicyOf } from '../auth/users-config.js';
import type { SessionState } from './session-state.js';
import type { Containers } from '../process/containment.js';
import type { Spawner } from '../process/spawner.js';

export const SERVER_SOFTWARE = 'shellwire/0.1.0';
const HOSTNAME = hostname();
/** Each channel's kind (keyed by the channel, so it goes with it). */
const kinds = new WeakMap<Channel, ServerChannel>();
/** Who opened each channel (on-behalf.ts): a session serves only its own owner's commands. */
const owners = new WeakMap<Channel, ChannelOwner>();

/**
 * A gateway operator as her audit rows name her: `osUser` is the user she acts as on the
 * hosts, never an account of the gateway's machine (nothing of hers runs there).
 */
function gatewayAuditUser(principal: AuthenticatedUser): { name: string; account: { name: string } } {
  return { name: principal.name, account: { name: gatewayPolicyOf(principal).as } };
}

/** `host` and `as` for a gateway row about an OPEN (the host as the operator named it). */
function gatewayWhere(principal: AuthenticatedUser, request: OpenRequest): { host?: string; as: string } {
  return { ...(request.host !== undefined ? { host: request.host } : {}), as: gatewayPolicyOf(principal).as };
}

/** What a daemon answers an OPEN meant for a gateway (docs/protocol.md "Gateway"). */
/** An operator's OPEN at a gateway that claims to act for someone: only the gateway says that, to hosts. */
export const ON_BEHALF_AT_GATEWAY = 'onBehalfOf is what a gateway sends to a host; a gateway does not take it from an operator: drop it';
export const NOT_A_GATEWAY = 'this is a shellwire daemon, not a gateway: connect to it directly (drop --via) or name the gateway';

export interface ServerConnectionContext {
  limits: ServerLimits;
  log: Logger;
  authenticator: Authenticator;
  baseEnv: Record<string, string>;
  /** Where commands are contained (cgroups + supervisor). */
  containers?: Containers | undefined;
  /** Forks commands on pipes (process/spawner.ts); without it the daemon forks them itself. */
  spawner?: Spawner | undefined;
  /** Handlers by channel kind (channel-kinds.ts). */
  channelKinds: ReadonlyMap<string, ChannelFactory>;
  /**
   * The audit trail: the connection records everything about itself and its channels there
   * (its ConnectionAudit fills in who and where), from connect to disconnect.
   */
  audit?: AuditSink | null;
  /** Called when the login succeeded (the startup gate releases its place). */
  onAuthenticated?(connection: ServerConnection): void;
  /** Refuse new channels (daemon is shutting down). */
  draining(): boolean;
  /**
   * This server is a gateway (src/gateway/): OPENs name the inventory `host` they are relayed
   * to, and `onBehalfOf` — what the gateway itself sends to hosts — is never taken from an operator.
   */
  gateway?: boolean;
  /** Time left for a valid HELLO (the startup gate shortens it under load); default the limit. */
  handshakeTimeoutMs?: number;
  /** Called when HELLO arrived: the connection is authenticating, no longer silent. */
  onHello?(): void;
  /** The last check on a successful login (connection limits); a refusal closes with its code. */
  admit?(principal: AuthenticatedUser): { code: ErrorCode; message: string } | null;
  onClosed(connection: ServerConnection): void;
  /** Who is at the other end when the socket cannot say (a connection over a transport: Server.handleConnection). */
  peer?: { address: string; remote: string; origin?: 'web' | 'web-link' };
}

type State = 'handshake' | 'authenticating' | 'open' | 'closed';

export class ServerConnection implements ChannelHost {
  readonly conn: FrameConnection;
  readonly log: Logger;
  readonly limits: ServerLimits;
  readonly remote: string;
  /** Source address without port: the unit of brute-force backoff. */
  readonly address: string;
  /** Who and where for every audit row of this connection and its channels. */
  readonly audit: ConnectionAudit;
  #ctx: ServerConnectionContext;
  #state: State = 'handshake';
  #handshakeTimer: NodeJS.Timeout | null;
  /** Made at login: an idle connection that never authenticates stays small. */
  #channels: ChannelTable | null = null;
  #user: AuthenticatedUser | null = null;
  #env: Record<string, string> | null = null;

  constructor(socket: TLSSocket, ctx: ServerConnectionContext) {
    this.#ctx = ctx;
    this.limits = ctx.limits;
    this.remote = ctx.peer?.remote ?? (socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`);
    // No pino child per connection: it costs ~2 KiB each, and idle connections must stay small.
    this.log = ctx.log;
    this.address = ctx.peer?.address ?? socket.remoteAddress ?? 'unknown';
    this.audit = new ConnectionAudit(ctx.audit, this.remote);
    this.audit.record(connectEvent());
    this.conn = new FrameConnection(
      socket,
      { onFrame: (frame) => this.#connOnFrame(frame), onClose: (error) => this.#connOnClose(error) },
      { maxPayload: ctx.limits.preauthMaxPayload, peer: this.remote, authenticated: false },
    );
    this.#handshakeTimer = setTimeout(() => this.evict('timeout'), ctx.handshakeTimeoutMs ?? ctx.limits.handshakeTimeoutMs);
  }

  /** Drop a connection that has not authenticated: out of time, or evicted to make room. */
  evict(reason: 'timeout' | 'evicted'): void {
    if (this.#state === 'open' || this.#state === 'closed') return;
    this.conn.fail(
      reason === 'timeout'
        ? new ProtocolError(ErrorCode.HANDSHAKE_TIMEOUT, `No valid HELLO within ${this.#ctx.handshakeTimeoutMs ?? this.limits.handshakeTimeoutMs} ms; connect with a shellwire client.`)
        : new ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS, 'Dropped to make room: too many connections were authenticating at once; authenticate right after connecting, or try again.'),
    );
  }

  get user(): AuthenticatedUser {
    return this.#user!;
  }

  /** The environment commands start from, with the user's account filled in (command-env.ts). */
  get baseEnv(): Record<string, string> {
    this.#env ??= userBaseEnv(this.#ctx.baseEnv, this.user);
    return this.#env;
  }

  get containers(): Containers | undefined {
    return this.#ctx.containers;
  }

  get spawner(): Spawner | undefined {
    return this.#ctx.spawner;
  }

  get busy(): boolean {
    for (const channel of this.#channels?.channels() ?? []) if (kinds.get(channel)?.busy) return true;
    return false;
  }

  /** The logged-in user's name; null before (or without) authentication. */
  get userName(): string | null {
    return this.#user?.name ?? null;
  }

  get authenticated(): boolean {
    return this.#state === 'open';
  }

  /** The session channel `id` opened by the logged-in principal itself (not on anyone's behalf). */
  session(id: number): SessionState | undefined {
    return this.sessionOf(id, null);
  }

  /** The session channel `id`, if `owner` opened it: one operator never reaches another's. */
  sessionOf(id: number, owner: ChannelOwner): SessionState | undefined {
    const channel = this.#channels?.get(id);
    if (!channel || owners.get(channel) !== owner) return undefined;
    return kinds.get(channel)?.session;
  }

  /** Daemon stop: say goodbye to idle connections now; busy ones are told when they finish. */
  goodbyeIfIdle(): boolean {
    if (this.busy) return false;
    this.conn.goodbye(ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down.');
    return true;
  }

  kill(): void {
    for (const channel of this.#channels?.channels() ?? []) kinds.get(channel)?.kill();
    this.conn.goodbye(ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down; running commands were killed.');
  }

  #connOnFrame(frame: Frame): void {
    switch (this.#state) {
      case 'handshake':
        return this.#handshakeOnFrame(frame);
      case 'authenticating':
        // A client may not pipeline anything behind HELLO before it hears WELCOME.
        throw new ProtocolError(ErrorCode.NOT_AUTHENTICATED, `Received ${frameTypeName(frame.type)} before authentication completed.`);
      case 'open':
        return this.#channels!.dispatch(frame);
      case 'closed':
        return;
    }
  }

  #handshakeOnFrame(frame: Frame): void {
    if (frame.type !== FrameType.HELLO) {
      throw new ProtocolError(
        ErrorCode.NOT_AUTHENTICATED,
        `Received ${frameTypeName(frame.type)} before HELLO; authenticate first.`,
      );
    }
    const hello = decodeHello(frame.payload);
    const version = Math.max(...hello.versions.filter((v) => SUPPORTED_VERSIONS.includes(v)), -1);
    if (version < 0) {
      throw new ProtocolError(
        ErrorCode.VERSION_MISMATCH,
        `Client speaks protocol version(s) ${hello.versions.join(', ') || 'none'}; this daemon speaks ${SUPPORTED_VERSIONS.join(', ')}. Upgrade the older side.`,
      );
    }
    this.#state = 'authenticating';
    this.#ctx.onHello?.();
    const socket = this.conn.socket as TLSSocket;
    const context = {
      address: this.address,
      ...(this.#ctx.peer?.origin ? { origin: this.#ctx.peer.origin } : {}),
      exporter: () => socket.exportKeyingMaterial(AUTH_EXPORTER_LENGTH, AUTH_EXPORTER_LABEL, Buffer.alloc(0)),
    };
    const methods = hello.auth.map((a) => a.method).join(',');
    Promise.resolve(this.#ctx.authenticator.authenticate(hello.auth, hello.user, context)).then(
      (result) => {
        if (this.#state !== 'authenticating') return;
        if (result.ok) {
          const refusal = this.#ctx.admit?.(result.principal);
          if (!refusal) return this.#welcome(hello, version, result.principal);
          this.log.warn({ client: this.remote, user: result.principal.name, method: result.principal.method, code: refusal.code }, 'login refused: connection limit');
          return this.conn.fail(new ProtocolError(refusal.code, refusal.message));
        }
        // One line per refusal, never the secret itself.
        this.log.warn({ client: this.remote, user: hello.user ?? null, methods, reason: result.reason, delayMs: result.delayMs }, 'authentication failed');
        this.audit.record(authFailEvent(hello.user ?? null, result.reason));
        const code = result.lockedOut ? ErrorCode.LOCKED_OUT : ErrorCode.AUTH_FAILED;
        const refuse = () => this.conn.fail(new ProtocolError(code, `Authentication failed (${methods}): ${result.reason}.`));
        // Backoff: the refusal (and so the next try) waits; the connection holds no command meanwhile.
        if (result.delayMs > 0) setTimeout(refuse, result.delayMs).unref();
        else refuse();
      },
      (err: unknown) => this.conn.fail(new ProtocolError(ErrorCode.AUTH_FAILED, `Authentication error: ${(err as Error).message}`)),
    );
  }

  #welcome(hello: Hello, version: number, principal: AuthenticatedUser): void {
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#user = principal;
    this.#state = 'open';
    this.#channels = new ChannelTable({
      role: ChannelRole.ACCEPTOR,
      sink: this.conn,
      maxChannels: this.limits.maxChannels,
      peer: this.remote,
      // accept() refuses a malformed OPEN, a draining daemon and an unwritable audit log
      // before it checks the limit.
      checkMaxChannels: false,
      accept: (open) => this.#accept(open),
    });
    this.conn.decoder.maxPayload = this.limits.maxPayload;
    this.conn.authenticated = true;
    // Not on the web console's in-process connections (TransportPeer.origin): a pipe in this
    // process cannot be lost, and a busy event loop must not end every browser's session.
    if (!this.#ctx.peer?.origin) this.conn.startKeepalive(this.limits.keepaliveMs);
    this.conn.send(FrameType.WELCOME, 0, encodeWelcome({
      version,
      features: FEATURES.filter((f) => hello.features.includes(f)),
      server: SERVER_SOFTWARE,
      hostname: HOSTNAME,
      user: principal.name,
      maxPayload: this.limits.maxPayload,
      maxChannels: this.limits.maxChannels,
      keepaliveMs: this.limits.keepaliveMs,
    }));
    // A gateway's operators run nothing on its machine: its local accounts are not theirs.
    const who = this.#ctx.gateway ? { as: gatewayPolicyOf(principal).as } : { account: principal.account.name };
    this.log.info({ client: this.remote, user: principal.name, ...who, clientSoftware: hello.client, method: principal.method, credential: principal.credential }, 'authenticated');
    this.audit.loggedIn(this.#ctx.gateway ? gatewayAuditUser(principal) : principal);
    this.audit.record(authOkEvent(this.#ctx.gateway ? { ...principal, ...gatewayAuditUser(principal) } : principal));
    this.#ctx.onAuthenticated?.(this);
  }

  /** An OPEN: refuse it (in this order) or build its kind and start it. */
  #accept(open: IncomingOpen): AcceptResult {
    const id = open.id;
    let request: OpenRequest;
    try {
      request = decodeOpen(open.payload);
    } catch (err) {
      // A malformed OPEN concerns that channel alone: the others keep running.
      if (err instanceof ProtocolError && err.code === ErrorCode.BAD_MESSAGE) return this.#refuseMalformed(id, err);
      throw err;
    }
    if (this.#ctx.draining()) return { refuse: { code: ErrorCode.SERVER_SHUTTING_DOWN, message: 'The daemon is shutting down; try again when it is back.' } };
    // Nothing runs that the audit log cannot record (unless the daemon was told to continue).
    const unaudited = this.audit.admit();
    if (unaudited) {
      this.audit.record(deniedEvent(commandText(request), request.kind, 'the audit log cannot be written'));
      return { refuse: { code: unaudited.code, message: unaudited.message } };
    }
    if (this.#channels!.atLimit) return { refuse: tooManyChannels(this.limits.maxChannels) };
    // A channel for a gateway's inventory host: the client meant a gateway (--via), not us.
    if (this.#ctx.gateway) {
      if (request.onBehalfOf !== undefined) {
        this.log.warn({ client: this.remote, user: this.user.name, channel: id, kind: request.kind }, 'OPEN with onBehalfOf refused at the gateway');
        // An operator claiming to act for someone is a forgery attempt: it is audited as one.
        this.audit.record({ ...deniedEvent(commandText(request), request.kind, ON_BEHALF_AT_GATEWAY), detail: { channelKind: request.kind, reason: ON_BEHALF_AT_GATEWAY, ...gatewayWhere(this.user, request), onBehalfOf: { ...request.onBehalfOf } } });
        return { refuse: { code: ErrorCode.BAD_REQUEST, message: ON_BEHALF_AT_GATEWAY } };
      }
      // Every OPEN is judged by the users.yaml in force now: an operator removed (or whose
      // hosts, as, channels or commands changed) since her login gets the new rules.
      const inForce = this.#loginInForce();
      if ('reason' in inForce) {
        this.log.warn({ client: this.remote, user: this.user.name, channel: id, kind: request.kind, reason: inForce.reason }, 'request denied');
        this.audit.record({ ...deniedEvent(commandText(request), request.kind, inForce.reason), detail: { channelKind: request.kind, reason: inForce.reason, ...gatewayWhere(this.user, request) } });
        return { refuse: { code: ErrorCode.DENIED, message: `Denied: ${inForce.reason}.` } };
      }
      this.#user = inForce.principal;
      this.audit.loggedIn(gatewayAuditUser(inForce.principal));
    } else if (request.host !== undefined || request.hosts !== undefined) {
      this.log.warn({ client: this.remote, user: this.user.name, channel: id, kind: request.kind, host: request.host ?? request.hosts }, 'OPEN for a gateway host refused');
      return { refuse: { code: ErrorCode.BAD_REQUEST, message: NOT_A_GATEWAY } };
    }
    // The host this channel runs for: the logged-in principal, or the user a gateway acts as.
    let onBehalf: OnBehalfHost | null = null;
    if (request.onBehalfOf !== undefined) {
      const authenticator = this.#ctx.authenticator;
      const acting = actAs(this.user, request.onBehalfOf, authenticator instanceof ConfigAuthenticator ? authenticator.config : null);
      if ('reason' in acting) {
        this.log.warn({ client: this.remote, user: this.user.name, channel: id, kind: request.kind, onBehalfOf: request.onBehalfOf, reason: acting.reason }, 'request denied');
        this.audit.record({ ...deniedEvent(commandText(request), request.kind, acting.reason), detail: { channelKind: request.kind, reason: acting.reason, onBehalfOf: { ...request.onBehalfOf } } });
        return { refuse: { code: ErrorCode.DENIED, message: `Denied: ${acting.reason}.` } };
      }
      onBehalf = new OnBehalfHost(this, acting.principal, this.#ctx.baseEnv, this.user.name, request.onBehalfOf);
    }
    const host: ChannelHost = onBehalf ?? this;
    const owner: ChannelOwner = onBehalf?.owner ?? null;
    // At a gateway the command runs on the host: its cwd and paths are judged there, under
    // the acted-as user's policy; here only the operator's kinds and command words.
    const decision = checkOpen(host.user, request, this.#ctx.gateway ? { where: 'gateway' } : undefined);
    if (!decision.allowed) {
      this.log.warn({ client: this.remote, user: host.user.name, channel: id, kind: request.kind, command: commandText(request), reason: decision.reason }, 'request denied');
      const denied = deniedEvent(commandText(request), request.kind, decision.reason);
      host.audit.record(this.#ctx.gateway ? { ...denied, detail: { ...denied.detail, ...gatewayWhere(host.user, request) } } : denied);
      return { refuse: { code: ErrorCode.DENIED, message: `Denied: ${decision.reason}.` } };
    }
    // For a user with command rules: the argv the rules matched, run without a shell.
    if (decision.request) request = decision.request;
    const borrowed = this.#borrowedSession(request, owner);
    if (borrowed) {
      this.log.warn({ client: this.remote, user: host.user.name, channel: id, kind: request.kind, reason: borrowed }, 'request denied');
      host.audit.record(deniedEvent(commandText(request), request.kind, borrowed));
      return { refuse: { code: ErrorCode.DENIED, message: `Denied: ${borrowed}.` } };
    }
    const factory = this.#ctx.channelKinds.get(request.kind);
    if (!factory) {
      return { refuse: { code: ErrorCode.BAD_REQUEST, message: `This daemon does not support "${request.kind}" channels (it supports ${[...this.#ctx.channelKinds.keys()].join(', ')}).` } };
    }
    let kind: ServerChannel;
    try {
      kind = factory(id, host, request);
    } catch (err) {
      // What only the kind can check (an exec's session id names an open session) is checked here.
      if (err instanceof ProtocolError && (err.code === ErrorCode.BAD_MESSAGE || err.code === ErrorCode.UNKNOWN_CHANNEL)) return this.#refuseMalformed(id, err);
      throw err;
    }
    const channel = open.accept({ window: request.window, maxPacket: request.maxPacket }, kind.hooks);
    kinds.set(channel, kind);
    owners.set(channel, owner);
    // A throw here (after its process may have started) ends the channel with protocol-error,
    // so its kind stops what it started before the connection fails.
    const failure = kind.start(channel);
    return failure ? { refuse: failure } : channel;
  }

  /** The login under the users.yaml in force (a gateway's; login-in-force.ts). */
  #loginInForce(): { principal: AuthenticatedUser } | { reason: string } {
    const authenticator = this.#ctx.authenticator;
    if (!(authenticator instanceof ConfigAuthenticator)) return { principal: this.user };
    return loginInForce(this.user, authenticator.config);
  }

  /**
   * After a reload (SIGHUP) at a gateway: close this connection if its login no longer stands
   * (the operator was removed, or the credential she logged in with was), ending what runs on
   * it on the hosts, as a Teleport lock does. A changed policy (hosts, as, channels,
   * commands) applies from her next OPEN; what already runs goes on. True when closed.
   */
  revokeIfRemoved(): boolean {
    if (!this.#ctx.gateway || this.#state !== 'open') return false;
    const inForce = this.#loginInForce();
    if (!('reason' in inForce)) return false;
    this.log.warn({ client: this.remote, user: this.user.name, reason: inForce.reason }, 'login revoked by reload: connection closed');
    this.audit.record({ ...deniedEvent(null, 'connection', inForce.reason), detail: { channelKind: 'connection', reason: inForce.reason, revoked: true } });
    for (const channel of this.#channels?.channels() ?? []) kinds.get(channel)?.kill();
    this.conn.goodbye(ErrorCode.DENIED, `Denied: ${inForce.reason}. This connection is closed and what ran on it was stopped.`);
    return true;
  }

  /**
   * Why an exec may not use the session it names: that session channel was opened for
   * another owner (another operator, or the gateway itself) on this shared connection.
   * null when it may, or when the session does not exist (the exec channel says so).
   */
  #borrowedSession(request: OpenRequest, owner: ChannelOwner): string | null {
    if (!isOpenOf(request, 'exec') || request.params.session === undefined) return null;
    const channel = this.#channels!.get(request.params.session);
    if (!channel || !kinds.get(channel)?.session || owners.get(channel) === owner) return null;
    return `session channel ${request.params.session} was opened for another user or operator on this connection; a command may use only a session opened on the same user's and operator's behalf`;
  }

  #refuseMalformed(id: number, err: ProtocolError): AcceptResult {
    this.log.warn({ client: this.remote, channel: id, code: err.code, err: err.message }, 'malformed OPEN refused');
    return { refuse: { code: err.code, message: `${err.message} Nothing was started; the connection's other channels are unaffected.` } };
  }

  #connOnClose(error: ShellwireError | null): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    try {
      this.#channels?.connectionLost(error);
    } finally {
      if (error?.code === ErrorCode.INTERNAL) this.log.error({ client: this.remote, code: error.code, err: error.message, stack: (error.cause as Error | undefined)?.stack, authenticated: wasOpen }, 'connection closed: internal error (a bug in shellwire)');
      else if (error) this.log.warn({ client: this.remote, code: error.code, err: error.message, authenticated: wasOpen }, 'connection closed with error');
      else this.log.debug({ client: this.remote }, 'connection closed');
      this.audit.record(disconnectEvent());
      this.#ctx.onClosed(this);
    }
  }
}
