/**
 * The small file operations: `stat`, `list` and `mkdir`.
 *
 *   stat:  OPEN{op:"stat", path}  → OPEN_OK{window:0, path, entry} → EXIT → CLOSE
 *   list:  OPEN{op:"list", path}  → OPEN_OK{window:0, path, entry} → STDOUT* → EXIT{count} → CLOSE
 *   mkdir: OPEN{op:"mkdir", path, mode?, mtimeMs?} → OPEN_OK{window:0, path, created} → EXIT → CLOSE
 *
 * `list` streams one JSON entry per line (NDJSON) as STDOUT within the client's window,
 * so a directory of any size costs the daemon one batch of entries at a time.
 */
import { lstat, opendir, readlink, chmod, utimes } from 'node:fs/promises';
import type { Dir, OpenDirOptions } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename } from 'node:path';
import { decodeOsBytes } from '../../protocol/os-bytes.js';
import type { FileEntry, MkdirRequest, PathRequest } from '../../protocol/file-messages.js';
import { FileOpError, systemError } from './paths.js';
import { fdPath, type Location } from './beneath.js';
import { failure, type FileOpContext, type FileOperation, type OpenFields } from './operation.js';

/** Entries stat'ed at once while listing. */
const LIST_BATCH = 64;
/** Listing text buffered before it waits for the window. */
const LIST_BUFFER = 64 * 1024;

export function entryOf(name: string, info: Stats, target?: string): FileEntry {
  const type = info.isFile() ? 'file' : info.isDirectory() ? 'dir' : info.isSymbolicLink() ? 'symlink' : 'other';
  const entry: FileEntry = { name, type, size: info.size, mode: info.mode & 0o7777, mtimeMs: info.mtimeMs };
  if (target !== undefined) entry.target = target;
  return entry;
}

/** What an existing location is (symlinks inside the roots followed); ENOENT when it is missing. */
function statsOf(location: Location): Stats {
  if (!location.stats) throw systemError('stat', location.path, Object.assign(new Error('missing'), { code: 'ENOENT' }));
  return location.stats;
}

export class StatOperation implements FileOperation {
  readonly inWindow = 0;
  #ctx: FileOpContext;
  #req: PathRequest;
  #path = '';

  constructor(ctx: FileOpContext, req: PathRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    const location = await this.#ctx.locate(this.#req.path, { verb: 'stat' });
    try {
      this.#path = location.path;
      return { path: this.#path, entry: entryOf(basename(this.#path) || '/', statsOf(location)) };
    } finally {
      await location.close();
    }
  }

  run(): void {
    this.#ctx.finish({ ok: true });
  }

  abort(): void {}

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path };
  }
}

export class ListOperation implements FileOperation {
  readonly inWindow = 0;
  #ctx: FileOpContext;
  #req: PathRequest;
  #path = '';
  #info: Stats | null = null;
  /** The listed directory, held: entries are lstat'ed in it, not by a path that could be swapped. */
  #location: Location | null = null;
  #dir: Dir | null = null;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #resumeSending: (() => void) | null = null;
  #aborted = false;
  #opening = false;
  #listing = false;
  #count = 0;

  constructor(ctx: FileOpContext, req: PathRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    this.#opening = true;
    try {
      return await this.#prepare();
    } finally {
      this.#opening = false;
    }
  }

