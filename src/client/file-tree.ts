/**
 * Recursive transfers (`put -r`, `get -r`): walk a tree and move each file with
 * putFile/getFile, creating directories first and setting their mode and mtime last
 * (adding files changes a directory's mtime). Like `cp -r`/`scp -r`: a source directory
 * lands inside an existing target directory under its own name, else becomes the target.
 *
 * One file fails → it is recorded in `failures` and the walk goes on; a lost connection
 * ends the walk. Symbolic links to files are copied as files; links to directories are
 * not followed (no loops). Nothing is left out in silence: an entry that is not copied
 * (a link to a directory, a broken link, a socket, FIFO or device) is a failure too, with
 * a message, so the caller (and the CLI's exit status) knows the copy is not whole.
 *
 * Names are bytes: local directories are read as Buffers and every path is an OS byte
 * string (src/protocol/os-bytes.ts) turned back into its bytes for each system call, so a
 * name that is not UTF-8 (`caf\xe9.txt`) is copied as itself in both directions.
 */
import { chmod, mkdir, readdir, stat, utimes } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { basename, join, posix, resolve } from 'node:path';
import { ErrorCode } from '../errors.js';
import { decodeOsBytes } from '../protocol/os-bytes.js';
import type { ChannelOpener } from './channel-host.js';
import { FileTransferError } from './file-channel.js';
import { MAX_PATH_LENGTH } from '../protocol/file-messages.js';
import {
  getFile, listRemote, localPath, mkdirRemote, putFile, remotePathTooLong, statRemote, type RemoteEntry, type TransferOptions, type TransferResult,
} from './file-transfer.js';

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
function perFile(err: unknown): err is FileTransferError {
  return err instanceof FileTransferError && err.code !== ErrorCode.COMMAND_CANCELED;
}

class TreeWalk {
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

/** Upload `sources` (files, and directories with `recursive`) to `remote`. */
export async function putTree(conn: ChannelOpener, sources: string[], remote: string, options: TreeOptions = {}): Promise<TreeResult> {
  const walk = new TreeWalk(conn, options);
  const dest = await statRemote(conn, remote, { signal: options.signal }).catch((err: unknown) => {
    if (err instanceof FileTransferError && err.errno === 'ENOENT') return null;
    throw err;
  });
  const destDir = dest?.type === 'dir' ? dest.path : null;
  if (!destDir && remote.endsWith('/')) {
    throw new FileTransferError(ErrorCode.BAD_REQUEST, `${conn.hostLabel}:${remote} is not an existing directory.`, { host: conn.hostLabel, errno: dest ? 'ENOTDIR' : 'ENOENT', path: remote });
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

/** Download `remotes` (files, and directories with `recursive`) to `local`. */
export async function getTree(conn: ChannelOpener, remotes: string[], local: string, options: TreeOptions = {}): Promise<TreeResult> {
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
  await mkdir(localPath(local), { recursive: true });
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
