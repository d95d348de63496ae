/**
 * Control message payloads of protocol v1 (docs/protocol.md §3–4). Pure.
 *
 * Control payloads are UTF-8 JSON objects, small and checked field by field here;
 * data payloads (STDIN/STDOUT/STDERR) are raw bytes and WINDOW is a u32, because those
 * are the hot path.
 */
import { ErrorCode, ProtocolError } from '../errors.js';
import { FrameType } from './frame.js';
import { OsBytesError, encodeOsBytes } from './os-bytes.js';
import { encodeJson, fieldReaders, malformed, parseJsonObject, type Json } from './fields.js';
import { decodeFileRequest, type FileExitStatus, type FileOpenOk, type FileRequest } from './file-messages.js';

export const PROTOCOL_MAGIC = 'shellwire';
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];
/** Features this build understands; peers use the intersection. */
export const FEATURES = ['exec', 'session', 'signal', 'window', 'keepalive'] as const;

/** One way to prove who we are; a HELLO carries up to MAX_AUTH_ATTEMPTS, tried in order. */
export type AuthRequest =
  | { method: 'token'; token: string }
  /**
   * Signature (base64, SSH encoding) over the user, the key and a TLS exporter value, made with
   * `algorithm` (default: the key's type; RSA must say rsa-sha2-256 or rsa-sha2-512) (docs/protocol.md §3.2).
   */
  | { method: 'publickey'; user?: string; publicKey: string; algorithm?: string; signature: string }
  | { method: 'password'; user?: string; password: string }
  | { method: 'none' };

export const MAX_AUTH_ATTEMPTS = 4;

// HELLO (client → server), channel 0
export interface Hello {
  magic: typeof PROTOCOL_MAGIC;
  versions: number[];
  features: string[];
  client: string;
  /** The shellwire user the client explicitly asks for (`USER@`); attempts may name one too. */
  user?: string;
  auth: AuthRequest[];
}

// WELCOME (server → client), channel 0
export interface Welcome {
  version: number;
  features: string[];
  server: string;
  hostname: string;
  user: string;
  /** Largest payload the server accepts from now on. */
  maxPayload: number;
  maxChannels: number;
  /** How often the server pings; the client may ping too. */
  keepaliveMs: number;
}

// GOODBYE (either way), channel 0: the connection ends after it
export interface Goodbye {
  code: string;
  message: string;
}

/** The longest `pty.term` an OPEN may name (§6.5). */
export const MAX_TERM_BYTES = 256;

/** Channel kinds of v1. A daemon may serve others (`OtherOpen`); their handlers validate their own `params`. */
export type ChannelKind = 'exec' | 'session' | 'file' | (string & {});

// OPEN (client → server), channel = the id the client chose. On the wire one flat JSON
// object (docs/protocol.md §4.4): the header fields and the kind's parameters side by side.

/** What every OPEN carries, whatever its kind. */
export interface OpenHeader {
  kind: ChannelKind;
  /** Bytes of STDOUT+STDERR the client accepts before it sends WINDOW. */
  window: number;
  /** Largest data payload the client wants in one frame. */
  maxPacket: number;
  /**
   * Client → gateway: the inventory host this channel is relayed to (docs/protocol.md
   * "Gateway"). A daemon refuses an OPEN that carries it.
   */
  host?: string;
  /**
   * Client → gateway, file put only: the inventory hosts one upload goes to (docs/protocol.md
   * "Gateway", put to many hosts), instead of `host`. A daemon refuses an OPEN that carries it.
   */
  hosts?: string[];
  /**
   * Gateway → host: the host user the channel runs as and the operator it runs for. The
   * host accepts it only from a principal whose `actAs` names `user`.
   */
  onBehalfOf?: OnBehalfOf;
}

/** Whose channel a gateway opens on a host: the host user it acts as, and the gateway's operator. */
export interface OnBehalfOf {
  user: string;
  operator: string;
}

