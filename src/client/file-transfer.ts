/**
 * File transfer over "file" channels: `put` and `get` of one file, `stat`, `list`,
 * `mkdir`; the recursive variants are in file-tree.ts.
 *
 * Both directions are atomic and verified: bytes go to `.NAME.shellwire-part` beside the
 * target, are hashed on both sides (SHA-256) and renamed into place only when the hashes
 * agree, with mode and mtime preserved. With `resume`, a partial file left by an
 * interrupted transfer is continued if its bytes are a prefix of the source (checked by
 * hash, then verified end to end). Data moves no faster than the receiver writes it.
 */
import { constants, type PathLike, type Stats } from 'node:fs';
import { open, stat, rename, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { FileSender, FileSink, FILE_WINDOW, SourceChangedError, onlyUnlinked, sameVersion } from '../channel/file-stream.js';
import { hashFilePrefix, InlineHash, openHashingReader, type HashingReader, type StreamHash } from '../channel/file-hash.js';
import { FrameType } from '../protocol/frame.js';
import { decodeFileEntry, MAX_PATH_LENGTH, partialName, type FileEntry, type FileExit, type FileOp, type FileOpenOk } from '../protocol/file-messages.js';
import { ErrorCode, ProtocolError, errnoOf, remoteErrorCode } from '../errors.js';
import { encodeOsBytes, isOsString, OsBytesError } from '../protocol/os-bytes.js';
import type { ChannelOpener } from './channel-host.js';
import { FileChannelClient, FileTransferError } from './file-channel.js';

export { FileTransferError } from './file-channel.js';

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

const LIST_WINDOW = 256 * 1024;

/**
 * True when `path` is longer than a file request may carry (MAX_PATH_LENGTH characters):
 * the daemon would refuse the OPEN as malformed, so it is never sent.
 */
export function remotePathTooLong(path: string): boolean {
  return path.length > MAX_PATH_LENGTH;
}

function openFile(conn: ChannelOpener, op: FileOp, path: string, fields: Record<string, unknown>, window = 1): FileChannelClient {
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
  return new FileChannelClient(conn, { op, path, window, maxPacket, fields });
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
function sourceChanged(local: string, what: string): FileTransferError {
  return new FileTransferError(
    ErrorCode.SOURCE_CHANGED,
    `${local} changed while it was being sent (${what}); the remote target was not changed. Run the transfer again once it is no longer being written.`,
    { path: local },
  );
}

function localError(what: string, path: string, err: unknown): FileTransferError {
  const e = err as NodeJS.ErrnoException;
  // Bytes past the announced size are an integrity failure, not a local one.
  const errno = errnoOf(err);
  const code = errno === 'EINTEGRITY' ? ErrorCode.INTEGRITY : ErrorCode.LOCAL_IO;
  return new FileTransferError(code, `Cannot ${what} ${path}: ${e?.message ?? String(err)}`, { errno, path, cause: err });
}

function exitError(conn: ChannelOpener, exit: FileExit | null, what: string): FileTransferError {
  if (!exit) return new FileTransferError(ErrorCode.COMMAND_CANCELED, `The ${what} was canceled.`, { host: conn.hostLabel });
  return new FileTransferError(remoteErrorCode(exit.error?.code, ErrorCode.BAD_REQUEST, exit.errno), `${conn.hostLabel}: ${exit.error?.message ?? 'failed'}`, { host: conn.hostLabel, errno: exit.errno });
}

/** Close `channel` when `signal` aborts; returns the unsubscribe. */
function onAbort(signal: AbortSignal | undefined, channel: FileChannelClient): () => void {
  if (!signal) return () => {};
  const abort = () => channel.close();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

/** Upload `local` to `remote` (relative: the remote user's home; a directory: into it). */
export async function putFile(conn: ChannelOpener, local: string, remote: string, options: PutOptions = {}): Promise<TransferResult> {
  const started = performance.now();
  // O_NONBLOCK: a FIFO or device named as the source is refused below instead of hanging here.
  const handle = await open(localPath(local), constants.O_RDONLY | constants.O_NONBLOCK).catch((err: unknown) => {
    throw localError('read', local, err);
  });
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is a directory; use -r (putRecursive) to copy directories.`, { errno: 'EISDIR', path: local });
    if (!info.isFile()) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is not a regular file.`, { path: local });
    const fields = {
      size: info.size,
      mode: info.mode & 0o7777,
      mtimeMs: info.mtimeMs,
      ...(options.intoDirectory === false ? {} : { name: basename(local) }),
    };
    let reader = openHashingReader(handle.fd);
    try {
      let channel = openFile(conn, 'put', remote, { ...fields, resume: options.resume !== false });
      let ok = await channel.opened;
      let offset = ok.offset ?? 0;
      if (offset > 0) {
        // The daemon kept a partial file: continue only if our first bytes are the same.
        const same = offset <= info.size && (await hashedPrefix(reader, offset, local)) === ok.offsetSha256;
        if (!same) {
          channel.close();
          await channel.finished.catch(() => {});
          reader.dispose();
          reader = openHashingReader(handle.fd);
          channel = openFile(conn, 'put', remote, { ...fields, resume: false });
          ok = await channel.opened;
          offset = 0;
        }
      }
      // The bytes hashed are the bytes sent; a file that changed meanwhile mixes versions, so
      // its EOF is never sent (the daemon then keeps the target as it was).
      const unchanged = async () => {
        const after = await handle.stat().catch((err: unknown) => {
          throw localError('read', local, err);
        });
        if (sameVersion(info, after) || (await replacedByRename(local, info, after))) return;
        throw sourceChanged(local, describeChange(info, after));
      };
      return await uploadOpened(conn, channel, ok, { path: local, size: info.size }, offset, reader, options, started, unchanged);
    } finally {
      reader.dispose();
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

/** Send the file's bytes from `offset` on an opened put channel, then EOF with the hash; resolves with the daemon's result. */
async function uploadOpened(
  conn: ChannelOpener, channel: FileChannelClient, ok: FileOpenOk, file: { path: string; size: number },
  offset: number, reader: HashingReader, options: PutOptions, started: number, unchanged: () => Promise<void>,
): Promise<TransferResult> {
  const { path: local, size } = file;
  const progress = (bytes: number) => options.onProgress?.({ direction: 'put', local, remote: ok.path, bytes, size, resumedFrom: offset });
  progress(offset);
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const sent = await sendFile(conn, channel, ok, local, offset, size, reader, options.rateLimit, progress);
    if (sent) {
      const sha256 = await reader.digest();
      try {
        await unchanged();
      } catch (err) {
        channel.close();
        await channel.finished.catch(() => {});
        throw err;
      }
      channel.sendEof(sha256, size);
    }
    const exit = await channel.finished;
    if (!exit?.ok) throw exitError(conn, exit, `upload of ${local}`);
    return { local, remote: ok.path, size, sha256: exit.sha256 ?? '', resumedFrom: offset, durationMs: performance.now() - started };
  } finally {
    unsubscribe();
  }
}

/** Send `[offset, size)` within the server's window; false when the channel ended first. */
function sendFile(
  conn: ChannelOpener, channel: FileChannelClient, ok: FileOpenOk, local: string, offset: number, size: number,
  reader: HashingReader, rateLimit: number | undefined, progress: (bytes: number) => void,
): Promise<boolean> {
  return new Promise<boolean>((resolvePromise, reject) => {
    let settled = false;
    const sender = new FileSender({
      reader,
      start: offset,
      end: size,
      conn: conn.conn,
      channel: channel.id,
      type: FrameType.STDIN,
      window: channel.sendWindow,
      send: (piece) => channel.send(piece),
      maxPacket: ok.maxPacket,
      ...(rateLimit ? { rateLimit } : {}),
      onProgress: progress,
      onDone: () => {
        settled = true;
        resolvePromise(true);
      },
      onError: (err) => {
        settled = true;
        channel.close();
        void sender.stop().then(() => reject(err instanceof SourceChangedError ? sourceChanged(local, err.message) : localError('read', local, err)));
      },
    });
    channel.onWindow = () => sender.flush();
    // The daemon may end the upload early (disk full, canceled): stop reading, report its EXIT.
    channel.finished.then(
      () => {
        if (!settled) void sender.stop().then(() => resolvePromise(false));
      },
      (err: unknown) => {
        if (!settled) void sender.stop().then(() => reject(err));
      },
    );
    sender.flush();
  });
}

/** Download `remote` to `local` (an existing local directory: into it, under the remote name). */
export async function getFile(conn: ChannelOpener, remote: string, local: string, options: GetOptions = {}): Promise<TransferResult> {
  const started = performance.now();
  let target = resolve(local);
  const localInfo = await stat(localPath(target)).catch(() => null);
  if (localInfo?.isDirectory()) target = join(target, posix.basename(remote.replace(/\/+$/, '')) || 'download');
  const partial = join(dirname(target), partialName(basename(target)));

  // Inline: the receiving side is not the bottleneck, and its frames are not shared memory.
  let hash: StreamHash = new InlineHash();
  let offset = 0;
  const fields: Record<string, unknown> = {};
  if (options.resume !== false) {
    const existing = await open(localPath(partial), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
    if (existing) {
      try {
        const info = await existing.stat();
        const size = info.isFile() ? info.size : 0; // not a file (a FIFO): nothing to resume
        await hashFilePrefix(existing, size, hash);
        offset = size;
        if (size > 0) Object.assign(fields, { offset: size, offsetSha256: await hash.peek() });
      } finally {
        await existing.close();
      }
    }
  }
  const channel = openFile(conn, 'get', remote, fields, initialWindow(options.rateLimit));
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const ok = await channel.opened;
    const entry = ok.entry!;
    if ((ok.offset ?? 0) !== offset) {
      offset = 0; // the remote file is not what our partial file holds: start over
      hash = new InlineHash();
    }
    const handle = await open(localPath(partial), constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600).catch((err: unknown) => {
      channel.close();
      throw localError('write', partial, err);
    });
    try {
      await handle.truncate(offset);
      const result = await receiveFile(channel, { handle, path: partial }, offset, entry.size, hash, options, (bytes) =>
        options.onProgress?.({ direction: 'get', local: target, remote: ok.path, bytes, size: entry.size, resumedFrom: offset }),
      );
      const sha256 = await hash.digest();
      if (result.exit?.ok && (result.size !== entry.size || result.exit.size !== entry.size || result.exit.sha256 !== sha256)) {
        await handle.close().catch(() => {});
        await unlink(localPath(partial)).catch(() => {});
        throw new FileTransferError(
          ErrorCode.INTEGRITY,
          `SHA-256 mismatch for ${ok.path}: the server sent ${result.exit.sha256} (${result.exit.size} bytes), ${target} received ${sha256} (${result.size} bytes). The partial file was removed; run the transfer again.`,
          { host: conn.hostLabel, errno: 'EINTEGRITY', path: target },
        );
      }
      if (!result.exit?.ok) {
        // Bytes of two versions (the remote file changed), or bytes that failed the check:
        // nothing to resume from.
        if (result.exit?.errno === 'EINTEGRITY' || result.exit?.error?.code === ErrorCode.INTEGRITY || result.exit?.error?.code === ErrorCode.SOURCE_CHANGED) await unlink(localPath(partial)).catch(() => {});
        throw exitError(conn, result.exit, `download of ${ok.path}`);
      }
      try {
        await handle.sync();
        await handle.chmod(entry.mode & 0o777);
        await handle.close();
        await utimes(localPath(partial), new Date(), entry.mtimeMs / 1000);
        await rename(localPath(partial), localPath(target));
      } catch (err) {
        throw localError('finish writing', target, err);
      }
      await syncDirectory(localPath(dirname(target)));
      return { local: target, remote: ok.path, size: entry.size, sha256, resumedFrom: offset, durationMs: performance.now() - started };
    } finally {
      await handle.close().catch(() => {});
    }
  } finally {
    unsubscribe();
  }
}

/** Smallest first window of a rate-limited get (a few frames, so it never stalls on them). */
const MIN_RATED_WINDOW = 16 * 1024;

/**
 * The credit a get opens with. The daemon may send all of it at once, before any rate
 * accounting: with a rate limit it is an eighth of a second's worth, so the limit holds
 * from the first byte (FILE_WINDOW would let 8 MiB through at full speed).
 */
function initialWindow(rateLimit: number | undefined): number {
  if (!rateLimit) return FILE_WINDOW;
  return Math.min(FILE_WINDOW, Math.max(MIN_RATED_WINDOW, Math.floor(rateLimit / 8)));
}

/** Write STDOUT to the partial file, returning credit only for bytes that reached it. */
async function receiveFile(
  channel: FileChannelClient, file: { handle: FileHandle; path: string }, offset: number, size: number,
  hash: StreamHash, options: GetOptions, progress: (bytes: number) => void,
): Promise<{ exit: FileExit | null; size: number }> {
  let writeError: NodeJS.ErrnoException | null = null;
  let written = 0;
  const rate = options.rateLimit;
  const started = performance.now();
  const sink = new FileSink(
    file.handle.fd,
    offset,
    (bytes) => {
      written += bytes;
      // Rate limit: hold the credit back until the bytes are "due".
      const due = rate ? started + (written / rate) * 1000 - performance.now() : 0;
      if (due > 1) setTimeout(() => channel.credit(bytes), due);
      else channel.credit(bytes);
    },
    (err) => {
      writeError = err;
      channel.close();
    },
  );
  let received = 0;
  channel.onData = (chunk) => {
    received += chunk.length;
    if (offset + received > size) {
      writeError ??= Object.assign(new Error(`the server sent more than the ${size} bytes it announced`), { code: 'EINTEGRITY' });
      channel.close();
      return;
    }
    hash.update(chunk);
    sink.write(chunk);
    progress(offset + received);
  };
  progress(offset);
  let exit: FileExit | null;
  try {
    exit = await channel.finished;
  } finally {
    await sink.flushed();
  }
  if (writeError) throw localError('write', file.path, writeError);
  return { exit, size: sink.position };
}

/** SHA-256 of the first `length` bytes of the source (to compare with a remote partial file). */
async function hashedPrefix(reader: HashingReader, length: number, local: string): Promise<string> {
  try {
    await reader.hashPrefix(length);
  } catch (err) {
    // Shorter than when it was opened (hashPrefix hit the end): it changed under us.
    if (err instanceof SourceChangedError) throw sourceChanged(local, err.message);
    throw localError('read', local, err);
  }
  return reader.peek();
}

/**
 * True when the opened file's bytes are unchanged and only a name of it went away: its last
 * link (nlink 0), or the path now names another inode or nothing (`mv new src` meanwhile).
 * What was read is the opened version whole, as the README promises.
 */
async function replacedByRename(local: string, before: Stats, after: Stats): Promise<boolean> {
  if (!onlyUnlinked(before, after)) return false;
  if (after.nlink === 0) return true;
  const now = await stat(localPath(local)).catch(() => null);
  return !now || now.ino !== before.ino || now.dev !== before.dev;
}

/** "its size went from A to B bytes" / "it was modified…": what `sameVersion` saw. */
function describeChange(before: Stats, after: Stats): string {
  if (after.size !== before.size) return `its size went from ${before.size} to ${after.size} bytes`;
  return 'it was modified: mtime or ctime changed';
}

async function syncDirectory(dir: PathLike): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => null);
  await handle?.sync().catch(() => {});
  await handle?.close().catch(() => {});
}

/** A remote path's entry (symlinks followed); rejects with errno ENOENT when it does not exist. */
export async function statRemote(conn: ChannelOpener, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry & { path: string }> {
  const channel = openFile(conn, 'stat', remote, {});
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const ok = await channel.opened;
    await channel.finished;
    return { ...ok.entry!, path: ok.path };
  } finally {
    unsubscribe();
  }
}

/** Longest directory entry line accepted from the daemon (names are at most a few KiB). */
const MAX_ENTRY_LINE = 64 * 1024;

/** The entries of a remote directory, sorted by name (a file lists as itself). Names are OS byte strings. */
export async function listRemote(conn: ChannelOpener, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry[]> {
  const channel = openFile(conn, 'list', remote, {}, LIST_WINDOW);
  const unsubscribe = onAbort(options.signal, channel);
  const entries: RemoteEntry[] = [];
  let rest: Buffer = Buffer.alloc(0);
  channel.onData = (chunk) => {
    let data = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
      entries.push(decodeFileEntry(data.subarray(0, nl).toString('utf8')));
      data = data.subarray(nl + 1);
    }
    // Credit goes back as bytes are consumed, so a line that never ends would grow `rest`
    // without bound: an entry line is small (a name and a few fields).
    if (data.length > MAX_ENTRY_LINE) {
      throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${conn.hostLabel} sent a directory entry longer than ${MAX_ENTRY_LINE} bytes while listing ${remote}.`, { host: conn.hostLabel });
    }
    rest = Buffer.from(data);
    channel.credit(chunk.length);
  };
  try {
    await channel.opened;
    const exit = await channel.finished;
    if (!exit?.ok) throw exitError(conn, exit, `listing of ${remote}`);
  } finally {
    unsubscribe();
  }
  // Byte order of the names (as `LC_ALL=C ls`), not UTF-16 order of their strings.
  return entries
    .map((entry) => ({ entry, bytes: encodeOsBytes(entry.name) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ entry }) => entry);
}

/** Create `remote` and its parents; sets `mode`/`mtimeMs` on it when given. Resolves with its absolute path. */
export async function mkdirRemote(conn: ChannelOpener, remote: string, options: { mode?: number; mtimeMs?: number; signal?: AbortSignal } = {}): Promise<string> {
  const { signal, ...fields } = options;
  const channel = openFile(conn, 'mkdir', remote, fields);
  const unsubscribe = onAbort(signal, channel);
  try {
    const ok = await channel.opened;
    const exit = await channel.finished;
    if (!exit?.ok) throw exitError(conn, exit, `mkdir of ${remote}`);
    return ok.path;
  } finally {
    unsubscribe();
  }
}
