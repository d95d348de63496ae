/**
 * `connect()`: TCP, TLS 1.3, host-key pinning, then the HELLO/WELCOME handshake.
 * The token is sent only after the server's key matched known_hosts (or the caller's
 * pinned fingerprint), so an impostor never sees it.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { FrameDecoder, FrameType, encodeFrame, frameTypeName, PREAUTH_MAX_PAYLOAD, type Frame } from '../protocol/frame.js';
import {
  decodeCodeMessage, decodeWelcome, encodeJson, FEATURES, MAX_AUTH_ATTEMPTS, PROTOCOL_MAGIC, SUPPORTED_VERSIONS, type AuthRequest, type Hello, type Welcome,
} from '../protocol/messages.js';
import {
  AuthenticationError, ConnectionError, ErrorCode, HostVerificationError, ProtocolError, ShellwireError,
} from '../errors.js';
import { TLS_CIPHERS, TLS_MIN_VERSION, ALPN_PROTOCOL, fingerprintOfCertificate } from '../transport/tls.js';
import { verifyHostKey, type HostKeyPolicy } from '../auth/known-hosts.js';
import { knownHostsPath, shellwireHome } from '../auth/paths.js';
import { join } from 'node:path';
import { parseTarget, formatTarget, type Target } from './target.js';
import { resolveCredentials, type Credentials } from './credentials.js';
import { authSignedData, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../auth/ssh-key.js';
import { userInfo } from 'node:os';
import { Connection, type ConnectionOptions } from './connection.js';

export const CLIENT_SOFTWARE = 'shellwire/0.1.0';
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface ConnectOptions extends ConnectionOptions {
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
  /** Told what is being tried and why something is skipped (the CLI's `-v`). */
  debug?: (message: string) => void;
  /** Password login (the daemon must allow it). */
  password?: string;
  /** shellwire user to log in as (`USER@` in the target wins); default: the local user name. */
  user?: string;
  /** `$SHELLWIRE_HOME` (known_hosts, the default key and the local daemon's token live there); default from the environment. */
  home?: string;
  /** What to do with a host not in known_hosts. Default 'strict'. */
  hostKeyPolicy?: HostKeyPolicy;
  /** Asked about unknown hosts when `hostKeyPolicy` is 'ask'. */
  confirmHost?: (host: string, fingerprint: string) => Promise<boolean>;
  /** Expected `SHA256:…` fingerprint; when given, known_hosts is neither read nor written. */
  fingerprint?: string;
  connectTimeoutMs?: number;
  /** Abort the connection attempt. */
  signal?: AbortSignal;
  /** Environment to read SHELLWIRE_* from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Connect to `target` (`HOST[:PORT]`, `[::1]:PORT`, or a parsed target) and authenticate. */
export async function connect(target: string | Target, options: ConnectOptions = {}): Promise<Connection> {
  const parsed = typeof target === 'string' ? parseTarget(target) : target;
  const label = formatTarget(parsed);
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

/** Tell, on a failed login, which credentials were not offered and why (agent down, key skipped). */
function withNotes(err: unknown, notes: string[]): unknown {
  if (err instanceof AuthenticationError && notes.length > 0) err.message += ` Not offered: ${notes.join('; ')}.`;
  return err;
}

/** One connection attempt with one set of credentials. */
async function connectWith(parsed: Target, label: string, options: ConnectOptions, explicitUser: string | undefined, credentials: Credentials): Promise<Connection> {
  const env = options.env ?? process.env;
  const user = explicitUser ?? (env.USER || localUserName());
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  const socket = await openTls(parsed, label, timeoutMs, options.signal);
  try {
    const cert = socket.getPeerX509Certificate();
    if (!cert) throw new HostVerificationError(ErrorCode.TLS, `${label} presented no certificate.`, { host: label });
    const fingerprint = fingerprintOfCertificate(cert.raw);
    if (options.fingerprint !== undefined) {
      if (options.fingerprint !== fingerprint) {
        const error = new HostVerificationError(ErrorCode.HOST_KEY_CHANGED, `${label} presented ${fingerprint}, expected ${options.fingerprint}. Refusing to connect.`, { host: label });
        error.fingerprint = fingerprint;
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
      });
    }
    const hello: Hello = {
      magic: PROTOCOL_MAGIC,
      versions: [...SUPPORTED_VERSIONS],
      features: [...FEATURES],
      client: CLIENT_SOFTWARE,
      auth: await authAttempts(socket, user, credentials, options.debug),
    };
    if (explicitUser !== undefined) hello.user = explicitUser;
    const welcome = await handshake(socket, hello, label, timeoutMs, options.signal);
    return new Connection(socket, welcome, label, options);
  } catch (err) {
    socket.destroy();
    throw err;
  }
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

let sharedContext: SecureContext | null = null;
let cachedUserName: string | null = null;

/** One TLS context for every connection: making one costs ~0.1 ms, which adds up over a fleet. */
function clientSecureContext(): SecureContext {
  sharedContext ??= createSecureContext({ minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS });
  return sharedContext;
}

function localUserName(): string {
  cachedUserName ??= userInfo().username;
  return cachedUserName;
}

function openTls(target: Target, label: string, timeoutMs: number, signal?: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // TCP_NODELAY from the first byte: Nagle + delayed ACK would add ~40 ms per handshake step.
    const tcp = netConnect({ host: target.host, port: target.port, noDelay: true });
    const socket = tlsConnect({
      socket: tcp,
      servername: /^[0-9.:]+$/.test(target.host) ? '' : target.host,
      secureContext: clientSecureContext(),
      ALPNProtocols: [ALPN_PROTOCOL],
      // The certificate is self-signed; trust comes from the pinned fingerprint checked next.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Timed out after ${timeoutMs} ms connecting to ${label}; is the host up and the port open?`, { host: label })), timeoutMs);
    const onAbort = () => fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connecting to ${label} was aborted.`, { host: label }));
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      tcp.removeListener('error', onError);
      socket.removeListener('error', onError);
    };
    function fail(error: ShellwireError) {
      cleanup();
      socket.destroy();
      tcp.destroy();
      reject(error);
    }
    function onError(err: NodeJS.ErrnoException) {
      if (err.code === 'ECONNREFUSED') {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connection refused by ${label}; is \`shellwire serve\` running there, on that port?`, { host: label, cause: err }));
      } else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Cannot resolve host name "${target.host}".`, { host: label, cause: err }));
      } else if (err.code && /^(ECONN|EHOST|ENET|ETIMEDOUT|EPIPE|EADDR)/.test(err.code)) {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Cannot connect to ${label}: ${err.message}.`, { host: label, cause: err }));
      } else {
        fail(new HostVerificationError(ErrorCode.TLS, `TLS handshake with ${label} failed: ${err.message}. Is it a shellwire daemon?`, { host: label, cause: err }));
      }
    }
    tcp.on('error', onError);
    socket.on('error', onError);
    socket.once('secureConnect', () => {
      cleanup();
      resolve(socket);
    });
    if (signal?.aborted) onAbort();
  });
}