/** The longest `host`, `onBehalfOf.user` and `onBehalfOf.operator` an OPEN may carry (UTF-8 bytes). */
export const MAX_GATEWAY_NAME_BYTES = 255;
/** The most hosts one OPEN's `hosts` may name. */
export const MAX_GATEWAY_HOSTS = 10_000;

/** An exec channel's parameters (§6). */
export interface ExecParams {
  /** A command line for /bin/sh -c. */
  command?: string;
  /** An argv run without a shell. */
  argv?: string[];
  /** Run in a pseudo-terminal (stdout and stderr merged, RESIZE accepted). */
  pty?: PtyRequest;
  env?: Record<string, string>;
  cwd?: string;
  /** The server kills the command (TERM, then KILL) after this many ms. */
  timeoutMs?: number;
  /** Run inside this session channel's cwd and environment, and update them after. */
  session?: number;
}

/** A session channel's parameters (§7): the state its commands start from. */
export interface SessionParams {
  env?: Record<string, string>;
  cwd?: string;
}

export interface ExecOpen extends OpenHeader {
  kind: 'exec';
  params: ExecParams;
}

export interface SessionOpen extends OpenHeader {
  kind: 'session';
  params: SessionParams;
}

/** A file channel (§7.1): its op and the op's fields, checked by file-messages.ts. */
export interface FileOpen extends OpenHeader {
  kind: 'file';
  params: FileRequest;
}

/** A kind v1 does not define (a daemon's embedder may serve it): its fields, unchecked beyond §4.4. */
export interface OtherOpen extends OpenHeader {
  params: Json;
}

/**
 * A decoded OPEN: the header, and the parameters of its kind. Narrow with `isOpenOf` (a
 * comparison of `kind` alone cannot rule out `OtherOpen`, whose kind is any other name).
 */
export type OpenRequest = ExecOpen | SessionOpen | FileOpen | OtherOpen;

/** The kinds v1 defines, whose parameters the decoder types. */
export type KnownKind = (ExecOpen | SessionOpen | FileOpen)['kind'];
/** The OPEN of one of v1's kinds: `OpenOf<'exec'>` is `ExecOpen`. */
export type OpenOf<K extends KnownKind> = Extract<ExecOpen | SessionOpen | FileOpen, { kind: K }>;

/** True when `request` is an OPEN of `kind` (the decoder gives v1's kinds their typed parameters). */
export function isOpenOf<K extends KnownKind>(request: OpenRequest, kind: K): request is OpenOf<K> {
  return request.kind === kind;
}

export interface PtyRequest {
  term: string;
  cols: number;
  rows: number;
}

// OPEN_OK (server → client)
export interface OpenOk {
  /** Bytes of STDIN the server accepts before it sends WINDOW. */
  window: number;
  maxPacket: number;
  pid?: number;
  cwd?: string;
}

// OPEN_FAIL (server → client): the channel id is free again
export interface OpenFail {
  code: string;
  message: string;
}

// SIGNAL (client → server)
export interface SignalRequest {
  signal: string;
}

// EXIT (server → client): all STDOUT/STDERR frames came before it
export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Session commands: the working directory after the command. */
  cwd?: string;
  /** Set when the command could not start; exitCode is then 127 or 126. */
  error?: { code: string; message: string };
}

export interface Resize {
  cols: number;
  rows: number;
}

export const ALLOWED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTSTP', 'SIGCONT', 'SIGWINCH'] as const;

export { encodeJson };

// Encoders, one per control message, typed like what its decoder returns: a sender cannot
// put a field on the wire that the receiver's decoder does not know the shape of. File
// channels add their fields to OPEN (FileRequest), OPEN_OK (FileOpenOk), OPEN_FAIL (errno)
// and EXIT (FileExitStatus), as file-messages.ts defines them.

