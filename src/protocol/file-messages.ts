/**
 * Control fields of "file" channels (file transfer). Pure: no I/O.
 *
 * A file channel reuses the frames and windows of exec channels (docs/protocol.md §4–6);
 * only JSON fields are added, no frame type:
 *
 *   OPEN     {kind:"file", window, maxPacket, op, path, …op fields}         client → server
 *   OPEN_OK  {window, maxPacket, path, …op fields}                          server → client
 *   OPEN_FAIL{code, message, errno?}                                        server → client
 *   STDIN    raw file bytes (put)            STDOUT raw file bytes (get) / NDJSON entries (list)
 *   EOF      {sha256, size} — put only: the client's hash of the whole file  client → server
 *   EXIT     {exitCode: 0|1, signal: null, timedOut: false, …result, error?} server → client
 *
 * EXIT keeps the exec schema (`exitCode`, `signal`, `timedOut`) so a generic decoder still
 * accepts it; `exitCode` 0 is success, 1 failure with `error: {code, message}` (and `errno`
 * when the cause was a system call, e.g. "ENOSPC"). Refusals before anything started are
 * OPEN_FAIL with code SW_ERR_BAD_REQUEST (plus `errno`), escapes from the roots included.
 *
 * Per op (OPEN fields → OPEN_OK fields → data → EXIT fields):
 *
 *   put   {path, name?, size, mode, mtimeMs, resume} → {window, path, offset, offsetSha256?}
 *         → STDIN from `offset`, then EOF {sha256, size} → {size, sha256}
 *   get   {path, offset?, offsetSha256?} → {window: 0, path, offset, entry}
 *         → STDOUT from `offset` → {size, sha256}
 *   stat  {path} → {window: 0, path, entry} → {}
 *   list  {path} → {window: 0, path, entry} → STDOUT NDJSON, one FileEntry per line → {count}
 *   mkdir {path, mode?, mtimeMs?} → {window: 0, path, created} → {}
 *
 * Paths, names and link targets are OS byte strings (surrogateescape, src/protocol/os-bytes.ts):
 * a byte that is not part of valid UTF-8 travels as the lone surrogate U+DC00+byte, which
 * JSON writes as `\udcXX`; both ends turn them back into the bytes for every system call.
 * A decoder refuses any other lone surrogate (BAD_MESSAGE): it names no bytes.
 *
 * The one addition to an existing frame: on a put channel EOF carries `{sha256, size}`
 * (on exec channels EOF stays empty). The client learns its hash only once it has read the
 * whole file, and the daemon must know it before the rename; a new frame type would need
 * a protocol version, a payload on EOF needs none.
 */
import { ErrorCode, ProtocolError } from '../errors.js';
import { FrameType, frameTypeName } from './frame.js';
import { encodeJson, fieldReaders, parseJsonObject, parseWireJson, type Json } from './fields.js';
import { createHash } from 'node:crypto';
import { decodeOsBytes, encodeOsBytes, isOsString } from './os-bytes.js';

export { parseJsonObject };

export const FILE_CHANNEL_KIND = 'file';
export const FILE_OPS = ['put', 'get', 'stat', 'list', 'mkdir'] as const;
export type FileOp = (typeof FILE_OPS)[number];

/** Longest path accepted in a request (Linux PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;
/** Largest file size a request may name: 2^53-1, what a JS number holds exactly. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

/**
 * One file as `stat` and `list` report it. `mode` is the permission bits (0o7777). `name`
 * and `target` are OS byte strings: `encodeOsBytes(name)` gives the name's exact bytes.
 */
export interface FileEntry {
  name: string;
  type: FileType;
  size: number;
  mode: number;
  mtimeMs: number;
  /** Symlinks: where the link points (not resolved). */
  target?: string;
}