/**
 * Send HELLO in one write; wait for WELCOME, or turn GOODBYE into the matching error. The
 * abort signal counts here too: a daemon that froze after TLS must not hold an aborted
 * connect until the timeout.
 */
function handshake(socket: TLSSocket, hello: Hello, label: string, timeoutMs: number, signal?: AbortSignal): Promise<Welcome> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | null, welcome?: Welcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
      if (error) reject(error);
      else resolve(welcome!);
    };
    const decoder = new FrameDecoder((frame: Frame) => {
      if (settled) return;
      if (frame.type === FrameType.WELCOME) {
        const welcome = decodeWelcome(frame.payload);
        finish(null, welcome);
        // Bytes after WELCOME in the same chunk belong to the connection; v1 servers
        // send nothing unasked, so there are none to hand over.
      } else if (frame.type === FrameType.GOODBYE) {
        const { code, message } = decodeCodeMessage(FrameType.GOODBYE, frame.payload);
        finish(goodbyeError(code, message, label));
      } else {
        finish(new ProtocolError(ErrorCode.BAD_MESSAGE, `${label} sent ${frameTypeName(frame.type)} before WELCOME.`, { host: label }));
      }
    }, { maxPayload: PREAUTH_MAX_PAYLOAD });
    const onData = (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        finish(err as Error);
      }
    };
    const onClose = () => finish(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `${label} closed the connection during the handshake.`, { host: label }));
    const onError = (err: Error) => finish(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `Connection to ${label} failed during the handshake: ${err.message}`, { host: label, cause: err }));
    const timer = setTimeout(() => finish(new ConnectionError(ErrorCode.HANDSHAKE_TIMEOUT, `${label} did not answer HELLO within ${timeoutMs} ms.`, { host: label })), timeoutMs);
    const onAbort = () => finish(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connecting to ${label} was aborted.`, { host: label }));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) return onAbort();
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.write(encodeFrame(FrameType.HELLO, 0, encodeJson(hello)));
  });
}

export function goodbyeError(code: string, message: string, label: string): ShellwireError {
  const text = `${label}: ${message}`;
  if (code === ErrorCode.AUTH_FAILED) return new AuthenticationError(ErrorCode.AUTH_FAILED, `${text} Check the user, key (-i) or token (--token-file or SHELLWIRE_TOKEN).`, { host: label });
  if (code === ErrorCode.LOCKED_OUT) return new AuthenticationError(ErrorCode.LOCKED_OUT, `${text} Wait, then try again with the right credentials.`, { host: label });
  if (code === ErrorCode.TOO_MANY_CONNECTIONS || code === ErrorCode.SERVER_SHUTTING_DOWN) return new ConnectionError(code, text, { host: label });
  if (Object.values(ErrorCode).includes(code as ErrorCode)) return new ProtocolError(code as ErrorCode, text, { host: label });
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `${text} (code ${code})`, { host: label });
}