/** OPEN_OK of an exec or session channel, or of a file channel. */
export type OpenOkMessage = OpenOk | FileOpenOk;
/** EXIT of an exec channel, or of a file channel. */
export type ExitMessage = ExitStatus | FileExitStatus;
/** OPEN_FAIL's fields beyond code and message: a file channel's errno. */
export interface OpenFailExtra {
  errno?: string;
}

export function encodeHello(hello: Hello): Buffer {
  return encodeJson(hello);
}

export function encodeWelcome(welcome: Welcome): Buffer {
  return encodeJson(welcome);
}

/** GOODBYE, and OPEN_FAIL with the kind's extra fields (e.g. a file channel's `errno`). */
export function encodeCodeMessage(code: string, message: string, extra: OpenFailExtra = {}): Buffer {
  return encodeJson({ code, message, ...extra });
}

/** OPEN: one flat object, the header first (as §4.4 shows it), then the kind's parameters. */
export function encodeOpen(open: OpenRequest): Buffer {
  const { kind, window, maxPacket, host, hosts, onBehalfOf, params } = open;
  const header = {
    kind, window, maxPacket,
    ...(host !== undefined ? { host } : {}),
    ...(hosts !== undefined ? { hosts: [...hosts] } : {}),
    ...(onBehalfOf !== undefined ? { onBehalfOf: { user: onBehalfOf.user, operator: onBehalfOf.operator } } : {}),
  };
  // Header keys first; a parameter of the same name cannot replace them.
  return encodeJson(Object.assign({ ...header }, params, header));
}

export function encodeOpenOk(ok: OpenOkMessage): Buffer {
  return encodeJson(ok);
}

export function encodeSignal(signal: SignalRequest): Buffer {
  return encodeJson(signal);
}

export function encodeResize(size: Resize): Buffer {
  return encodeJson(size);
}

export function encodeExit(status: ExitMessage): Buffer {
  return encodeJson(status);
}

// u32 increment
export function encodeWindow(increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment >>> 0, 0);
  return payload;
}

export function decodeWindow(payload: Buffer): number {
  if (payload.length !== 4) throw bad(FrameType.WINDOW, `payload must be 4 bytes, got ${payload.length}`);
  const increment = payload.readUInt32BE(0);
  if (increment === 0) throw bad(FrameType.WINDOW, 'increment must be positive');
  return increment;
}

const bad = malformed;

export { parseJsonObject };

const { str, int } = fieldReaders(bad);

function strArray(type: FrameType, o: Json, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(type, `"${key}" must be an array of strings`);
  return v as string[];
}

function strRecord(type: FrameType, o: Json, key: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(type, `"${key}" must be an object of strings`);
  const out: Record<string, string> = Object.create(null);
  for (const [k, val] of Object.entries(v as Json)) {
    if (typeof val !== 'string' || k.length === 0 || k.includes('=') || k.includes('\0') || val.includes('\0')) {
      throw bad(type, `"${key}.${k}" must be a string without NUL, and names must not contain "="`);
    }
    out[osStr(type, `${key} name`, k)] = osStr(type, `${key}.${k}`, val);
  }
  return out;
}

/**
 * An OS byte string (command text, argv word, cwd, env name or value; docs/protocol.md §4.11):
 * bytes that are not UTF-8 come as the escapes \udc80-\udcff, and any other unpaired
 * surrogate names no bytes, so the field is refused rather than guessed at.
 */
function osStr(type: FrameType, key: string, value: string): string {
  try {
    encodeOsBytes(value);
  } catch (err) {
    if (!(err instanceof OsBytesError)) throw err;
    throw bad(type, `"${key}" is not an OS byte string (unpaired surrogate at index ${err.index}); send bytes that are not UTF-8 as \\udc80-\\udcff escapes`);
  }
  return value;
}

const U32_MAX = 0xffffffff;