export interface PutRequest {
  op: 'put';
  /** Remote path (relative: to the user's home). An existing directory means `path/name`. */
  path: string;
  /** The local file's base name, used when `path` is a directory. */
  name?: string;
  size: number;
  mode: number;
  mtimeMs: number;
  /** Continue a partial upload (`.NAME.shellwire-part`) when one exists. */
  resume: boolean;
  /**
   * A put to many hosts through a gateway (`hosts`): each host's copy is stopped after this
   * many ms (its partial file kept). A daemon ignores it (its client times out itself).
   */
  timeoutMs?: number;
  /**
   * A put to many hosts through a gateway (`hosts`): the client reads live per-host records
   * (`HostProgressRecord`, `HostResultRecord`) on STDOUT before the final document. Without it
   * the gateway sends the document alone (what clients before it expect). A daemon ignores it.
   */
  progress?: boolean;
}

export interface GetRequest {
  op: 'get';
  path: string;
  /** Bytes the client already holds (its partial file). */
  offset: number;
  /** SHA-256 of those bytes; the server starts at 0 when its first `offset` bytes differ. */
  offsetSha256?: string;
}

export interface PathRequest {
  op: 'stat' | 'list';
  path: string;
}

export interface MkdirRequest {
  op: 'mkdir';
  path: string;
  /** Permission bits for directories it creates (and for `path` itself when given). */
  mode?: number;
  /** Set `path`'s mtime after creating it (recursive put does this last, per directory). */
  mtimeMs?: number;
}

export type FileRequest = PutRequest | GetRequest | PathRequest | MkdirRequest;

/** OPEN_OK extras. */
export interface FileOpenOk {
  window: number;
  maxPacket: number;
  /** The absolute path the server acts on (symlinks resolved). */
  path: string;
  /** put: where the client's bytes start; get: where the server's bytes start. */
  offset?: number;
  /** put: SHA-256 of the `offset` bytes already in the server's partial file. */
  offsetSha256?: string;
  /** get: the source file (size, mode, mtime) as it was when opened; stat/list: the path. */
  entry?: FileEntry;
  /** mkdir: true when the directory did not exist before. */
  created?: boolean;
}

/** EXIT extras: the result, or why it failed. */
export interface FileExit {
  ok: boolean;
  size?: number;
  sha256?: string;
  count?: number;
  error?: { code: string; message: string };
  errno?: string;
}

export interface PutEof {
  sha256: string;
  size: number;
}

/** One host's copy in a gateway's answer to a put to many hosts (its STDOUT document's `hosts`). */
export interface HostCopy {
  host: string;
  ok: boolean;
  /** Bytes the host holds now (0 when it failed). */
  bytes: number;
  /** The absolute path on the host (symlinks resolved). */
  path?: string;
  sha256?: string;
  error?: { code: string; message: string };
}

/**
 * Live record of a put to many hosts opened with `progress: true` (docs/protocol.md §10): one
 * NDJSON line on STDOUT. `bytes` of `total` (bytes) have been sent to `host` so far; at most one
 * per host every PROGRESS_INTERVAL_MS, one with 0 when the host's copy starts and one with
 * `total` when it ends well.
 */
export interface HostProgressRecord {
  type: 'progress';
  host: string;
  bytes: number;
  total: number;
}

/** Live record: `host`'s copy ended (sent as soon as it did, before the others'). */
export type HostResultRecord = { type: 'result' } & HostCopy;

/** The gateway sends a host's progress at most this often (plus its first and last). */
export const HOST_PROGRESS_INTERVAL_MS = 100;


function bad(type: FrameType, why: string): ProtocolError {
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `Malformed ${frameTypeName(type)} of a file channel: ${why}.`);
}

const { int } = fieldReaders(bad);

function finite(type: FrameType, o: Json, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(type, `"${key}" must be a number`);
  return v;
}

/**
 * A path, name or link target: an OS byte string (surrogateescape, src/protocol/os-bytes.ts;
 * docs/protocol.md "OS byte strings"), so a name that is not UTF-8 crosses the wire as its
 * bytes. A string that names no bytes (another lone surrogate) is refused, never mangled.
 */
function osString(type: FrameType, key: string, v: unknown): string {
  if (typeof v !== 'string' || v.length > MAX_PATH_LENGTH || v.includes('\0')) {
    throw bad(type, `"${key}" must be a string of at most ${MAX_PATH_LENGTH} characters without NUL`);
  }
  if (!isOsString(v)) throw bad(type, `"${key}" is not an OS byte string (a lone surrogate outside U+DC80..U+DCFF names no bytes)`);
  return v;
}