  async #prepare(): Promise<OpenFields> {
    const location = await this.#ctx.locate(this.#req.path, { verb: 'list' });
    this.#location = location;
    try {
      this.#path = location.path;
      this.#info = statsOf(location);
      if (this.#info.isDirectory()) {
        // Names as bytes: a name that is not UTF-8 must be listed (and later reached) as
        // itself, not as U+FFFD, which names another file or none (docs/protocol.md §OS byte strings).
        const options = { bufferSize: LIST_BATCH, encoding: 'buffer' } as unknown as OpenDirOptions;
        this.#dir = await opendir(location.self(), options).catch((err: unknown) => {
          throw systemError('list', this.#path, err);
        });
      }
    } catch (err) {
      this.#releaseLocation();
      throw err;
    }
    return { path: this.#path, entry: entryOf(basename(this.#path) || '/', this.#info) };
  }

  #releaseLocation(): void {
    const location = this.#location;
    this.#location = null;
    void location?.close();
  }

  run(): void {
    this.#listing = true;
    void this.#list().finally(() => this.#releaseLocation()).then(
      () => !this.#aborted && this.#ctx.finish({ ok: true, count: this.#count }),
      (err: unknown) => !this.#aborted && this.#ctx.finish(failure(err, this.#ctx.host)),
    );
  }

  onWindow(): void {
    const resume = this.#resumeSending;
    this.#resumeSending = null;
    resume?.();
  }

  abort(): void {
    this.#aborted = true;
    this.onWindow();
    // While open() runs it owns the directory; the channel calls abort() again once it settles.
    if (this.#opening) return;
    // An open that completed after the client left never runs: close its directory here.
    const dir = this.#dir;
    this.#dir = null;
    void dir?.close().catch(() => {});
    if (!this.#listing) this.#releaseLocation();
  }

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path, count: this.#count };
  }

  async #list(): Promise<void> {
    if (this.#aborted || (this.#info!.isDirectory() && !this.#dir)) return; // aborted
    if (!this.#dir) {
      // A file lists as itself, as ls does.
      this.#push(entryOf(basename(this.#path), this.#info!));
      return this.#send();
    }
    const dir = this.#dir;
    try {
      let batch: string[] = [];
      for await (const dirent of dir) {
        if (this.#aborted) return;
        batch.push(decodeOsBytes(dirent.name as unknown as Buffer));
        if (batch.length >= LIST_BATCH) {
          await this.#describe(batch);
          batch = [];
        }
      }
      await this.#describe(batch);
      await this.#send();
    } catch (err) {
      throw systemError('list', this.#path, err);
    } finally {
      this.#dir = null;
      await dir.close().catch(() => {}); // for-await closes it already when it completes
    }
  }

  async #describe(names: string[]): Promise<void> {
    const location = this.#location!;
    const entries = await Promise.all(
      names.map(async (name) => {
        const full = fdPath(location.fd!, name); // in the directory held, whatever its name is now
        // Removed since readdir: it is no longer there to list. Any other failure fails
        // the listing rather than leave an entry out in silence.
        const info = await lstat(full).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw err;
        });
        if (!info) return null;
        const target = info.isSymbolicLink() ? await readlink(full, { encoding: 'buffer' }).then(decodeOsBytes, () => '') : undefined;
        return entryOf(name, info, target);
      }),
    );
    for (const entry of entries) if (entry) this.#push(entry);
    if (this.#pendingBytes >= LIST_BUFFER) await this.#send();
  }

  #push(entry: FileEntry): void {
    const line = Buffer.from(JSON.stringify(entry) + '\n', 'utf8');
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    this.#count += 1;
  }

  /** Send what is buffered as STDOUT frames within the window; resolves when all is out. */
  async #send(): Promise<void> {
    const { host, request } = this.#ctx;
    const channel = this.#ctx.channel();
    let data = Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    const maxPacket = Math.min(request.maxPacket, host.limits.maxPayload);
    while (data.length > 0 && !this.#aborted) {
      const n = Math.min(channel.sendCredit, maxPacket, data.length);
      if (n <= 0 || host.conn.congested) {
        await new Promise<void>((resolve) => {
          this.#resumeSending = resolve;
          if (n > 0) host.conn.whenDrained(() => this.onWindow());
        });
        continue;
      }
      channel.write('stdout', data.subarray(0, n));
      data = data.subarray(n);
    }
  }
}

export class MkdirOperation implements FileOperation {
  readonly inWindow = 0;
  #ctx: FileOpContext;
  #req: MkdirRequest;
  #path = '';

  constructor(ctx: FileOpContext, req: MkdirRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    const req = this.#req;
    // mkdir -p, one component at a time in the directory held (beneath.ts): a directory
    // swapped for a symlink meanwhile is walked as a link, never created through.
    const location = await this.#ctx.locate(req.path, { verb: 'create directory', create: true });
    const path = location.path;
    this.#path = path;
    try {
      const info = location.stats!;
      if (!info.isDirectory()) throw new FileOpError(`Cannot create directory ${path}: a file of that name exists.`, { errno: 'EEXIST' });
      try {
        // On the inode just created or checked, not on its name.
        if (req.mode !== undefined) await chmod(location.self(), req.mode & 0o777);
        if (req.mtimeMs !== undefined) await utimes(location.self(), info.atime, req.mtimeMs / 1000);
      } catch (err) {
        throw systemError('set the mode or time of', path, err);
      }
      return { path, created: location.created };
    } finally {
      await location.close();
    }
  }

  run(): void {
    this.#ctx.finish({ ok: true });
  }

  abort(): void {}

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path };
  }
}