export function decodeHello(payload: Buffer): Hello {
  const t = FrameType.HELLO;
  const o = parseJsonObject(t, payload);
  if (o.magic !== PROTOCOL_MAGIC) {
    throw new ProtocolError(ErrorCode.BAD_MAGIC, 'The first message is not a shellwire HELLO; is this a shellwire client?');
  }
  const versions = o.versions;
  if (!Array.isArray(versions) || !versions.every((v) => Number.isInteger(v))) throw bad(t, '"versions" must be an array of integers');
  const auth = Array.isArray(o.auth) ? o.auth : [o.auth];
  if (auth.length === 0 || auth.length > MAX_AUTH_ATTEMPTS) throw bad(t, `"auth" must hold 1 to ${MAX_AUTH_ATTEMPTS} attempts`);
  const parsedAuth = auth.map((entry): AuthRequest => {
    if (typeof entry !== 'object' || entry === null) throw bad(t, '"auth" entries must be objects');
    const a = entry as Json;
    switch (a.method) {
      case 'token':
        return { method: 'token', token: str(t, a, 'token') };
      case 'publickey': {
        const user = str(t, a, 'user', true);
        const algorithm = str(t, a, 'algorithm', true);
        return {
          method: 'publickey', ...(user !== undefined ? { user } : {}), publicKey: str(t, a, 'publicKey'), ...(algorithm !== undefined ? { algorithm } : {}), signature: str(t, a, 'signature'),
        };
      }
      case 'password': {
        const user = str(t, a, 'user', true);
        return { method: 'password', ...(user !== undefined ? { user } : {}), password: str(t, a, 'password') };
      }
      case 'none':
        return { method: 'none' };
      default:
        throw bad(t, `unsupported auth method ${JSON.stringify(a.method)}`);
    }
  });
  const hello: Hello = {
    magic: PROTOCOL_MAGIC,
    versions: versions as number[],
    features: strArray(t, o, 'features'),
    client: str(t, o, 'client'),
    auth: parsedAuth,
  };
  const user = str(t, o, 'user', true);
  if (user !== undefined) hello.user = user;
  return hello;
}

export function decodeWelcome(payload: Buffer): Welcome {
  const t = FrameType.WELCOME;
  const o = parseJsonObject(t, payload);
  return {
    version: int(t, o, 'version', 1, 255),
    features: strArray(t, o, 'features'),
    server: str(t, o, 'server'),
    hostname: str(t, o, 'hostname'),
    user: str(t, o, 'user'),
    maxPayload: int(t, o, 'maxPayload', 1024, 1024 * 1024),
    maxChannels: int(t, o, 'maxChannels', 1, U32_MAX),
    keepaliveMs: int(t, o, 'keepaliveMs', 0, U32_MAX),
  };
}

export function decodeCodeMessage(type: FrameType, payload: Buffer): Goodbye {
  const o = parseJsonObject(type, payload);
  return { code: str(type, o, 'code'), message: str(type, o, 'message') };
}

/**
 * OPEN: the header, then the parameters of its kind. The fields of §4.4 are checked whatever
 * the kind (as v1 always did); a file OPEN's op fields by file-messages.ts; other kinds keep
 * their remaining fields, unchecked, for their handler.
 */