function path(type: FrameType, o: Json, key: string): string {
  return osString(type, key, o[key]);
}

function sha(type: FrameType, o: Json, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !SHA256_HEX.test(v)) throw bad(type, `"${key}" must be a SHA-256 in lowercase hex`);
  return v;
}

/** The file fields of an OPEN (decodeOpen makes them `FileOpen.params`). Throws BAD_MESSAGE: the OPEN is refused. */
export function decodeFileRequest(o: Json): FileRequest {
  const t = FrameType.OPEN;
  const op = o.op;
  if (typeof op !== 'string' || !(FILE_OPS as readonly string[]).includes(op)) throw bad(t, `"op" must be one of ${FILE_OPS.join(', ')}`);
  const p = path(t, o, 'path');
  switch (op as FileOp) {
    case 'put': {
      const req: PutRequest = {
        op: 'put',
        path: p,
        size: int(t, o, 'size', 0, MAX_SIZE),
        mode: int(t, o, 'mode', 0, 0o7777),
        mtimeMs: finite(t, o, 'mtimeMs'),
        resume: o.resume === true,
      };
      if (o.name !== undefined) {
        const name = path(t, o, 'name');
        if (name === '' || name === '.' || name === '..' || name.includes('/')) throw bad(t, '"name" must be a plain file name');
        req.name = name;
      }
      if (o.timeoutMs !== undefined) req.timeoutMs = int(t, o, 'timeoutMs', 1, 0x7fffffff);
      if (o.progress !== undefined) {
        if (typeof o.progress !== 'boolean') throw bad(t, '"progress" must be true or false');
        if (o.progress) req.progress = true;
      }
      return req;
    }
    case 'get': {
      const req: GetRequest = { op: 'get', path: p, offset: o.offset === undefined ? 0 : int(t, o, 'offset', 0, MAX_SIZE) };
      if (o.offsetSha256 !== undefined) req.offsetSha256 = sha(t, o, 'offsetSha256');
      return req;
    }
    case 'mkdir': {
      const req: MkdirRequest = { op: 'mkdir', path: p };
      if (o.mode !== undefined) req.mode = int(t, o, 'mode', 0, 0o7777);
      if (o.mtimeMs !== undefined) req.mtimeMs = finite(t, o, 'mtimeMs');
      return req;
    }
    default:
      return { op: op as 'stat' | 'list', path: p };
  }
}

function decodeEntry(type: FrameType, o: unknown): FileEntry {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad(type, 'an entry must be an object');
  const e = o as Json;
  const kind = e.type;
  if (kind !== 'file' && kind !== 'dir' && kind !== 'symlink' && kind !== 'other') throw bad(type, '"type" must be file, dir, symlink or other');
  const entry: FileEntry = {
    name: osString(type, 'name', e.name),
    type: kind,
    size: int(type, e, 'size', 0, MAX_SIZE),
    mode: int(type, e, 'mode', 0, 0o7777),
    mtimeMs: finite(type, e, 'mtimeMs'),
  };
  if (e.target !== undefined) entry.target = osString(type, 'target', e.target);
  return entry;
}

/** One NDJSON line of a list channel's STDOUT. */
export function decodeFileEntry(line: Uint8Array | string): FileEntry {
  const value = parseWireJson(line, (why) => bad(FrameType.STDOUT, `a directory entry: ${why}`));
  return decodeEntry(FrameType.STDOUT, value);
}

export function decodeFileOpenOk(payload: Buffer): FileOpenOk {
  const t = FrameType.OPEN_OK;
  const o = parseJsonObject(t, payload);
  const ok: FileOpenOk = {
    window: int(t, o, 'window', 0, 0xffffffff),
    maxPacket: int(t, o, 'maxPacket', 1, 1024 * 1024),
    path: path(t, o, 'path'),
  };
  if (o.offset !== undefined) ok.offset = int(t, o, 'offset', 0, MAX_SIZE);
  if (o.offsetSha256 !== undefined) ok.offsetSha256 = sha(t, o, 'offsetSha256');
  if (o.entry !== undefined) ok.entry = decodeEntry(t, o.entry);
  if (o.created !== undefined) ok.created = o.created === true;
  return ok;
}

