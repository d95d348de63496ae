/**
 * Server side of `put`: receive one file into `.NAME.shellwire-part` beside the target,
 * then fsync, compare SHA-256 with the client's, set mode and mtime, rename into place,
 * fsync the directory. Until that rename the target is untouched, so no reader ever sees
 * a half-written file under its name, and a failure leaves the old file as it was.
 *
 *   client: OPEN{op:"put", path, name?, size, mode, mtimeMs, resume} → STDIN* → EOF{sha256, size}
 *   server: OPEN_OK{window, path, offset, offsetSha256?} → WINDOW* → EXIT{size, sha256} → CLOSE
 *
 * Resume: with `resume`, an existing partial file of at most `size` bytes is kept and
 * OPEN_OK says `offset` = its size and `offsetSha256` = its hash. The client sends bytes
 * from `offset` if its own first `offset` bytes hash the same, else it closes the channel
 * and opens again without `resume` (the partial file is then truncated).
 */
import { constants, type PathLike } from 'node:fs';
import { open, stat, statfs, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FileSink, FILE_WINDOW } from '../../channel/file-stream.js';
import { InlineHash, hashFilePrefix, type StreamHash } from '../../channel/file-hash.js';
import { decodePutEof, partialName, type PutRequest } from '../../protocol/file-messages.js';
import { FileOpError, systemError } from './paths.js';
import { kindOf } from '../../file-kind.js';
import { fdPath, type Location } from './beneath.js';
import { failure, type FileOpContext, type FileOperation, type OpenFields } from './operation.js';
import { ErrorCode, errnoOf } from '../../errors.js';

/**
 * Partial files being written by this daemon, as "DEV:INO/NAME" of their directory (however
 * it was spelled): two uploads to one target would corrupt each other.
 */
const ACTIVE_PARTIALS = new Map<string, { released: Promise<void>; release: () => void }>();

/**
 * How long a new upload waits for an earlier one to the same target to let go. An upload the
 * client just aborted is still closing its partial file here when the client's `--resume`
 * arrives (the CLOSE handshake is answered before the file is closed): that one waits its
 * moment instead of being told to try again. An upload still running is refused after this.
 */
const LOCK_WAIT_MS = 2_000;

