/**
 * What the client's file operations share (client/files/put.ts, get.ts, meta.ts; the
 * mirror of server/files/): the public option and result types, opening a file channel,
 * local paths as bytes, the errors, cancellation, and the recursive walk's bookkeeping.
 */
import { dirname } from 'node:path';
import { ErrorCode, errnoOf, remoteErrorCode } from '../../errors.js';
import { MAX_PATH_LENGTH, type FileEntry, type FileExit, type FileRequest } from '../../protocol/file-messages.js';
import { encodeOsBytes, isOsString, OsBytesError } from '../../protocol/os-bytes.js';
import type { ChannelOpener } from '../channel-host.js';
import { FileChannelClient, FileTransferError } from '../file-channel.js';
import { checkAbortSignal, checkBoolean, checkFunction, checkInteger, checkNumber, checkOptionsObject } from '../option-checks.js';

export { FileTransferError };

/** A remote file as `stat`/`list` report it: `type` is file, dir, symlink or other. */
export type RemoteEntry = FileEntry;

export interface TransferProgress {
  direction: 'put' | 'get';
  local: string;
  remote: string;
  /** Bytes of the file that are done (a resumed prefix counts). */
  bytes: number;
  size: number;
  /** Where this run started (0 unless resumed). */
  resumedFrom: number;
}

export interface TransferOptions {
  /**
   * Continue from a partial file (`.NAME.shellwire-part`) when its bytes hash the same as
   * the source's first bytes; a partial that does not match is started over. Default true.
   */
  resume?: boolean;
  /** Called as bytes move (at most once per data frame). */
  onProgress?: (progress: TransferProgress) => void;
  /** Bytes per second; default: as fast as the link and disks allow. */
  rateLimit?: number;
  /** Cancel: the channel is closed and a partial upload/download is kept for `resume`. */
  signal?: AbortSignal;
}

export interface PutOptions extends TransferOptions {
  /** When `remote` is an existing directory, write into it under the local name (default true). */
  intoDirectory?: boolean;
}

export type GetOptions = TransferOptions;

export interface TransferResult {
  local: string;
  /** Absolute path on the daemon (symlinks resolved). */
  remote: string;
  size: number;
  sha256: string;
  /** Bytes that were already there from an interrupted transfer. */
  resumedFrom: number;
  durationMs: number;
}

/**
 * True when `path` is longer than a file request may carry (MAX_PATH_LENGTH characters):
 * the daemon would refuse the OPEN as malformed, so it is never sent.
 */
export function remotePathTooLong(path: string): boolean {
  return path.length > MAX_PATH_LENGTH;
}

/** Open a file channel for `request` (its OPEN goes out now); `window`: the STDOUT credit we grant. */
export function openFile(conn: ChannelOpener, request: FileRequest, window = 1): FileChannelClient {
  const path = request.path;
  if (remotePathTooLong(path)) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `The remote path ${path} is longer than ${MAX_PATH_LENGTH} characters, the most a file request carries; nothing was sent for it.`, {
      host: conn.hostLabel, errno: 'ENAMETOOLONG', path,
    });
  }
  // Checked here, as the daemon would refuse it (BAD_MESSAGE): a string that names no bytes.
  if (!isOsString(path)) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `The remote path ${JSON.stringify(path)} is not an OS byte string (a lone surrogate outside U+DC80..U+DCFF names no bytes).`, { host: conn.hostLabel, path });
  }
  const maxPacket = Math.min(conn.server.maxPayload, 256 * 1024);
  return new FileChannelClient(conn, { request, window, maxPacket });
}

/**
 * A local path for a system call: its exact bytes. Paths are OS byte strings (surrogateescape,
 * src/protocol/os-bytes.ts), so `caf\udce9.txt` names the Latin-1 file `caf\xe9.txt`; passing
 * the string itself would make Node write U+FFFD's UTF-8 instead and name another file.
 */
export function localPath(path: string): Buffer {
  try {
    return encodeOsBytes(path);
  } catch (err) {
    if (!(err instanceof OsBytesError)) throw err;
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `The local path ${JSON.stringify(path)} is not an OS byte string: ${err.message}.`, { path, cause: err });
  }
}

/** The error for a source file that changed while it was being sent (put). */
export function sourceChanged(local: string, what: string): FileTransferError {
  return new FileTransferError(
    ErrorCode.SOURCE_CHANGED,
    `${local} changed while it was being sent (${what}); the remote target was not changed. Run the transfer again once it is no longer being written.`,
    { path: local },
  );
}

export function localError(what: string, path: string, err: unknown): FileTransferError {
  const e = err as NodeJS.ErrnoException;
  // Bytes past the announced size are an integrity failure, not a local one.
  const errno = errnoOf(err);
  const code = errno === 'EINTEGRITY' ? ErrorCode.INTEGRITY : ErrorCode.LOCAL_IO;
  return new FileTransferError(code, `Cannot ${what} ${path}: ${e?.message ?? String(err)}`, { errno, path, cause: err });
}

/**
 * A download that cannot create or write its local file. Named by the target the caller
 * gave, not the `.NAME.shellwire-part` beside it that is opened first (an internal name the
 * caller never chose), with what to do about the usual causes.
 */