export function decodeFileExit(payload: Buffer): FileExit {
  const t = FrameType.EXIT;
  const o = parseJsonObject(t, payload);
  const exit: FileExit = { ok: o.exitCode === 0 };
  if (o.size !== undefined) exit.size = int(t, o, 'size', 0, MAX_SIZE);
  if (o.sha256 !== undefined) exit.sha256 = sha(t, o, 'sha256');
  if (o.count !== undefined) exit.count = int(t, o, 'count', 0, MAX_SIZE);
  if (typeof o.errno === 'string') exit.errno = o.errno;
  if (o.error !== undefined) {
    const e = o.error as Json;
    if (typeof e !== 'object' || e === null || typeof e.code !== 'string' || typeof e.message !== 'string') throw bad(t, '"error" must be {code, message}');
    exit.error = { code: e.code, message: e.message };
  }
  if (!exit.ok && !exit.error) throw bad(t, 'a failed file operation needs "error"');
  return exit;
}

/**
 * EXIT of a file channel as it goes on the wire: the exec schema's fields first (so a
 * generic EXIT decoder accepts it), then the result.
 */
export type FileExitStatus = { exitCode: 0 | 1; signal: null; timedOut: false } & Omit<FileExit, 'ok'>;

/** EXIT payload of a file channel (exec-compatible fields first). */
export function fileExitPayload(result: FileExit): FileExitStatus {
  const { ok, ...rest } = result;
  return { exitCode: ok ? 0 : 1, signal: null, timedOut: false, ...rest };
}

// Encoders, one per message above, typed like what its decoder returns.

// OPEN, OPEN_OK and EXIT go out through messages.ts's encodeOpen, encodeOpenOk and
// encodeExit (typed with FileRequest, FileOpenOk and FileExitStatus); these are the rest.

/** EOF of a put channel: `{sha256, size}`. */
export function encodePutEof(eof: PutEof): Buffer {
  return encodeJson(eof);
}

/** One line of a list channel's STDOUT: a FileEntry as JSON, and the newline. */
export function encodeFileEntry(entry: FileEntry): Buffer {
  return Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
}

export function decodePutEof(payload: Buffer): PutEof {
  const t = FrameType.EOF;
  const o = parseJsonObject(t, payload);
  return { sha256: sha(t, o, 'sha256'), size: int(t, o, 'size', 0, MAX_SIZE) };
}

/** Longest file name (bytes) Linux file systems take: NAME_MAX. */
const NAME_MAX = 255;
const PART_SUFFIX = '.shellwire-part';
/** Hex digits of the name's SHA-256 in a shortened partial name. */
const PART_HASH_DIGITS = 16;

/**
 * `.NAME.shellwire-part`: the temporary file beside NAME that an unfinished transfer writes.
 * When that would pass NAME_MAX (NAME of 240–255 bytes), it is `.PREFIX~HASH.shellwire-part`
 * instead: the name's first bytes (cut at a UTF-8 character) and 16 hex digits of the
 * SHA-256 of its bytes, so every legal name has a partial name, the same on both ends
 * (resume finds it again) and different for names that share the prefix.
 */
export function partialName(name: string): string {
  const bytes = encodeOsBytes(name);
  if (1 + bytes.length + PART_SUFFIX.length <= NAME_MAX) return `.${name}${PART_SUFFIX}`;
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, PART_HASH_DIGITS);
  let keep = NAME_MAX - 1 - 1 - PART_HASH_DIGITS - PART_SUFFIX.length;
  // Do not split a UTF-8 sequence (at most 3 continuation bytes back; other bytes are kept as they are).
  for (let back = 0; back < 3 && keep > 0 && (bytes[keep]! & 0xc0) === 0x80; back++) keep--;
  return `.${decodeOsBytes(bytes.subarray(0, keep))}~${hash}${PART_SUFFIX}`;
}
