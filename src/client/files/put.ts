/**
 * `put`: upload one file (putFile) or, with `recursive`, trees (putTree), over "file"
 * channels (src/protocol/file-messages.ts; the daemon's side is server/files/put.ts).
 *
 * Atomic and verified: bytes go to `.NAME.shellwire-part` beside the target, are hashed on
 * both sides (SHA-256) and renamed into place only when the hashes agree, with mode and
 * mtime preserved. With `resume`, a partial file left by an interrupted upload is continued
 * if its bytes are a prefix of the source (checked by hash, then verified end to end). Data
 * moves no faster than the daemon writes it.
 *
 * Like `cp -r`/`scp -r`, a source directory lands inside an existing target directory under
 * its own name, else becomes the target; directories get their mode and mtime last (adding
 * files changes a directory's mtime). One file fails → it is in `failures` and the walk goes
 * on; a lost connection ends it. Links to files are copied as files, links to directories
 * are not followed, and nothing is left out in silence: an entry not copied is a failure.
 * Names are bytes: directories are read as Buffers, every path is an OS byte string.
 */
import { constants, type Dirent, type Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join, posix, resolve } from 'node:path';
import { FileSender, SourceChangedError, onlyUnlinked, sameVersion } from '../../channel/file-stream.js';
import { openHashingReader, type HashingReader } from '../../channel/file-hash.js';
import { FrameType } from '../../protocol/frame.js';
import type { FileOpenOk, PutRequest } from '../../protocol/file-messages.js';
import { ErrorCode } from '../../errors.js';
import { decodeOsBytes } from '../../protocol/os-bytes.js';
import type { ChannelOpener } from '../channel-host.js';
import type { FileChannelClient } from '../file-channel.js';
import {
  FileTransferError, TreeWalk, exitError, localError, localPath, onAbort, openFile, sourceChanged, startTransfer,
  type PutOptions, type TransferResult, type TreeOptions, type TreeResult,
} from './common.js';
import { mkdirRemote, statRemote } from './meta.js';