export function localTargetError(target: string, err: unknown, partial?: string): FileTransferError {
  const errno = errnoOf(err);
  const dir = dirname(target);
  const why: Record<string, string> = {
    ENOENT: `the directory ${dir} does not exist. Create it first (mkdir -p ${dir}), or download into an existing directory.`,
    EACCES: `no permission to create files in ${dir}. Choose a directory you can write to.`,
    EPERM: `no permission to create files in ${dir}. Choose a directory you can write to.`,
    ENOTDIR: `${dir} is not a directory. Give a path inside an existing directory.`,
    EROFS: `${dir} is on a read-only file system.`,
    ENOSPC: `no space left on the device that holds ${dir}.`,
    EDQUOT: `the disk quota of the device that holds ${dir} is used up.`,
  };
  const detail = (errno && why[errno]) ?? `${errno ? `${errno}: ` : ''}${(err as Error)?.message ?? String(err)}`;
  const kept = partial !== undefined ? ` The bytes received so far are kept in ${partial} for resume.` : '';
  return new FileTransferError(ErrorCode.LOCAL_IO, `Cannot write ${target}: ${detail}${kept}`, { errno, path: target, cause: err });
}

export function exitError(conn: ChannelOpener, exit: FileExit | null, what: string): FileTransferError {
  if (!exit) return new FileTransferError(ErrorCode.COMMAND_CANCELED, `The ${what} was canceled.`, { host: conn.hostLabel });
  return new FileTransferError(remoteErrorCode(exit.error?.code, ErrorCode.BAD_REQUEST, exit.errno), `${conn.hostLabel}: ${exit.error?.message ?? 'failed'}`, { host: conn.hostLabel, errno: exit.errno });
}

/**
 * Every file operation's start: its options checked (`SW_ERR_BAD_REQUEST` naming the option;
 * a `rateLimit` of "abc" would reach the sender's arithmetic), and a `signal` already aborted
 * starts nothing: the rejection an abort in flight gives (`SW_ERR_COMMAND_CANCELED`), before
 * any OPEN goes out (a CLOSE would wait for OPEN_OK, by when an upload has replaced its target).
 */
export function startTransfer(conn: ChannelOpener, options: unknown, what: string, path: string): void {
  checkOptionsObject(options, what);
  const o = (options ?? {}) as Record<string, unknown>;
  checkNumber(o.rateLimit, 'rateLimit', { min: 0, unit: 'bytes per second', note: '0 for no limit' });
  for (const name of ['resume', 'intoDirectory', 'recursive'] as const) checkBoolean(o[name], name);
  for (const name of ['onProgress', 'onWarning'] as const) checkFunction(o[name], name);
  checkInteger(o.mode, 'mode', { min: 0, max: 0o7777, note: 'permission bits such as 0o755' });
  checkNumber(o.mtimeMs, 'mtimeMs', { min: -8.64e15, max: 8.64e15, unit: 'milliseconds since 1970' });
  const signal = checkAbortSignal(o.signal);
  if (signal?.aborted) throw new FileTransferError(ErrorCode.COMMAND_CANCELED, `The ${what} of ${path} was canceled before it started (the signal was already aborted).`, { host: conn.hostLabel, path });
}

/** Close `channel` when `signal` aborts; returns the unsubscribe. */
export function onAbort(signal: AbortSignal | undefined, channel: FileChannelClient): () => void {
  if (!signal) return () => {};
  const abort = () => channel.close();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

export interface TreeOptions extends TransferOptions {
  /** Copy directories (and everything below them). Without it a directory source is an error. */
  recursive?: boolean;
  /**
   * @deprecated No longer called: an entry that is skipped (a link to a directory, a broken
   * link, a socket, FIFO or device) is in `failures` with its message.
   */
  onWarning?: (message: string) => void;
}

export interface TreeResult {
  files: TransferResult[];
  failures: Array<{ path: string; error: Error }>;
  directories: number;
  bytes: number;
}

/** Errors that end one file but not the whole walk. */
export function perFile(err: unknown): err is FileTransferError {
  return err instanceof FileTransferError && err.code !== ErrorCode.COMMAND_CANCELED;
}

export class TreeWalk {
  readonly result: TreeResult = { files: [], failures: [], directories: 0, bytes: 0 };
  readonly conn: ChannelOpener;
  readonly options: TreeOptions;

  constructor(conn: ChannelOpener, options: TreeOptions) {
    this.conn = conn;
    this.options = options;
  }

  async attempt(path: string, work: () => Promise<TransferResult | void>): Promise<void> {
    // Aborted between two files: start no more (each request also closes on the signal).
    if (this.options.signal?.aborted) throw new FileTransferError(ErrorCode.COMMAND_CANCELED, `The transfer of ${path} was canceled.`, { host: this.conn.hostLabel, path });
    try {
      const done = await work();
      if (done) {
        this.result.files.push(done);
        this.result.bytes += done.size - done.resumedFrom;
      }
    } catch (err) {
      if (!perFile(err)) throw err;
      this.result.failures.push({ path, error: err });
    }
  }

  /**
   * A remote path a request cannot carry: that entry (and all below it) is skipped as a
   * failure; the walk goes on with its siblings. True when it was skipped.
   */
  skipTooLong(shown: string, remote: string): boolean {
    if (!remotePathTooLong(remote)) return false;
    this.skip(shown, `${shown}: the remote path is longer than ${MAX_PATH_LENGTH} characters, the most a file request carries; skipped.`, 'ENAMETOOLONG');
    return true;
  }

  /** An entry that is not copied: a failure with a message, never a silent gap. */
  skip(path: string, message: string, errno?: string): void {
    this.result.failures.push({ path, error: new FileTransferError(ErrorCode.BAD_REQUEST, message, { path, ...(errno ? { errno } : {}) }) });
  }
}
