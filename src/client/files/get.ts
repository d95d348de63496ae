/**
 * `get`: download one file (getFile) or, with `recursive`, trees (getTree), over "file"
 * channels (src/protocol/file-messages.ts; the daemon's side is server/files/get.ts).
 *
 * Atomic and verified: bytes go to `.NAME.shellwire-part` beside the target, are hashed as
 * they arrive (SHA-256), compared with the daemon's hash, and renamed into place only when
 * they agree, with mode and mtime preserved. With `resume`, a partial file is continued when
 * the daemon's first bytes hash the same. Credit goes back only for bytes that reached the
 * disk, so the daemon sends no faster than this side writes.
 *
 * Trees: as put.ts says (scp -r placement, failures instead of silent gaps, names as bytes).
 */
import { constants, type PathLike } from 'node:fs';
import { chmod, mkdir, open, stat, rename, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { FileSink, FILE_WINDOW } from '../../channel/file-stream.js';
import { hashFilePrefix, InlineHash, type StreamHash } from '../../channel/file-hash.js';
import { partialName, type FileExit, type GetRequest } from '../../protocol/file-messages.js';
import { ErrorCode } from '../../errors.js';
import type { ChannelOpener } from '../channel-host.js';
import type { FileChannelClient } from '../file-channel.js';
import {
  FileTransferError, TreeWalk, exitError, localError, localPath, localTargetError, onAbort, openFile, perFile, startTransfer,
  type GetOptions, type RemoteEntry, type TransferResult, type TreeOptions, type TreeResult,
} from './common.js';
import { listRemote, statRemote } from './meta.js';

/** Download `remote` to `local` (an existing local directory: into it, under the remote name). */
export async function getFile(conn: ChannelOpener, remote: string, local: string, options: GetOptions = {}): Promise<TransferResult> {
  startTransfer(conn, options, 'download', remote);
  const started = performance.now();
  let target = resolve(local);
  const localInfo = await stat(localPath(target)).catch(() => null);
  if (localInfo?.isDirectory()) target = join(target, posix.basename(remote.replace(/\/+$/, '')) || 'download');
  const partial = join(dirname(target), partialName(basename(target)));

  // Inline: the receiving side is not the bottleneck, and its frames are not shared memory.
  let hash: StreamHash = new InlineHash();
  let offset = 0;
  const request: GetRequest = { op: 'get', path: remote, offset: 0 };
  if (options.resume !== false) {
    const existing = await open(localPath(partial), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
    if (existing) {
      try {
        const info = await existing.stat();
        const size = info.isFile() ? info.size : 0; // not a file (a FIFO): nothing to resume
        await hashFilePrefix(existing, size, hash);
        offset = size;
        if (size > 0) Object.assign(request, { offset: size, offsetSha256: await hash.peek() });
      } finally {
        await existing.close();
      }
    }
  }
  const channel = openFile(conn, request, initialWindow(options.rateLimit));
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
      throw localTargetError(target, err);
    });
    try {
      await handle.truncate(offset);
      const result = await receiveFile(channel, { handle, path: partial, target }, offset, entry.size, hash, options, (bytes) =>
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
  channel: FileChannelClient, file: { handle: FileHandle; path: string; target: string }, offset: number, size: number,
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
  if (writeError) {
    if ((writeError as NodeJS.ErrnoException).code === 'EINTEGRITY') throw localError('write', file.target, writeError);
    throw localTargetError(file.target, writeError, file.path);
  }
  return { exit, size: sink.position };
}

async function syncDirectory(dir: PathLike): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => null);
  await handle?.sync().catch(() => {});
  await handle?.close().catch(() => {});
}

/** Download `remotes` (files, and directories with `recursive`) to `local`. */
export async function getTree(conn: ChannelOpener, remotes: string[], local: string, options: TreeOptions = {}): Promise<TreeResult> {
  startTransfer(conn, options, 'download', remotes.join(' '));
  const walk = new TreeWalk(conn, options);
  const localInfo = await stat(localPath(local)).catch(() => null);
  const localDir = localInfo?.isDirectory() ? local : null;
  if (!localDir && local.endsWith('/') && !(options.recursive && remotes.length === 1)) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is not an existing directory.`, { errno: localInfo ? 'ENOTDIR' : 'ENOENT', path: local });
  }
  if (remotes.length > 1 && !localDir) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is not a directory; with several sources the target must be an existing directory.`, { path: local });
  }
  for (const remote of remotes) {
    await walk.attempt(remote, async () => {
      const entry = await statRemote(conn, remote, { signal: options.signal });
      if (entry.type === 'dir') {
        if (!options.recursive) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${conn.hostLabel}:${remote} is a directory; use -r to copy directories.`, { errno: 'EISDIR', path: remote });
        await getDir(walk, entry.path, entry, localDir ? join(localDir, posix.basename(entry.path) || 'root') : local);
        return;
      }
      return getFile(conn, entry.path, local, options);
    });
  }
  return walk.result;
}

async function getDir(walk: TreeWalk, remote: string, self: RemoteEntry, local: string): Promise<void> {
  const { conn, options } = walk;
  await mkdir(localPath(local), { recursive: true }).catch((err: unknown) => {
    throw localTargetError(local, err);
  });
  walk.result.directories += 1;
  for (const entry of await listRemote(conn, remote, { signal: options.signal })) {
    const source = posix.join(remote, entry.name);
    const path = join(local, entry.name);
    if (walk.skipTooLong(`${conn.hostLabel}:${source}`, source)) continue;
    let resolved: RemoteEntry = entry;
    if (entry.type === 'symlink') {
      const target = await statRemote(conn, source, { signal: options.signal }).catch((err: unknown) => {
        if (perFile(err)) return null;
        throw err;
      });
      if (target?.type !== 'file') {
        walk.skip(source, `${conn.hostLabel}:${source}: ${target ? 'symbolic link to a directory, not followed' : 'broken symbolic link or outside the allowed roots'}; skipped.`);
        continue;
      }
      resolved = target;
    }
    if (resolved.type === 'file') {
      const existing = await stat(localPath(path)).catch(() => null);
      if (existing?.isDirectory()) {
        walk.result.failures.push({ path: source, error: new FileTransferError(ErrorCode.BAD_REQUEST, `${path} is a directory; cannot replace it with a file.`, { errno: 'EISDIR', path }) });
        continue;
      }
      await walk.attempt(source, () => getFile(conn, source, path, options));
    } else if (resolved.type === 'dir') {
      await getDir(walk, source, resolved, path);
    } else {
      walk.skip(source, `${conn.hostLabel}:${source}: not a regular file or directory; skipped.`);
    }
  }
  await chmod(localPath(local), self.mode & 0o777);
  await utimes(localPath(local), new Date(), self.mtimeMs / 1000);
}