/** Upload `local` to `remote` (relative: the remote user's home; a directory: into it). */
export async function putFile(conn: ChannelOpener, local: string, remote: string, options: PutOptions = {}): Promise<TransferResult> {
  startTransfer(conn, options, 'upload', local);
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
      let channel = openFile(conn, { op: 'put', path: remote, ...fields, resume: options.resume !== false } satisfies PutRequest);
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
          channel = openFile(conn, { op: 'put', path: remote, ...fields, resume: false } satisfies PutRequest);
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

/**
 * @internal The gateway's push of a spooled upload (src/gateway/fanout-put.ts): upload
 * `local` announcing the operator's file (`name`, `mode`, `mtimeMs`) rather than the spool
 * file's, from the start (a spool file is new each time: nothing to resume). The host
 * verifies SHA-256 and renames into place as for any put.
 */
export async function putAs(conn: ChannelOpener, local: string, remote: string, fields: { name?: string; mode: number; mtimeMs: number }, options: PutOptions = {}): Promise<TransferResult> {
  const started = performance.now();
  const handle = await open(localPath(local), constants.O_RDONLY).catch((err: unknown) => {
    throw localError('read', local, err);
  });
  try {
    const info = await handle.stat();
    const reader = openHashingReader(handle.fd);
    try {
      const channel = openFile(conn, { op: 'put', path: remote, size: info.size, mode: fields.mode, mtimeMs: fields.mtimeMs, ...(fields.name !== undefined ? { name: fields.name } : {}), resume: false } satisfies PutRequest);
      const ok = await channel.opened;
      return await uploadOpened(conn, channel, ok, { path: local, size: info.size }, 0, reader, options, started, async () => {});
    } finally {
      reader.dispose();
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

/** Send `[offset, size)` within the server's window; false when the channel ended first. */
export function sendFile(
  conn: ChannelOpener, channel: FileChannelClient, ok: FileOpenOk, local: string, offset: number, size: number,
  reader: HashingReader, rateLimit: number | undefined, progress: (bytes: number) => void,
): Promise<boolean> {
  return new Promise<boolean>((resolvePromise, reject) => {
    let settled = false;
    const sender = new FileSender({
      reader,
      start: offset,
      end: size,
      conn: conn.transport,
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

/** Upload `sources` (files, and directories with `recursive`) to `remote`. */
export async function putTree(conn: ChannelOpener, sources: string[], remote: string, options: TreeOptions = {}): Promise<TreeResult> {
  startTransfer(conn, options, 'upload', sources.join(' '));
  const walk = new TreeWalk(conn, options);
  const dest = await statRemote(conn, remote, { signal: options.signal }).catch((err: unknown) => {
    if (err instanceof FileTransferError && err.errno === 'ENOENT') return null;
    throw err;
  });
  const destDir = dest?.type === 'dir' ? dest.path : null;
  if (!destDir && remote.endsWith('/')) {
    // As the daemon words it (server/files/put.ts): DIR/ means "into DIR", never a file called DIR.
    const why = dest ? 'it is not a directory (ENOTDIR); drop the trailing \'/\' to replace it' : 'no such directory (ENOENT); create it first (shellwire mkdir)';
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `Cannot write to ${conn.hostLabel}:${remote}: ${why}.`, { host: conn.hostLabel, errno: dest ? 'ENOTDIR' : 'ENOENT', path: remote });
  }
  if (sources.length > 1 && !destDir) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `${remote} is not a directory on ${conn.hostLabel}; with several sources the target must be an existing directory.`, { host: conn.hostLabel, path: remote });
  }
  for (const source of sources) {
    await walk.attempt(source, async () => {
      const info = await stat(localPath(source)).catch(() => null);
      if (info?.isDirectory()) {
        if (!options.recursive) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${source} is a directory; use -r to copy directories.`, { errno: 'EISDIR', path: source });
        await putDir(walk, source, destDir ? posix.join(destDir, basename(resolve(source))) : remote);
        return;
      }
      return putFile(conn, source, destDir ?? remote, options);
    });
  }
  return walk.result;
}

async function putDir(walk: TreeWalk, local: string, remote: string): Promise<void> {
  const { conn, options } = walk;
  const remoteDir = await mkdirRemote(conn, remote, { signal: options.signal });
  walk.result.directories += 1;
  // Names as bytes, in byte order (as `LC_ALL=C ls`): a name that is not UTF-8 is one
  // like any other, not a U+FFFD spelling that names no file.
  const entries = (await readdir(localPath(local), { withFileTypes: true, encoding: 'buffer' }) as unknown as Array<Dirent<Buffer>>)
    .sort((a, b) => Buffer.compare(a.name, b.name));
  for (const entry of entries) {
    const name = decodeOsBytes(entry.name);
    const path = join(local, name);
    const target = posix.join(remoteDir, name);
    let kind: 'file' | 'dir' | 'skip' = entry.isFile() ? 'file' : entry.isDirectory() ? 'dir' : 'skip';
    if (entry.isSymbolicLink()) {
      const info = await stat(localPath(path)).catch(() => null);
      kind = info?.isFile() ? 'file' : 'skip';
      if (kind === 'skip') walk.skip(path, `${path}: ${info ? 'symbolic link to a directory, not followed' : 'broken symbolic link'}; skipped.`);
    } else if (kind === 'skip') {
      walk.skip(path, `${path}: not a regular file or directory; skipped.`);
    }
    if (kind !== 'skip' && walk.skipTooLong(path, target)) continue;
    if (kind === 'file') await walk.attempt(path, () => putFile(conn, path, target, { ...options, intoDirectory: false }));
    else if (kind === 'dir') await putDir(walk, path, target);
  }
  const info = await stat(localPath(local));
  await mkdirRemote(conn, remoteDir, { mode: info.mode & 0o777, mtimeMs: info.mtimeMs, signal: options.signal });
}
