/**
 * Reach a path inside the file roots without a window between check and use.
 *
 * A local process of the daemon's account can swap any directory inside a root for a
 * symlink to the outside at any moment (renameat2 RENAME_EXCHANGE in a loop). Checking a
 * resolved path and then using it by name lets that swap redirect the use. So nothing is
 * used by name: the walk starts at `/`, opens every component as an O_PATH descriptor with
 * O_NOFOLLOW *relative to the directory descriptor it holds* (through
 * `/proc/self/fd/DIR/NAME`: Node has no openat), checks its type with fstat, and goes on
 * from that descriptor. The result (`Location`) holds the directory that contains the
 * entry and the entry itself; every later call goes through them — `inDir()` for calls on
 * a name in that directory (create, rename, unlink, lstat, mkdir: their last component is
 * not followed), `self()` for the inode that was checked (reopen to read, opendir, chmod,
 * utimes). A swapped component then fails the walk or is walked as a symlink, never
 * followed blindly. O_PATH opens nothing for I/O, so a FIFO or device on the way never
 * blocks, and no file is opened before its type is known.
 *
 * Symlinks inside the roots are followed the way the kernel would: the link is read and the
 * path it makes is walked again from `/` the same way, so it too must stay inside a root
 * (one that points out is refused, dangling or not; 40 links at most, then ELOOP).
 *
 * Every directory descriptor held on the way (the root's own components included) and the
 * entry reached are checked against the forbidden directories (forbidden.ts) by device and
 * inode: the daemon's state dir is refused however it is spelled or mounted.
 *
 * Linux only (O_PATH, /proc/self/fd), as the daemon is.
 */
import * as fs from 'node:fs';
import { constants, type Stats } from 'node:fs';
import { mkdir, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { decodeOsBytes, encodeOsBytes } from '../../protocol/os-bytes.js';
import { FileOpError, inside, realRoots, requestedPath, resolveReal, systemError } from './paths.js';
import { ForbiddenSet, type ForbiddenDir } from './forbidden.js';

/** open(2) O_PATH (same value on x86_64 and arm64); not in Node's fs.constants. */
const O_PATH = 0o10000000;
const PATH_NOFOLLOW = O_PATH | constants.O_NOFOLLOW;
/** As the kernel's MAXSYMLINKS. */
const MAX_LINKS = 40;

// Descriptor calls (fs/promises only has FileHandles, which close themselves on GC).
const open = promisify(fs.open) as (path: fs.PathLike, flags: number, mode?: number) => Promise<number>;
const close = promisify(fs.close);
const fstat = promisify(fs.fstat) as (fd: number) => Promise<Stats>;

/**
 * `/proc/self/fd/FD` (the inode FD holds), or `/proc/self/fd/FD/NAME` (NAME in that
 * directory). A Buffer: NAME is an OS byte string (os-bytes.ts) and the system call must
 * get its bytes, not its UTF-8 spelling (`caf\udce9` is the byte 0xE9, not U+FFFD).
 */
export function fdPath(fd: number, name?: string): Buffer {
  const dir = `/proc/self/fd/${fd}`;
  return name === undefined ? Buffer.from(dir) : Buffer.concat([Buffer.from(`${dir}/`), encodeOsBytes(name)]);
}

export interface LocateOptions {
  /** Follow a symlink in the last component (default true); it must stay inside the roots. */
  follow?: boolean;
  /** Create missing directories on the way, the last one included (mkdir -p). */
  create?: boolean;
  /** For messages: "Cannot VERB PATH: …" ("read", "write to", "list", …). */
  verb: string;
  /** Directories never opened, nor anything beneath them (forbidden.ts); none by default. */
  forbidden?: readonly ForbiddenDir[];
}

/** An entry reached inside the roots; holds descriptors until `close()`. */
export class Location {
  /** The real path when it was walked (for messages and replies; never used to reach it). */
  readonly path: string;
  /** O_PATH descriptor of the directory that holds `name` (of the root itself for a root). */
  readonly dir: number;
  /** The entry's name in `dir`; "." for a root itself. */
  readonly name: string;
  /** O_PATH descriptor of the entry; null when it does not exist. */
  readonly fd: number | null;
  /** The entry's type, size, mode…, from fstat of `fd` (not followed: a kept symlink is a symlink). */
  readonly stats: Stats | null;
  /** The last component was created by this walk (`create`). */
  readonly created: boolean;
  #closed = false;

  constructor(path: string, dir: number, name: string, fd: number | null, stats: Stats | null, created = false) {
    this.path = path;
    this.dir = dir;
    this.name = name;
    this.fd = fd;
    this.stats = stats;
    this.created = created;
  }

  /** A name in the held directory (default: the entry's own name). */
  inDir(name: string = this.name): Buffer {
    return fdPath(this.dir, name);
  }

  /** The checked inode itself (to reopen it for reading, list it, chmod it). */
  self(): Buffer {
    if (this.fd === null) throw new FileOpError(`Internal error: ${this.path} does not exist.`);
    return fdPath(this.fd);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.fd !== null && this.fd !== this.dir) await close(this.fd).catch(() => {});
    await close(this.dir).catch(() => {});
  }
}