export function decodeOpen(payload: Buffer): OpenRequest {
  const t = FrameType.OPEN;
  const o = parseJsonObject(t, payload);
  const kind = o.kind;
  if (typeof kind !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw bad(t, `"kind" must be a channel kind name, got ${JSON.stringify(kind)}`);
  const header: OpenHeader = {
    kind,
    window: int(t, o, 'window', 1, U32_MAX),
    maxPacket: int(t, o, 'maxPacket', 1, 1024 * 1024),
  };
  const host = gatewayName(o.host, 'host', true);
  if (host !== undefined) header.host = host;
  if (o.hosts !== undefined) header.hosts = decodeHosts(o.hosts);
  if (o.onBehalfOf !== undefined) header.onBehalfOf = decodeOnBehalfOf(o.onBehalfOf);
  const exec = decodeExecParams(o, kind === 'exec');
  if (kind === 'exec') return { ...header, kind, params: exec };
  if (kind === 'session') {
    const params: SessionParams = {};
    if (exec.env !== undefined) params.env = exec.env;
    if (exec.cwd !== undefined) params.cwd = exec.cwd;
    return { ...header, kind, params };
  }
  if (kind === 'file') return { ...header, kind, params: decodeFileRequest(o) };
  const { kind: _kind, window: _window, maxPacket: _maxPacket, host: _host, hosts: _hosts, onBehalfOf: _onBehalfOf, ...params } = o;
  return { ...header, params };
}

/**
 * A name the gateway fields carry (an inventory host, a user, an operator): a non-empty,
 * well-formed string of at most MAX_GATEWAY_NAME_BYTES UTF-8 bytes without NUL. Names, not
 * OS bytes: a lone surrogate names nothing and is refused.
 */
function gatewayName(value: unknown, key: string, optional: boolean): string | undefined {
  const t = FrameType.OPEN;
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value === '') throw bad(t, `"${key}" must be a non-empty string`);
  if (value.includes('\0')) throw bad(t, `"${key}" must not contain NUL bytes`);
  if (LONE_SURROGATE.test(value)) throw bad(t, `"${key}" must be well-formed Unicode (it has an unpaired surrogate)`);
  if (Buffer.byteLength(value) > MAX_GATEWAY_NAME_BYTES) throw bad(t, `"${key}" must be at most ${MAX_GATEWAY_NAME_BYTES} bytes of UTF-8`);
  return value;
}

/** `hosts`: 1 to MAX_GATEWAY_HOSTS gateway names, each as `host` is checked, none twice. */
function decodeHosts(value: unknown): string[] {
  const t = FrameType.OPEN;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_GATEWAY_HOSTS) throw bad(t, `"hosts" must be an array of 1 to ${MAX_GATEWAY_HOSTS} host names`);
  const names = value.map((v, i) => gatewayName(v, `hosts[${i}]`, false)!);
  if (new Set(names).size !== names.length) throw bad(t, '"hosts" names a host twice');
  return names;
}

