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
import { lstat, mkdir, opendir, readlink, stat, chmod, utimes } from 'node:fs/promises';
import type { Dir } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { FrameType } from '../../protocol/frame.js';
import type { FileEntry, MkdirRequest, PathRequest } from '../../protocol/file-messages.js';
import { FileOpError, systemError } from './paths.js';
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

async function statPath(path: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (err) {
    throw systemError('stat', path, err);
  }
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
    this.#path = await this.#ctx.resolve(this.#req.path);
    return { path: this.#path, entry: entryOf(basename(this.#path) || '/', await statPath(this.#path)) };
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
  #dir: Dir | null = null;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #resumeSending: (() => void) | null = null;
  #aborted = false;
  #count = 0;

  constructor(ctx: FileOpContext, req: PathRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    this.#path = await this.#ctx.resolve(this.#req.path);
    this.#info = await statPath(this.#path);
    if (this.#info.isDirectory()) {
      this.#dir = await opendir(this.#path, { bufferSize: LIST_BATCH }).catch((err: unknown) => {
        throw systemError('list', this.#path, err);
      });
    }
    return { path: this.#path, entry: entryOf(basename(this.#path) || '/', this.#info) };
  }

  run(): void {
    void this.#list().then(
      () => !this.#aborted && this.#ctx.finish({ ok: true, count: this.#count }),
      (err: unknown) => !this.#aborted && this.#ctx.finish(failure(err)),
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
    // An open that completed after the client left never runs: close its directory here.
    const dir = this.#dir;
    this.#dir = null;
    void dir?.close().catch(() => {});
  }

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path, count: this.#count };
  }

  async #list(): Promise<void> {
    if (this.#info!.isDirectory() && !this.#dir) return; // aborted
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
        batch.push(dirent.name);
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
    const entries = await Promise.all(
      names.map(async (name) => {
        const full = join(this.#path, name);
        const info = await lstat(full).catch(() => null); // removed meanwhile: skip it
        if (!info) return null;
        return entryOf(name, info, info.isSymbolicLink() ? await readlink(full).catch(() => '') : undefined);
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
    const { host, id, outWindow, request } = this.#ctx;
    let data = Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    const maxPacket = Math.min(request.maxPacket, host.limits.maxPayload);
    while (data.length > 0 && !this.#aborted) {
      const n = Math.min(outWindow.available, maxPacket, data.length);
      if (n <= 0 || host.conn.congested) {
        await new Promise<void>((resolve) => {
          this.#resumeSending = resolve;
          if (n > 0) host.conn.whenDrained(() => this.onWindow());
        });
        continue;
      }
      outWindow.consume(n);
      host.conn.sendData(FrameType.STDOUT, id, data.subarray(0, n));
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
    const path = await this.#ctx.resolve(req.path);
    this.#path = path;
    const existing = await stat(path).catch(() => null);
    if (existing && !existing.isDirectory()) throw new FileOpError(`Cannot create directory ${path}: a file of that name exists.`, { errno: 'EEXIST' });
    if (!existing) {
      await mkdir(path, { recursive: true }).catch((err: unknown) => {
        throw systemError('create directory', path, err);
      });
    }
    try {
      if (req.mode !== undefined) await chmod(path, req.mode & 0o777);
      if (req.mtimeMs !== undefined) {
        const now = await stat(path);
        await utimes(path, now.atime, req.mtimeMs / 1000);
      }
    } catch (err) {
      throw systemError('set the mode or time of', path, err);
    }
    return { path, created: !existing };
  }

  run(): void {
    this.#ctx.finish({ ok: true });
  }

  abort(): void {}

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path };
  }
}
