/**
 * `connect()`: TCP, TLS 1.3, host-key pinning, then the HELLO/WELCOME handshake.
 * The token is sent only after the server's key matched known_hosts (or the caller's
 * pinned fingerprint), so an impostor never sees it.
 */
import type { TLSSocket } from 'node:tls';
import { FrameType, encodeFrame, frameTypeName, PREAUTH_MAX_PAYLOAD, type Frame } from '../protocol/frame.js';
import {
  decodeCodeMessage, decodeWelcome, encodeHello, FEATURES, MAX_AUTH_ATTEMPTS, PROTOCOL_MAGIC, SUPPORTED_VERSIONS, type AuthRequest, type Hello, type Welcome,
} from '../protocol/messages.js';
import {
  AuthenticationError, ConnectionError, ErrorCode, HostVerificationError, ProtocolError, RequestError, ShellwireError, parseErrorCode,
} from '../errors.js';
import { fingerprintOfCertificate } from '../transport/tls.js';
import { FrameConnection } from '../transport/frame-connection.js';
import type { Transport } from '../transport/transport.js';
import { DAEMON_SERVICE, GATEWAY_SERVICE, gatewayDials, openTls } from './open-tls.js';
import { verifyHostKey, type HostKeyPolicy } from '../auth/known-hosts.js';
import { knownHostsPath, shellwireHome } from '../auth/paths.js';
import { join } from 'node:path';
import { parseTarget, formatTarget, type Target } from './target.js';
import { resolveCredentials, type Credentials } from './credentials.js';
import { authSignedData, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../auth/ssh-key.js';
import { userInfo } from 'node:os';
import { createHash } from 'node:crypto';
import { Connection, ownedRelay, type ConnectionOptions } from './connection.js';
import { parseVia, relayHostName } from './via.js';
import { isNatsUrl } from '../transport/nats-connect.js';
/** OPEN's `window` is a u32 (docs/protocol.md §4). */
const U32_MAX = 0xffffffff;
import {
  MAX_DELAY_MS, checkAbortSignal, checkChoice, checkFunction, checkInteger, checkOptionsObject, checkString,
} from './option-checks.js';

export const CLIENT_SOFTWARE = 'shellwire/0.1.0';
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** `connect()` options apart from the host-key policy (see `ConnectOptions`). */
export interface BaseConnectOptions extends ConnectionOptions {
  /** Access token; else `tokenFile`, `SHELLWIRE_TOKEN`, or the local daemon's token file. */
  token?: string;
  tokenFile?: string;
  /**
   * OpenSSH private key file (Ed25519, ECDSA or RSA). Default, as ssh: the keys of ssh-agent
   * (`SSH_AUTH_SOCK`), then `$SHELLWIRE_HOME/id_ed25519`, `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
   */
  identity?: string;
  /** Asked for a key file's passphrase (`attempt` 1 to 3; '' skips the key). Without it, encrypted key files are not used. */
  askPassphrase?: (keyFile: string, attempt: number) => Promise<string>;
  /** Password login (the daemon must allow it). */
  password?: string;
  /** shellwire user to log in as (`USER@` in the target wins); default: the local user name. */
  user?: string;
  /** `$SHELLWIRE_HOME` (known_hosts, the default key and the local daemon's token live there); default from the environment. */
  home?: string;
  /** Called after a new host was added to known_hosts (a CLI prints ssh's "Permanently added"). */
  onHostKeyAdded?: (host: string, fingerprint: string, knownHostsFile: string) => void;
  /** Expected `SHA256:…` fingerprint; when given, known_hosts is neither read nor written. */
  fingerprint?: string;
  connectTimeoutMs?: number;
  /** Abort the connection attempt. */
  signal?: AbortSignal;
  /**
   * Run the connection over this byte duplex instead of dialling TCP (src/transport/transport.ts):
   * what the gateway relay and the NATS tunnel use. TLS, the host key check and HELLO are the
   * same; `target` still names the host (known_hosts, messages). The duplex is destroyed when
   * the connection ends or fails; a failed connect cannot be retried on it.
   */
  transport?: Transport;
  /** Environment to read SHELLWIRE_* from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Told each step of connecting (address, TLS, host key check, credentials offered, outcome), as `ssh -v` prints them. */
  debug?: (message: string) => void;
  /**
   * Through this gateway (`shellwire gateway`; ssh's `-J`): `[USER@]GW[:PORT]` (default port
   * 50008) or a parsed target. The TLS connection, host key check (known_hosts under the
   * gateway's `host:port`) and login go to the gateway (USER@ names the operator; the other
   * credential options work as for any connect); the host is then a name from the gateway's
   * inventory, which every OPEN carries. See docs/gateway.md.
   */
  via?: string | Target;
  /** With `via: 'nats://…'`: the NATS credentials file (`.creds` or an nkey seed; docs/nats.md). */
  natsCreds?: string;
  /** With `via: 'nats://…'`: the subject prefix the agents use (default `shellwire`). */
  natsPrefix?: string;
  /** With `via: 'nats://…'`: use this NATS connection (not closed with the shellwire connection) instead of opening one. */
  natsConnection?: import('@nats-io/transport-node').NatsConnection;
}

/**
 * What to do with a host not in known_hosts: 'strict' (the default) refuses it, 'accept-new'
 * trusts and remembers it, 'ask' calls `confirmHost` (required: there is no one else to ask).
 * A changed key is refused under every policy.
 */
export type HostKeyOptions =
  | { hostKeyPolicy?: 'strict' | 'accept-new'; confirmHost?: (host: string, fingerprint: string) => Promise<boolean> }
  | { hostKeyPolicy: 'ask'; confirmHost: (host: string, fingerprint: string) => Promise<boolean> };

export type ConnectOptions = BaseConnectOptions & HostKeyOptions;

const HOST_KEY_POLICIES: readonly HostKeyPolicy[] = ['strict', 'accept-new', 'ask'];

/** The largest data frame a client may ask for (OPEN's `maxPacket`, docs/protocol.md §4). */
const MAX_PACKET_LIMIT = 1024 * 1024;

/**
 * JavaScript callers get no type check: refuse, before anything is read or dialled, an
 * option that could not work (a `window` of "abc" would reach the frame encoder; a
 * `connectTimeoutMs` of -1 fires at once). `SW_ERR_BAD_REQUEST`, naming the option.
 */
export function checkConnectOptions(options: ConnectOptions): void {
  checkOptionsObject(options, 'connect()');
  checkInteger(options.window, 'window', { min: 1, max: U32_MAX, unit: 'bytes' });
  checkInteger(options.maxPacket, 'maxPacket', { min: 1, max: MAX_PACKET_LIMIT, unit: 'bytes' });
  checkInteger(options.keepaliveMs, 'keepaliveMs', { min: 0, max: MAX_DELAY_MS, unit: 'milliseconds', note: '0 for none' });
  checkInteger(options.connectTimeoutMs, 'connectTimeoutMs', { min: 1, max: MAX_DELAY_MS, unit: 'milliseconds' });
  for (const name of ['token', 'tokenFile', 'identity', 'password', 'user', 'home', 'fingerprint', 'natsCreds', 'natsPrefix'] as const) checkString(options[name], name);
  for (const name of ['askPassphrase', 'onHostKeyAdded', 'confirmHost', 'debug'] as const) checkFunction(options[name], name);
  checkAbortSignal(options.signal);
  checkHostKeyOptions(options);
  const via: unknown = options.via;
  if (via !== undefined && typeof via !== 'string' && (typeof via !== 'object' || via === null || typeof (via as Target).host !== 'string')) {
    throw new RequestError(ErrorCode.BAD_REQUEST, 'The via option must be the gateway as "[USER@]GW[:PORT]" or a target { host, port, user? }.');
  }
}

/** JavaScript callers get no type check: refuse a policy that could not work before connecting. */
function checkHostKeyOptions(options: ConnectOptions): void {
  const policy: unknown = options.hostKeyPolicy;
  checkChoice(policy, 'hostKeyPolicy', HOST_KEY_POLICIES);
  if (policy === 'ask' && typeof options.confirmHost !== 'function') {
    throw new RequestError(ErrorCode.BAD_REQUEST, "hostKeyPolicy 'ask' needs a confirmHost(host, fingerprint) callback that returns a Promise<boolean>; without one, use 'strict' or 'accept-new'.");
  }
}

/**
 * Connect to `target` (`HOST[:PORT]`, `[::1]:PORT`, or a parsed target) and authenticate.
 *
 * @throws {ConnectionError} the daemon cannot be reached, or did not answer in time, or `signal`
 *   aborted (`SW_ERR_CONNECT_FAILED`; the message says which); the port speaks something else
 *   (`SW_ERR_NOT_SHELLWIRE`); the daemon said nothing after HELLO (`SW_ERR_HANDSHAKE_TIMEOUT`),
 *   closed the connection (`SW_ERR_CONNECTION_CLOSED`), is full (`SW_ERR_TOO_MANY_CONNECTIONS`)
 *   or is stopping (`SW_ERR_SERVER_SHUTTING_DOWN`).
 * @throws {HostVerificationError} TLS failed (`SW_ERR_TLS`) or the host key is unknown
 *   (`SW_ERR_HOST_KEY_UNKNOWN`) or changed (`SW_ERR_HOST_KEY_CHANGED`; `presented`, `pinned`,
 *   `knownHostsFile`, `line`). No credential is sent before the key is trusted.
 * @throws {AuthenticationError} the daemon refused the credentials (`SW_ERR_AUTH_FAILED`,
 *   `SW_ERR_LOCKED_OUT`), or there were none to offer, or a token or key file cannot be read
 *   (`SW_ERR_NO_CREDENTIALS`).
 * @throws {ProtocolError} the daemon broke the protocol during the handshake (`SW_ERR_VERSION_MISMATCH`,
 *   `SW_ERR_BAD_MAGIC`, `SW_ERR_BAD_MESSAGE`, …).
 * @throws {UsageError} a malformed target (`SW_ERR_BAD_TARGET`), or a key file shellwire cannot
 *   use (`SW_ERR_BAD_KEY`: unsupported type, malformed, wrong passphrase).
 * @throws {RequestError} `SW_ERR_BAD_REQUEST` for an invalid option (`checkConnectOptions`: a
 *   `window` that is not a u32, `hostKeyPolicy: 'ask'` without `confirmHost`, …).
 */
export async function connect(target: string | Target, options: ConnectOptions = {}): Promise<Connection> {
  checkConnectOptions(options);
  if (options.via !== undefined) {
    if (typeof options.via === 'string' && isNatsUrl(options.via)) return connectNatsVia(target, options.via, options);
    return connectVia(target, options.via, options);
  }
  const parsed = typeof target === 'string' ? parseTarget(target) : target;
  const label = hostKeyLabels.get(options) ?? formatTarget(parsed);
  // Aborted already: nothing is read, asked or dialled (the error an abort in flight gives).
  if (options.signal?.aborted) {
    // A failed connect destroys the transport it was given (as openTls does), quietly.
    options.transport?.on('error', () => {}).destroy();
    throw abortedConnect(label);
  }
  const env = options.env ?? process.env;
  // An explicit user (USER@host, options.user) binds every credential; otherwise keys and
  // passwords log in as the local user name and a token acts as whoever it belongs to.
  const explicitUser = parsed.user ?? options.user;
  const { user: _user, ...credentialOptions } = options;
  const credentials = await resolveCredentials(parsed.host, { ...credentialOptions, env, ...(explicitUser !== undefined ? { user: explicitUser } : {}) });
  const hasFirstRound = credentials.tokens.length > 0 || credentials.keys.length > 0 || credentials.password !== null || credentials.localToken !== null;
  let refused: unknown = null;
  if (hasFirstRound) {
    try {
      return await connectWith(parsed, label, options, explicitUser, credentials);
    } catch (err) {
      if (!(err instanceof AuthenticationError && err.code === ErrorCode.AUTH_FAILED && credentials.lockedKeys.length > 0)) throw withNotes(err, credentials.notes);
      refused = err;
    }
  }
  // As ssh, passphrase-protected default keys are asked for only when nothing else worked.
  const keys: Credentials['keys'] = [];
  for (const locked of credentials.lockedKeys) {
    const key = await locked.unlock();
    if (key) keys.push(key);
  }
  if (keys.length === 0) {
    throw withNotes(refused ?? new AuthenticationError(ErrorCode.NO_CREDENTIALS, `No usable credentials for ${label}.`, { host: label }), credentials.notes);
  }
  try {
    return await connectWith(parsed, label, options, explicitUser, { ...credentials, tokens: [], localToken: null, password: null, keys, lockedKeys: [] });
  } catch (err) {
    throw withNotes(err, credentials.notes);
  }
}

/**
 * `connect(host, { via })`: log in to the gateway as to any daemon, then a relay view on
 * that connection (it owns it: closing the view closes the gateway connection) whose
 * OPENs name `host`. The host name is checked before anything is dialled.
 */
async function connectVia(host: string | Target, via: string | Target, options: ConnectOptions): Promise<Connection> {
  const gateway = parseVia(via);
  const name = relayHostName(host, formatTarget(gateway));
  const { via: _via, ...direct } = options;
  // A failure to reach it gives a gateway's advice (`shellwire gateway`, port 50008).
  gatewayDials.add(direct);
  const conn = await connect(gateway, direct);
  options.debug?.(`channels go on to ${name} through the gateway ${conn.hostLabel}`);
  return conn[ownedRelay](name);
}

/** Options of a connect over a NATS tunnel: the host key name (`nats:NAME`) that known_hosts and messages use. */
const hostKeyLabels = new WeakMap<ConnectOptions, string>();

/**
 * `connect(NAME, { via: 'nats://…' })`: a tunnel to agent NAME (src/client/nats-via.ts), then
 * TLS, the host key check (known_hosts under `nats:NAME`) and login over it as over TCP.
 * nats.js is loaded only here.
 */
async function connectNatsVia(target: string | Target, via: string, options: ConnectOptions): Promise<Connection> {
  const { natsTransportFor, natsHostKey } = await import('./nats-via.js');
  if (options.signal?.aborted) throw abortedConnect(typeof target === 'string' ? target : target.host);
  const { tunnel, name, user } = await natsTransportFor(target, via, options);
  const { via: _via, natsCreds: _c, natsPrefix: _p, natsConnection: _n, ...direct } = options;
  const tunnelled: ConnectOptions = { ...direct, transport: tunnel, ...(user !== undefined ? { user } : {}) };
  hostKeyLabels.set(tunnelled, natsHostKey(name));
  return connect({ host: name, port: 0 }, tunnelled);
}

/** Tell, on a failed login, which credentials were not offered and why (agent down, key skipped). */
function withNotes(err: unknown, notes: string[]): unknown {
  if (err instanceof AuthenticationError && notes.length > 0) {
    // What was not offered is part of what happened: it goes in the reason, before the advice.
    err.reason += ` Not offered: ${notes.join('; ')}.`;
    err.message = err.hint ? `${err.reason} ${err.hint}` : err.reason;
  }
  return err;
}

/** One connection attempt with one set of credentials. */
async function connectWith(parsed: Target, label: string, options: ConnectOptions, explicitUser: string | undefined, credentials: Credentials): Promise<Connection> {
  const env = options.env ?? process.env;
  const user = explicitUser ?? (env.USER || localUserName());
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  const debug = options.debug;
  debug?.(`connecting to ${label} (timeout ${timeoutMs / 1000} s)`);
  let socket: TLSSocket;
  try {
    socket = await openTls(parsed, label, timeoutMs, options.signal, options.transport, gatewayDials.has(options) ? GATEWAY_SERVICE : DAEMON_SERVICE);
  } catch (err) {
    debug?.(`connecting failed: ${describeFailure(err)}`);
    throw err;
  }
  try {
    debug?.(`${socket.getProtocol() ?? 'TLS'} established with ${options.transport ? `${label} over the given transport` : `${socket.remoteAddress ?? parsed.host} port ${socket.remotePort ?? parsed.port}`} (${socket.getCipher().name})`);
    const cert = socket.getPeerX509Certificate();
    if (!cert) throw new HostVerificationError(ErrorCode.TLS, `${label} presented no certificate.`, { host: label });
    const fingerprint = fingerprintOfCertificate(cert.raw);
    debug?.(`server host key ${fingerprint}`);
    if (options.fingerprint !== undefined) {
      if (options.fingerprint !== fingerprint) {
        const error = new HostVerificationError(ErrorCode.HOST_KEY_CHANGED, `${label} presented ${fingerprint}, expected ${options.fingerprint}. Refusing to connect.`, { host: label });
        error.fingerprint = fingerprint;
        error.pinned = options.fingerprint;
        throw error;
      }
    } else {
      const home = options.home ?? shellwireHome(env);
      await verifyHostKey({
        knownHostsFile: options.home ? join(home, 'known_hosts') : knownHostsPath(env),
        hostKey: label,
        fingerprint,
        policy: options.hostKeyPolicy ?? 'strict',
        ...(options.confirmHost ? { confirm: options.confirmHost } : {}),
        ...(options.onHostKeyAdded ? { onAdded: options.onHostKeyAdded } : {}),
      });
    }
    debug?.(`host key accepted (${options.fingerprint !== undefined ? 'the pinned fingerprint' : `known_hosts, policy ${options.hostKeyPolicy ?? 'strict'}`})`);
    const hello: Hello = {
      magic: PROTOCOL_MAGIC,
      versions: [...SUPPORTED_VERSIONS],
      features: [...FEATURES],
      client: CLIENT_SOFTWARE,
      auth: await authAttempts(socket, user, credentials, options.debug),
    };
    if (explicitUser !== undefined) hello.user = explicitUser;
    if (debug) {
      debug(`offering ${hello.auth.length} credential(s), the server takes the first that works:`);
      for (const [i, attempt] of hello.auth.entries()) debug(`  ${i + 1}. ${describeAttempt(attempt, credentials, options, env)}`);
    }
    const connection = await handshake(socket, hello, label, timeoutMs, options.signal, (welcome, conn) => new Connection(conn, welcome, label, options));
    const welcome = connection.server;
    debug?.(`authenticated as ${welcome.user} on ${welcome.hostname} (${welcome.server}, protocol ${welcome.version})`);
    return connection;
  } catch (err) {
    debug?.(`failed: ${describeFailure(err)}`);
    socket.destroy();
    throw err;
  }
}

/** One offered credential for `-v`: the method, the user, where it came from; never the secret. */
function describeAttempt(attempt: AuthRequest, credentials: Credentials, options: ConnectOptions, env: NodeJS.ProcessEnv): string {
  if (attempt.method === 'publickey') {
    const [type, blob] = attempt.publicKey.split(' ');
    const fingerprint = blob ? `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}` : '?';
    const source = credentials.keys.find((key) => key.publicKey.fingerprint === fingerprint)?.source;
    return `publickey ${type} ${fingerprint} for user ${attempt.user}${source !== undefined ? ` (${source})` : ''}`;
  }
  if (attempt.method === 'password') return `password for user ${attempt.user}`;
  if (attempt.method === 'token') {
    if (credentials.localToken !== null && attempt.token === credentials.localToken && !credentials.tokens.includes(attempt.token)) {
      return 'token of the daemon on this machine (its state dir)';
    }
    return `token from ${options.token !== undefined ? 'the token option' : options.tokenFile !== undefined ? options.tokenFile : env.SHELLWIRE_TOKEN ? '$SHELLWIRE_TOKEN' : 'the caller'}`;
  }
  return (attempt as { method: string }).method;
}

/** An error and its causes on one line, for `-v`: the OS error code says more than the message. */
function describeFailure(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    parts.push(`${typeof code === 'string' ? `${code}: ` : ''}${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  return parts.join(' ← ');
}

/**
 * The HELLO's auth list: explicit tokens first (the caller chose them), then keys, then a
 * password, then a token found on this machine. Each key signs this TLS session's exporter
 * value, so a signature is worthless on any other connection. A HELLO carries at most
 * MAX_AUTH_ATTEMPTS: the keys get the slots the other credentials leave, in their order
 * (see credentials.ts), so a local token or a password is never crowded out by an agent
 * full of keys; the keys left over are named, so the user can pick one with -i.
 */
async function authAttempts(socket: TLSSocket, user: string, credentials: Credentials, debug?: (message: string) => void): Promise<AuthRequest[]> {
  const attempts: AuthRequest[] = credentials.tokens.map((token) => ({ method: 'token', token }));
  const others = attempts.length + (credentials.password !== null ? 1 : 0) + (credentials.localToken !== null ? 1 : 0);
  const slots = Math.max(0, MAX_AUTH_ATTEMPTS - others);
  const offered = credentials.keys.slice(0, slots);
  for (const key of credentials.keys.slice(slots)) {
    const why = `${key.source} (${key.publicKey.fingerprint}): a login carries at most ${MAX_AUTH_ATTEMPTS} credentials; pick this key with -i`;
    credentials.notes.push(why);
    debug?.(`not offering ${why}`);
  }
  if (offered.length > 0) {
    const exporter = socket.exportKeyingMaterial(AUTH_EXPORTER_LENGTH, AUTH_EXPORTER_LABEL, Buffer.alloc(0));
    const signed = await Promise.allSettled(offered.map((key) => key.sign(authSignedData(user, key.publicKey, exporter))));
    signed.forEach((result, i) => {
      const key = offered[i]!;
      if (result.status === 'rejected') {
        credentials.notes.push((result.reason as Error).message);
        debug?.(`not offering ${key.source}: ${(result.reason as Error).message}`);
        return;
      }
      debug?.(`offering ${key.publicKey.type} key ${key.publicKey.fingerprint} from ${key.source} as ${user}`);
      attempts.push({ method: 'publickey', user, publicKey: key.publicKey.line, algorithm: result.value.algorithm, signature: result.value.signature.toString('base64') });
    });
  }
  if (credentials.password !== null) attempts.push({ method: 'password', user, password: credentials.password });
  if (credentials.localToken !== null) attempts.push({ method: 'token', token: credentials.localToken });
  if (attempts.length === 0) throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `No usable credentials: ${credentials.notes.join('; ')}.`);
  return attempts.slice(0, MAX_AUTH_ATTEMPTS);
}

let cachedUserName: string | null = null;

function localUserName(): string {
  cachedUserName ??= userInfo().username;
  return cachedUserName;
}

/**
 * Send HELLO in one write; wait for WELCOME, or turn GOODBYE into the matching error. The
 * frame reader is the connection's own, started before HELLO: on WELCOME `adopt` takes it
 * over at once, so frames that arrive in the same chunk as WELCOME reach the connection
 * (they used to be dropped with the handshake's decoder). The abort signal counts here too:
 * a daemon that froze after TLS must not hold an aborted connect until the timeout.
 */
function handshake(
  socket: TLSSocket, hello: Hello, label: string, timeoutMs: number, signal: AbortSignal | undefined,
  adopt: (welcome: Welcome, conn: FrameConnection) => Connection,
): Promise<Connection> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | null, connection?: Connection) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) {
        conn.destroy();
        reject(error);
      } else resolve(connection!);
    };
    const onFrame = (frame: Frame) => {
      if (settled) return;
      try {
        if (frame.type === FrameType.WELCOME) {
          // Synchronously: the rest of this chunk is decoded for the connection.
          finish(null, adopt(decodeWelcome(frame.payload), conn));
        } else if (frame.type === FrameType.GOODBYE) {
          const { code, message } = decodeCodeMessage(FrameType.GOODBYE, frame.payload);
          finish(goodbyeError(code, message, label));
        } else {
          finish(new ProtocolError(ErrorCode.BAD_MESSAGE, `${label} sent ${frameTypeName(frame.type)} before WELCOME.`, { host: label }));
        }
      } catch (err) {
        finish(err as Error);
      }
    };
    const onClose = (error: ShellwireError | null) => {
      // The decoder's verdicts (oversized frame, bad header) stand; a frame cut off by the
      // close is, as before, the peer closing during the handshake.
      if (error instanceof ProtocolError && error.code !== ErrorCode.FRAME_TRUNCATED) return finish(error);
      const cause = error instanceof ConnectionError ? error.cause : undefined;
      if (cause instanceof Error) {
        // A broken NATS tunnel keeps its code (SW_ERR_TUNNEL_BROKEN, docs/nats.md): it is why.
        const code = cause instanceof ShellwireError && cause.code === ErrorCode.TUNNEL_BROKEN ? ErrorCode.TUNNEL_BROKEN : ErrorCode.CONNECTION_CLOSED;
        finish(new ConnectionError(code, `Connection to ${label} failed during the handshake: ${cause.message}`, { host: label, cause }));
      } else {
        finish(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `${label} closed the connection during the handshake.`, { host: label }));
      }
    };
    // Not authenticated: PING/PONG/GOODBYE come to `onFrame`, which accepts WELCOME or GOODBYE.
    const conn = new FrameConnection(socket, { onFrame, onClose }, { maxPayload: PREAUTH_MAX_PAYLOAD, peer: label, authenticated: false });
    const timer = setTimeout(() => finish(new ConnectionError(ErrorCode.HANDSHAKE_TIMEOUT, `${label} did not answer HELLO within ${timeoutMs} ms.`, { host: label })), timeoutMs);
    const onAbort = () => finish(abortedConnect(label));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) return onAbort();
    socket.write(encodeFrame(FrameType.HELLO, 0, encodeHello(hello)));
  });
}

/** `signal` aborted the connection attempt (before it started or in flight). */
export function abortedConnect(label: string): ConnectionError {
  return new ConnectionError(ErrorCode.CONNECT_FAILED, `Connecting to ${label} was aborted.`, { host: label });
}

export function goodbyeError(code: string, message: string, label: string): ShellwireError {
  const text = `${label}: ${message}`;
  if (code === ErrorCode.AUTH_FAILED) return new AuthenticationError(ErrorCode.AUTH_FAILED, text, { host: label, hint: "Check the user (USER@host or the user option), the identity option's key, or the token (token, tokenFile or SHELLWIRE_TOKEN)." });
  if (code === ErrorCode.LOCKED_OUT) return new AuthenticationError(ErrorCode.LOCKED_OUT, text, { host: label, hint: 'Wait, then try again with the right credentials.' });
  if (code === ErrorCode.TOO_MANY_CONNECTIONS || code === ErrorCode.SERVER_SHUTTING_DOWN) return new ConnectionError(code, text, { host: label });
  const known = parseErrorCode(code);
  if (known) return new ProtocolError(known, text, { host: label });
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `${text} (code ${code})`, { host: label });
}