/** Resolves true when `key` is free (now or within `ms`), false if it is still held. */
async function lockFreed(key: string, ms: number): Promise<boolean> {
  const held = ACTIVE_PARTIALS.get(key);
  if (!held) return true;
  let timer: NodeJS.Timeout | undefined;
  const freed = await Promise.race([held.released.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  // Another waiter may have taken it in the meantime.
  return freed && !ACTIVE_PARTIALS.has(key);
}
/** Opening the partial file: never follow, never block (a FIFO planted there), never reuse a name's inode. */
/** True for a target spelled as a directory: ends in '/' or '/.'. */
export function namesDirectory(path: string): boolean {
  return path.endsWith('/') || path.endsWith('/.');
}

const PARTIAL_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK;

export class PutOperation implements FileOperation {
  readonly inWindow = FILE_WINDOW;
  #ctx: FileOpContext;
  #req: PutRequest;
  #target = '';
  #partial = '';
  /** The target's directory, held: the partial file is created, renamed and removed in it. */
  #location: Location | null = null;
  #partialName = '';
  #lockKey = '';
  #locked = false;
  #handle: FileHandle | null = null;
  #sink: FileSink | null = null;
  // Inline: the receiving side is not the bottleneck, and its frames are not shared memory.
  #hash: StreamHash = new InlineHash();
  #offset = 0;
  #received = 0;
  #done = false;
  #opening = false;
  #committing = false;

  constructor(ctx: FileOpContext, req: PutRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    this.#opening = true;
    try {
      return await this.#prepare();
    } catch (err) {
      await this.#release();
      throw err;
    } finally {
      this.#opening = false;
    }
  }

  async #prepare(): Promise<OpenFields> {
    const req = this.#req;
    let location = await this.#ctx.locate(req.path, { verb: 'write to' });
    this.#location = location;
    // `DIR/` (or `DIR/.`) names a directory, as with cp and scp: the file goes into it under
    // `name`, and never becomes a regular file called DIR (the path resolves without its '/').
    if (namesDirectory(req.path)) {
      if (!location.stats) throw new FileOpError(`Cannot write to ${req.path}: no such directory (ENOENT). Create it first (shellwire mkdir), or name the file without a trailing '/'.`, { errno: 'ENOENT' });
      if (!location.stats.isDirectory()) throw new FileOpError(`Cannot write to ${req.path}: ${location.path} is not a directory (ENOTDIR). Drop the trailing '/' to replace it.`, { errno: 'ENOTDIR' });
      if (!req.name) throw new FileOpError(`Cannot write to ${req.path}: the target ends in '/' and no file name was sent; name the file, e.g. ${req.path.replace(/\/\.?$/, '')}/NAME.`, { errno: 'EISDIR' });
    }
    if (location.stats?.isDirectory()) {
      if (!req.name) throw new FileOpError(`Cannot write to ${location.path}: it is a directory.`, { errno: 'EISDIR' });
      // Walked again from the root: `name` may hold anything, and is checked like a path.
      location = await this.#ctx.locate(join(location.path, req.name), { verb: 'write to' });
      await this.#location.close();
      this.#location = location;
      if (location.stats?.isDirectory()) throw new FileOpError(`Cannot write to ${location.path}: it is a directory.`, { errno: 'EISDIR' });
    }
    const target = location.path;
    const existing = location.stats;
    // A FIFO, device or socket is never replaced, nor opened. (A symlink was followed.)
    if (existing && !existing.isFile()) throw new FileOpError(`Cannot write to ${target}: it is ${kindOf(existing)}, not a regular file.`);
    const dir = dirname(target);
    const dirStat = await stat(fdPath(location.dir)); // its identity, for the upload lock
    this.#target = target;
    this.#partialName = partialName(location.name);
    this.#partial = join(dir, this.#partialName);
    this.#lockKey = `${dirStat.dev}:${dirStat.ino}/${this.#partialName}`;
    if (!(await lockFreed(this.#lockKey, LOCK_WAIT_MS))) {
      throw new FileOpError(`Another upload to ${target} is in progress on this daemon; try again when it is done.`, { errno: 'EBUSY' });
    }
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    ACTIVE_PARTIALS.set(this.#lockKey, { released, release });
    this.#locked = true;

    if (req.resume) await this.#openPartialForResume();
    // Refuse up front what cannot fit (the old target stays until the rename, so the
    // whole new file must fit beside it); ENOSPC during the writes is still handled.
    const needed = req.size - this.#offset;
    const space = await statfs(fdPath(location.dir)).catch(() => null);
    const available = space ? Number(space.bavail) * Number(space.bsize) : Infinity;
    if (needed > available) {
      throw new FileOpError(
        `Not enough space in ${dir}: the upload needs ${needed} more bytes, ${available} are available. ${target} was not changed.`,
        { errno: 'ENOSPC' },
      );
    }
    if (!this.#handle) this.#handle = await this.#createPartial();
    this.#sink = new FileSink(this.#handle.fd, this.#offset, (bytes) => this.#ctx.credit(bytes), (err) => this.#sinkOnError(err));
    const fields: OpenFields = { path: target, offset: this.#offset };
    if (this.#offset > 0) fields.offsetSha256 = await this.#hash.peek();
    return fields;
  }

  /**
   * A new, empty partial file of our own: whatever held the name (a stale partial, or a
   * symlink, hard link or FIFO planted there) is unlinked, never opened, truncated or
   * written through; O_EXCL makes sure the inode is the one just created.
   */
  async #createPartial(): Promise<FileHandle> {
    const path = this.#location!.inDir(this.#partialName);
    for (let attempt = 0; ; attempt++) {
      await unlink(path).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw systemError('replace the old partial file', this.#partial, err);
      });
      try {
        return await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | PARTIAL_FLAGS, 0o600);
      } catch (err) {
        // EEXIST: something was put there again between the unlink and the open.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw systemError('create', this.#partial, err);
      }
    }
  }

  async #openPartialForResume(): Promise<void> {
    let handle: FileHandle;
    try {
      // O_RDWR never blocks, even on a FIFO; O_NONBLOCK says so anyway.
      handle = await open(this.#location!.inDir(this.#partialName), constants.O_RDWR | PARTIAL_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Missing, or not a file to resume (a symlink: ELOOP; a socket: ENXIO; a directory: EISDIR).
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO' || code === 'EISDIR') return;
      throw systemError('open', this.#partial, err);
    }
    const info = await handle.stat();
    // Only a plain file of ours is resumed: one with another link (a hard link to a file
    // outside the roots, say) would be written in place there. Anything else starts over
    // in a new inode (#createPartial).
    if (!info.isFile() || info.nlink !== 1 || info.size > this.#req.size) {
      await handle.close();
      return;
    }
    this.#handle = handle;
    await hashFilePrefix(handle, info.size, this.#hash).catch((err: unknown) => {
      throw systemError('read', this.#partial, err);
    });
    this.#offset = info.size;
  }

  run(): void {
    // Nothing to start: the client sends data within our window. An empty remainder
    // (empty file, or a partial file that is already complete) comes as EOF alone.
  }

  onData(chunk: Buffer): void {
    if (this.#done) return;
    this.#received += chunk.length;
    if (this.#offset + this.#received > this.#req.size) {
      void this.#fail(new FileOpError(`The client sent more than the ${this.#req.size} bytes it announced for ${this.#target}; nothing was changed.`), false);
      return;
    }
    this.#hash.update(chunk);
    this.#sink!.write(chunk);
  }

  onEof(payload: Buffer): void {
    const eof = decodePutEof(payload);
    if (this.#done || this.#committing) return;
    this.#committing = true;
    void this.#commit(eof.sha256, eof.size);
  }

  async #commit(clientSha: string, clientSize: number): Promise<void> {
    const req = this.#req;
    await this.#sink!.flushed();
    if (this.#done) return;
    const size = this.#sink!.position;
    if (size !== req.size || clientSize !== req.size) {
      return this.#fail(new FileOpError(`Upload of ${this.#target} ended after ${size} of ${req.size} bytes; run it again with --resume.`), false);
    }
    const sha256 = await this.#hash.digest();
    if (sha256 !== clientSha) {
      return this.#fail(
        new FileOpError(`SHA-256 mismatch for ${this.#target}: the client sent ${clientSha}, the server received ${sha256}. The partial file was removed and the target was not changed; run the transfer again.`,
          // errno stays for v1 clients that predate SW_ERR_INTEGRITY (they look for it to drop their state).
          { code: ErrorCode.INTEGRITY, errno: 'EINTEGRITY' }),
        true,
      );
    }
    try {
      const handle = this.#handle!;
      await handle.sync().catch((err: unknown) => {
        throw systemError('flush', this.#partial, err);
      });
      await handle.chmod(req.mode & 0o777).catch((err: unknown) => {
        throw systemError('set the mode of', this.#partial, err);
      });
      const mtime = req.mtimeMs / 1000;
      await handle.utimes(mtime, mtime).catch((err: unknown) => {
        throw systemError('set the time of', this.#partial, err);
      });
      await handle.close();
      this.#handle = null;
      // Both names in the directory held: rename follows neither.
      const location = this.#location!;
      await rename(location.inDir(this.#partialName), location.inDir()).catch((err: unknown) => {
        throw systemError('rename the upload onto', this.#target, err);
      });
      await syncDirectory(fdPath(location.dir));
    } catch (err) {
      return this.#fail(err, false);
    }
    this.#done = true;
    await this.#release();
    this.#ctx.finish({ ok: true, size, sha256 });
  }

  onWindow(): void {}

  abort(): void {
    // A verified upload being committed finishes (the data is whole); anything else stops
    // and keeps the partial file for --resume.
    if (this.#committing) return;
    this.#done = true;
    // While open() runs it owns the file and the lock; the channel calls abort() again
    // when open() settles (or open() releases them itself when it fails).
    if (!this.#opening) void this.#release();
  }

  summary(): Record<string, unknown> {
    return { path: this.#target || this.#req.path, size: this.#req.size, resumedFrom: this.#offset, bytesIn: this.#received };
  }

  #sinkOnError(err: Error): void {
    const full = errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT';
    const error = systemError('write', this.#partial, err);
    const message = full
      ? `${error.message} The partial file was removed to free the space; ${this.#target} was not changed.`
      : `${error.message} ${this.#target} was not changed.`;
    void this.#fail(new FileOpError(message, error.errno ? { errno: error.errno } : {}), full);
  }

  async #fail(err: unknown, removePartial: boolean): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#release(removePartial);
    this.#ctx.finish(failure(err, this.#ctx.host));
  }

  /**
   * Stop writing, close the partial file (removing it with `removePartial`), let go of the
   * directory, let other uploads to the target proceed.
   */
  async #release(removePartial = false): Promise<void> {
    await this.#sink?.stop();
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close().catch(() => {});
    const location = this.#location;
    this.#location = null;
    if (removePartial && location && this.#locked) await unlink(location.inDir(this.#partialName)).catch(() => {});
    await location?.close();
    if (this.#locked) {
      ACTIVE_PARTIALS.get(this.#lockKey)?.release();
      ACTIVE_PARTIALS.delete(this.#lockKey);
    }
    this.#locked = false;
  }
}


/** fsync the directory so the rename itself survives a crash. */
export async function syncDirectory(dir: PathLike): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => null);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close().catch(() => {});
}