/**
 * Resolve `text` (relative to `home`) inside `roots` and hold what it names. Throws
 * `FileOpError` with `escape: true` when it lands, or a symlink on the way points, outside
 * the roots; with the system error (ENOENT, ENOTDIR, ELOOP, …) when the walk fails.
 * A missing last component is not an error: `fd` is null.
 */
export async function locateInRoots(text: string, home: string, roots: readonly string[], options: LocateOptions): Promise<Location> {
  const allowed = await realRoots(roots);
  const forbidden = await ForbiddenSet.of(options.forbidden ?? []);
  const walk = new Walk(text || '~', roots, allowed, options, forbidden);
  return walk.start(requestedPath(text, home));
}

class Walk {
  #text: string;
  /** The path as first requested (to say what a refused one resolved to). */
  #requested = '';
  #roots: readonly string[];
  #allowed: string[];
  #options: LocateOptions;
  #forbidden: ForbiddenSet;

  constructor(text: string, roots: readonly string[], allowed: string[], options: LocateOptions, forbidden: ForbiddenSet) {
    this.#text = text;
    this.#roots = roots;
    this.#allowed = allowed;
    this.#options = options;
    this.#forbidden = forbidden;
  }

  /** Refuse a descriptor that is a forbidden directory (closing nothing: the caller's finally does). */
  #check(stats: Stats): void {
    this.#forbidden.check(stats, this.#text, this.#options.verb);
  }

  start(absolute: string): Promise<Location> {
    this.#requested = absolute;
    return this.from(absolute, 0);
  }

  /** Walk `absolute` (already `..`-collapsed) from the root it is in; `links`: symlinks followed so far. */
  async from(absolute: string, links: number): Promise<Location> {
    const { root, rest } = await this.#start(absolute);
    let dir = await openRoot(root, (stats) => this.#check(stats));
    let dirPath = root;
    try {
      if (rest.length === 0) {
        const found = new Location(root, dir, '.', dir, await fstat(dir));
        dir = -1;
        return found;
      }
      for (let i = 0; i < rest.length; i++) {
        const name = rest[i]!;
        const last = i === rest.length - 1;
        const path = posix.join(dirPath, name);
        const { fd, created } = await this.#open(dir, name, path, absolute, last);
        if (fd === null) {
          const found = new Location(path, dir, name, null, null);
          dir = -1;
          return found;
        }
        let stats: Stats;
        try {
          stats = await fstat(fd);
        } catch (err) {
          await close(fd).catch(() => {});
          throw systemError(this.#options.verb, absolute, err);
        }
        try {
          this.#check(stats);
        } catch (err) {
          await close(fd).catch(() => {});
          throw err;
        }
        if (stats.isSymbolicLink() && (!last || this.#options.follow !== false)) {
          // Follow it as the kernel would, but by walking again: the target must stay inside a root.
          const target = await readlink(fdPath(dir, name), { encoding: 'buffer' }).then(decodeOsBytes, (err: unknown) => {
            throw systemError(this.#options.verb, absolute, err);
          }).finally(() => close(fd).catch(() => {}));
          if (links >= MAX_LINKS) throw systemError(this.#options.verb, absolute, Object.assign(new Error('loop'), { code: 'ELOOP' }));
          await close(dir).catch(() => {});
          dir = -1;
          return await this.from(posix.resolve(dirPath, target, ...rest.slice(i + 1)), links + 1);
        }
        if (last) {
          const found = new Location(path, dir, name, fd, stats, created);
          dir = -1;
          return found;
        }
        if (!stats.isDirectory()) {
          await close(fd).catch(() => {});
          throw systemError(this.#options.verb, absolute, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }));
        }
        await close(dir).catch(() => {});
        dir = fd;
        dirPath = path;
      }
      throw new Error('unreachable');
    } finally {
      if (dir !== -1) await close(dir).catch(() => {});
    }
  }

  /** The root `absolute` is in and the components below it; refuses anything outside. */
  async #start(absolute: string): Promise<{ root: string; rest: string[] }> {
    const split = (root: string, path: string) => ({ root, rest: path.slice(root.length).split('/').filter((c) => c !== '') });
    const direct = this.#allowed.find((root) => inside(absolute, root));
    if (direct) return split(direct, absolute);
    // Spelled through a symlink (a root given as a link, a home reached through one): find
    // the real path it names. This resolution only picks the spelling; the walk that
    // follows checks every component again without following anything.
    const real = await resolveReal(absolute).catch(() => absolute);
    const root = this.#allowed.find((r) => inside(real, r));
    if (root) return split(root, real);
    const shown = this.#roots.length === 0 ? '(none)' : this.#roots.join(', ');
    // Never say where a link led: that names paths outside the roots the user may not know.
    const via = absolute === this.#requested && real === absolute ? '' : ' (a symbolic link on the way leads outside them)';
    throw new FileOpError(`Path ${this.#text} is outside the allowed file root${this.#roots.length === 1 ? '' : 's'} ${shown}${via}; refused.`, { escape: true });
  }

  /** Open `name` in `dir` without following it; create it first as a directory with `create`. */
  async #open(dir: number, name: string, path: string, absolute: string, last: boolean): Promise<{ fd: number | null; created: boolean }> {
    let created = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(fdPath(dir, name), PATH_NOFOLLOW);
        return { fd: handle, created };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw systemError(this.#options.verb, absolute, err);
        if (!this.#options.create) {
          if (last) return { fd: null, created };
          throw systemError(this.#options.verb, absolute, err);
        }
        if (attempt >= 3) throw systemError(this.#options.verb, absolute, err); // removed again each time
      }
      // mkdir does not follow its last component: a symlink planted meanwhile makes EEXIST,
      // and the next open sees (and walks) the link.
      await mkdir(fdPath(dir, name), 0o777).then(
        () => (created = true),
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw systemError('create directory', path, err);
        },
      );
    }
  }
}

/** O_PATH descriptor of a root's real path, walked from `/` without following anything. */
async function openRoot(root: string, check: (stats: Stats) => void): Promise<number> {
  let dir = await open('/', O_PATH | constants.O_DIRECTORY);
  try {
    check(await fstat(dir));
    for (const name of root.split('/').filter((c) => c !== '')) {
      const next = await open(fdPath(dir, name), PATH_NOFOLLOW | constants.O_DIRECTORY);
      await close(dir).catch(() => {});
      dir = next;
      check(await fstat(dir));
    }
    const found = dir;
    dir = -1;
    return found;
  } catch (err) {
    if (err instanceof FileOpError) throw err;
    throw systemError('use the file root', root, err);
  } finally {
    if (dir !== -1) await close(dir).catch(() => {});
  }
}