// With the u flag a pair is one code point, so this matches only an unpaired surrogate.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** `onBehalfOf`: an object with exactly `user` and `operator`, both gateway names. */
function decodeOnBehalfOf(value: unknown): OnBehalfOf {
  const t = FrameType.OPEN;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(t, '"onBehalfOf" must be an object { user, operator }');
  const o = value as Json;
  const extra = Object.keys(o).filter((k) => k !== 'user' && k !== 'operator');
  if (extra.length > 0) throw bad(t, `"onBehalfOf" takes exactly "user" and "operator", not ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  return { user: gatewayName(o.user, 'onBehalfOf.user', false)!, operator: gatewayName(o.operator, 'onBehalfOf.operator', false)! };
}

/** The exec fields of §4.4 that are present, each checked (in v1's order: the first error is the one reported). */
function decodeExecParams(o: Json, isExec: boolean): ExecParams {
  const t = FrameType.OPEN;
  const req: ExecParams = {};
  if (o.pty !== undefined) {
    if (typeof o.pty !== 'object' || o.pty === null) throw bad(t, '"pty" must be an object');
    const p = o.pty as Json;
    const term = str(t, p, 'term');
    if (term.includes('\0')) throw bad(t, '"pty.term" must not contain NUL bytes');
    // A terminal type is a short name (terminfo's are under 32 bytes); a long one could only fail at exec (E2BIG).
    if (Buffer.byteLength(term) > MAX_TERM_BYTES) throw bad(t, `"pty.term" must be at most ${MAX_TERM_BYTES} bytes`);
    req.pty = { term, cols: int(t, p, 'cols', 1, 65535), rows: int(t, p, 'rows', 1, 65535) };
  }
  const command = str(t, o, 'command', true);
  // The OS cannot pass a NUL inside an argument; refuse it here rather than fail at spawn.
  if (command !== undefined && command.includes('\0')) throw bad(t, '"command" must not contain NUL bytes');
  if (command !== undefined) req.command = osStr(t, 'command', command);
  if (o.argv !== undefined) {
    const argv = strArray(t, o, 'argv');
    if (argv.length === 0) throw bad(t, '"argv" must not be empty');
    if (argv.some((a) => a.includes('\0'))) throw bad(t, '"argv" entries must not contain NUL bytes');
    argv.forEach((a, i) => osStr(t, `argv[${i}]`, a));
    req.argv = argv;
  }
  if (isExec && req.command !== undefined && req.argv !== undefined) throw bad(t, 'an exec channel takes "command" or "argv", not both');
  // With a terminal and no command, the user's login shell runs (as `ssh host`).
  if (isExec && req.command === undefined && req.argv === undefined && req.pty === undefined) {
    throw bad(t, 'an exec channel needs "command" or "argv" (or "pty" for a login shell)');
  }
  const env = strRecord(t, o, 'env');
  if (env !== undefined) req.env = env;
  const cwd = str(t, o, 'cwd', true);
  // Every string that becomes an OS argument or path: the kernel would cut it at the NUL.
  if (cwd !== undefined && cwd.includes('\0')) throw bad(t, '"cwd" must not contain NUL bytes');
  if (cwd !== undefined) req.cwd = osStr(t, 'cwd', cwd);
  const timeoutMs = int(t, o, 'timeoutMs', 1, 2 ** 31 - 1, true);
  if (timeoutMs !== undefined) req.timeoutMs = timeoutMs;
  const session = int(t, o, 'session', 0, U32_MAX, true);
  if (session !== undefined) req.session = session;
  return req;
}

export function decodeOpenOk(payload: Buffer): OpenOk {
  const t = FrameType.OPEN_OK;
  const o = parseJsonObject(t, payload);
  const ok: OpenOk = { window: int(t, o, 'window', 0, U32_MAX), maxPacket: int(t, o, 'maxPacket', 1, 1024 * 1024) };
  const pid = int(t, o, 'pid', 0, U32_MAX, true);
  if (pid !== undefined) ok.pid = pid;
  const cwd = str(t, o, 'cwd', true);
  if (cwd !== undefined) ok.cwd = osStr(t, 'cwd', cwd);
  return ok;
}

export function decodeSignal(payload: Buffer): SignalRequest {
  const t = FrameType.SIGNAL;
  const o = parseJsonObject(t, payload);
  const signal = str(t, o, 'signal');
  if (!(ALLOWED_SIGNALS as readonly string[]).includes(signal)) throw bad(t, `signal ${signal} is not one of ${ALLOWED_SIGNALS.join(', ')}`);
  return { signal };
}

export function decodeExit(payload: Buffer): ExitStatus {
  const t = FrameType.EXIT;
  const o = parseJsonObject(t, payload);
  const exitCode = o.exitCode === null ? null : int(t, o, 'exitCode', 0, 255);
  const signal = o.signal === null ? null : str(t, o, 'signal');
  if (typeof o.timedOut !== 'boolean') throw bad(t, '"timedOut" must be a boolean');
  const status: ExitStatus = { exitCode, signal, timedOut: o.timedOut };
  const cwd = str(t, o, 'cwd', true);
  if (cwd !== undefined) status.cwd = osStr(t, 'cwd', cwd);
  if (o.error !== undefined) {
    if (typeof o.error !== 'object' || o.error === null) throw bad(t, '"error" must be an object');
    status.error = { code: str(t, o.error as Json, 'code'), message: str(t, o.error as Json, 'message') };
  }
  return status;
}

export function decodeResize(payload: Buffer): Resize {
  const t = FrameType.RESIZE;
  const o = parseJsonObject(t, payload);
  return { cols: int(t, o, 'cols', 1, 65535), rows: int(t, o, 'rows', 1, 65535) };
}
