/**
 * Every error shellwire raises is a `ShellwireError` with a stable `code`
 * (listed in docs/errors.md). Subclasses carry the context an operator needs
 * to act: the host, the channel, the command.
 */

export const ErrorCode = {
  // protocol (peer sent something we cannot accept)
  FRAME_TOO_LARGE: 'SW_ERR_FRAME_TOO_LARGE',
  FRAME_TRUNCATED: 'SW_ERR_FRAME_TRUNCATED',
  UNKNOWN_FRAME_TYPE: 'SW_ERR_UNKNOWN_FRAME_TYPE',
  BAD_MESSAGE: 'SW_ERR_BAD_MESSAGE',
  BAD_MAGIC: 'SW_ERR_BAD_MAGIC',
  VERSION_MISMATCH: 'SW_ERR_VERSION_MISMATCH',
  NOT_AUTHENTICATED: 'SW_ERR_NOT_AUTHENTICATED',
  UNKNOWN_CHANNEL: 'SW_ERR_UNKNOWN_CHANNEL',
  CHANNEL_IN_USE: 'SW_ERR_CHANNEL_IN_USE',
  WINDOW_OVERRUN: 'SW_ERR_WINDOW_OVERRUN',
  HANDSHAKE_TIMEOUT: 'SW_ERR_HANDSHAKE_TIMEOUT',
  KEEPALIVE_TIMEOUT: 'SW_ERR_KEEPALIVE_TIMEOUT',
  TOO_MANY_CHANNELS: 'SW_ERR_TOO_MANY_CHANNELS',
  TOO_MANY_CONNECTIONS: 'SW_ERR_TOO_MANY_CONNECTIONS',
  SERVER_SHUTTING_DOWN: 'SW_ERR_SERVER_SHUTTING_DOWN',
  // connection / security
  CONNECT_FAILED: 'SW_ERR_CONNECT_FAILED',
  CONNECTION_CLOSED: 'SW_ERR_CONNECTION_CLOSED',
  TLS: 'SW_ERR_TLS',
  NOT_SHELLWIRE: 'SW_ERR_NOT_SHELLWIRE',
  HOST_KEY_UNKNOWN: 'SW_ERR_HOST_KEY_UNKNOWN',
  HOST_KEY_CHANGED: 'SW_ERR_HOST_KEY_CHANGED',
  AUTH_FAILED: 'SW_ERR_AUTH_FAILED',
  NO_CREDENTIALS: 'SW_ERR_NO_CREDENTIALS',
  TUNNEL_BROKEN: 'SW_ERR_TUNNEL_BROKEN',
  NATS_UNAVAILABLE: 'SW_ERR_NATS_UNAVAILABLE',
  // commands
  COMMAND_FAILED: 'SW_ERR_COMMAND_FAILED',
  COMMAND_TIMED_OUT: 'SW_ERR_COMMAND_TIMED_OUT',
  COMMAND_CANCELED: 'SW_ERR_COMMAND_CANCELED',
  MAX_BUFFER: 'SW_ERR_MAX_BUFFER',
  SPAWN_FAILED: 'SW_ERR_SPAWN_FAILED',
  SPAWNER: 'SW_ERR_SPAWNER',
  BAD_REQUEST: 'SW_ERR_BAD_REQUEST',
  // files
  SOURCE_CHANGED: 'SW_ERR_SOURCE_CHANGED',
  INTEGRITY: 'SW_ERR_INTEGRITY',
  LOCAL_IO: 'SW_ERR_LOCAL_IO',
  // local usage
  BAD_TARGET: 'SW_ERR_BAD_TARGET',
  BAD_KEY: 'SW_ERR_BAD_KEY',
  BAD_CONFIG: 'SW_ERR_BAD_CONFIG',
  BAD_INVENTORY: 'SW_ERR_BAD_INVENTORY',
  NO_HOSTS_MATCHED: 'SW_ERR_NO_HOSTS_MATCHED',
  // policy
  DENIED: 'SW_ERR_DENIED',
  LOCKED_OUT: 'SW_ERR_LOCKED_OUT',
  STATE_DIR: 'SW_ERR_STATE_DIR',
  AUDIT_UNAVAILABLE: 'SW_ERR_AUDIT_UNAVAILABLE',
  // broadcast over NATS (docs/nats.md, "Broadcast")
  REPLAYED: 'SW_ERR_REPLAYED',
  REQUEST_EXPIRED: 'SW_ERR_REQUEST_EXPIRED',
  MISSING_DEPENDENCY: 'SW_ERR_MISSING_DEPENDENCY',
  NO_RECORDING: 'SW_ERR_NO_RECORDING',
  // a bug in shellwire: a failure that is not a ShellwireError
  INTERNAL: 'SW_ERR_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** A code from an untyped source (the wire, a log): the `ErrorCode` it names, or undefined when this version does not define it. */
export function parseErrorCode(value: unknown): ErrorCode | undefined {
  return typeof value === 'string' && KNOWN_CODES.has(value) ? (value as ErrorCode) : undefined;
}

/**
 * The one reading of a code a peer sent (OPEN_FAIL, EXIT.error, GOODBYE): a code this version
 * does not define becomes `fallback`. v1 daemons before SW_ERR_INTEGRITY reported a SHA-256
 * mismatch as SW_ERR_BAD_REQUEST with `errno: 'EINTEGRITY'`; that pair is read as SW_ERR_INTEGRITY
 * (docs/protocol.md, "Error codes on the wire").
 */
export function remoteErrorCode(value: unknown, fallback: ErrorCode, errno?: unknown): ErrorCode {
  const code = parseErrorCode(value) ?? fallback;
  return code === ErrorCode.BAD_REQUEST && errno === 'EINTEGRITY' ? ErrorCode.INTEGRITY : code;
}

export interface ErrorContext {
  host?: string;
  channel?: number;
  command?: string;
}

export class ShellwireError extends Error {
  override name = 'ShellwireError';
  readonly code: ErrorCode;
  /** What happened, without advice: `message` is `reason`, then `hint` when there is one. */
  reason: string;
  /** What a library caller can do about it, in the library's terms (its options); absent when nothing useful applies. */
  readonly hint?: string;
  host?: string;
  channel?: number;
  command?: string;

  constructor(code: ErrorCode, reason: string, context: ErrorContext & { cause?: unknown; hint?: string } = {}) {
    super(context.hint ? `${reason}${/\n/.test(reason) ? '\n' : ' '}${context.hint}` : reason, context.cause === undefined ? undefined : { cause: context.cause });
    this.reason = reason;
    if (context.hint) this.hint = context.hint;
    this.code = code;
    if (context.host !== undefined) this.host = context.host;
    if (context.channel !== undefined) this.channel = context.channel;
    if (context.command !== undefined) this.command = context.command;
  }
}

/** The peer broke the protocol: bad bytes, bad sequence, window overrun. Fatal to the connection. */
export class ProtocolError extends ShellwireError {
  override name = 'ProtocolError';
}

/** Could not reach the host, or the connection died. */
export class ConnectionError extends ShellwireError {
  override name = 'ConnectionError';
}

/** TLS failed, or the server's certificate fingerprint is unknown or changed. */
export class HostVerificationError extends ShellwireError {
  override name = 'HostVerificationError';
  /** SHA-256 fingerprint the server presented, `SHA256:base64`. */
  fingerprint?: string;
  /** SW_ERR_HOST_KEY_CHANGED: the fingerprint that was pinned for the host (known_hosts or the `fingerprint` option). */
  pinned?: string;
  /** The fingerprint the server presented: another name for `fingerprint`, beside `pinned`. */
  get presented(): string | undefined {
    return this.fingerprint;
  }
  /** The known_hosts file that was consulted (not set when a `fingerprint` option was given). */
  knownHostsFile?: string;
  /** SW_ERR_HOST_KEY_CHANGED: the 1-based line of the pin that did not match (ssh's "Offending key"). */
  line?: number;
  /** SW_ERR_HOST_KEY_UNKNOWN: the host was asked about (`confirmHost`) and the answer was no. */
  declined?: boolean;
}

/** The server refused our credentials, or we had none to offer. */
export class AuthenticationError extends ShellwireError {
  override name = 'AuthenticationError';
}

/** A request the server refused (bad parameters, limits, spawn failure). */
export class RequestError extends ShellwireError {
  override name = 'RequestError';
}

/** Local misuse: bad target syntax, unusable state dir. */
export class UsageError extends ShellwireError {
  override name = 'UsageError';
}

/** A local file or directory could not be read or written (SW_ERR_LOCAL_IO); `errno` is the system's code. */
export class LocalIoError extends ShellwireError {
  override name = 'LocalIoError';
  /** The system error code (ENOENT, EACCES, EIO, …), when a system call failed. */
  errno?: string;
  /** The local path the error is about. */
  path?: string;

  constructor(message: string, context: { errno?: string | undefined; path?: string; cause?: unknown } = {}) {
    super(ErrorCode.LOCAL_IO, message, context.cause !== undefined ? { cause: context.cause } : {});
    if (context.errno) this.errno = context.errno;
    if (context.path !== undefined) this.path = context.path;
  }
}

/**
 * The system's error code (ENOENT, EIO, …) of a failed local operation: `errno` of a
 * `LocalIoError`, `code` of a Node.js system error; undefined for anything else.
 */
export function errnoOf(err: unknown): string | undefined {
  if (err instanceof LocalIoError) return err.errno;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !code.startsWith('SW_ERR_') ? code : undefined;
}

/** A file operation that failed: refused by the daemon, a local I/O error, an integrity failure. */
export class FileTransferError extends RequestError {
  override name = 'FileTransferError';
  /** The system error code (ENOENT, EACCES, ENOSPC, …); EINTEGRITY for a SHA-256 mismatch. */
  errno?: string;
  /** The path the error is about (remote or local). */
  path?: string;

  constructor(code: ErrorCode, message: string, context: { host?: string; errno?: string | undefined; path?: string; cause?: unknown } = {}) {
    super(code, message, { ...(context.host ? { host: context.host } : {}), ...(context.cause !== undefined ? { cause: context.cause } : {}) });
    if (context.errno) this.errno = context.errno;
    if (context.path !== undefined) this.path = context.path;
  }
}

/** Result of a finished remote command; also the shape of `CommandError`. */
export interface CommandResult {
  command: string;
  host: string;
  exitCode: number | null;
  signal: string | null;
  /** Output decoded as UTF-8; `stdoutBytes` has the exact bytes. */
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
  durationMs: number;
  timedOut: boolean;
  canceled: boolean;
  /** Session commands: the working directory afterwards. */
  cwd?: string;
}

/**
 * A remote command that failed (non-zero exit, signal, timeout, cancel, maxBuffer).
 * Shaped like `CommandResult` so callers can read output the same way (execa-style).
 */
export class CommandError extends ShellwireError implements CommandResult {
  override name = 'CommandError';
  declare command: string;
  declare host: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
  durationMs: number;
  timedOut: boolean;
  canceled: boolean;
  cwd?: string;

  constructor(code: ErrorCode, message: string, result: CommandResult, cause?: unknown) {
    super(code, message, { host: result.host, command: result.command, cause });
    this.exitCode = result.exitCode;
    this.signal = result.signal;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.stdoutBytes = result.stdoutBytes;
    this.stderrBytes = result.stderrBytes;
    if (result.cwd !== undefined) this.cwd = result.cwd;
    this.durationMs = result.durationMs;
    this.timedOut = result.timedOut;
    this.canceled = result.canceled;
  }
}
