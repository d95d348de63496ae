/**
 * Server side of `get`: send one file from an offset, no faster than the client's window
 * and the socket allow, and its SHA-256 (of the whole file, offset included) at the end.
 *
 *   client: OPEN{op:"get", path, offset, offsetSha256?} → WINDOW* → CLOSE
 *   server: OPEN_OK{window:0, path, offset, entry} → STDOUT* → EXIT{size, sha256} → CLOSE
 *
 * The server starts at `offset` only when its own first `offset` bytes hash to
 * `offsetSha256` (the client's partial file); otherwise OPEN_OK says `offset: 0`.
 * A file that changes while it is sent (size, mtime or ctime; or it ends early) fails the
 * transfer with SW_ERR_SOURCE_CHANGED: the bytes sent may mix two versions. A file only
 * unlinked or replaced by a rename meanwhile was read whole in the opened version: sent.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename } from 'node:path';
import { FileSender, SourceChangedError, onlyUnlinked, sameVersion } from '../../channel/file-stream.js';
import { ErrorCode } from '../../errors.js';
import { openHashingReader, type HashingReader } from '../../channel/file-hash.js';
import { FrameType } from '../../protocol/frame.js';
import type { GetRequest } from '../../protocol/file-messages.js';
import { FileOpError, systemError } from './paths.js';
import { kindOf } from '../../file-kind.js';
import { entryOf } from './meta.js';
import { failure, type FileOpContext, type FileOperation, type OpenFields } from './operation.js';

/** A directory, FIFO, device or socket is refused before it is ever opened for reading. */
function refuseUnlessFile(path: string, info: Stats): void {
  if (info.isDirectory()) throw new FileOpError(`Cannot download ${path}: it is a directory (use -r).`, { errno: 'EISDIR' });
  if (!info.isFile()) throw new FileOpError(`Cannot download ${path}: it is ${kindOf(info)}, not a regular file.`);
}

export class GetOperation implements FileOperation {
  readonly inWindow = 0;
  #ctx: FileOpContext;
  #req: GetRequest;
  #path = '';
  #handle: FileHandle | null = null;
  #info: Stats | null = null;
  #reader: HashingReader | null = null;
  #offset = 0;
  #sender: FileSender | null = null;
  #done = false;
  #opening = false;

  constructor(ctx: FileOpContext, req: GetRequest) {
    this.#ctx = ctx;
    this.#req = req;
  }

  async open(): Promise<OpenFields> {
    this.#opening = true;
    try {
      return await this.#prepare();
    } catch (err) {
      await this.#close();
      throw err;
    } finally {
      this.#opening = false;
    }
  }

  async #prepare(): Promise<OpenFields> {
    const location = await this.#ctx.locate(this.#req.path, { verb: 'read' });
    const path = location.path;
    this.#path = path;
    try {
      const checked = location.stats;
      if (!checked) throw systemError('read', path, Object.assign(new Error('missing'), { code: 'ENOENT' }));
      refuseUnlessFile(path, checked);
      // Reopen the inode just checked (not the name), and never block: a regular file
      // ignores O_NONBLOCK, and nothing else gets this far.
      this.#handle = await open(location.self(), constants.O_RDONLY | constants.O_NONBLOCK).catch((err: unknown) => {
        throw systemError('read', path, err);
      });
    } finally {
      await location.close();
    }
    const info = await this.#handle.stat();
    refuseUnlessFile(path, info);
    this.#info = info;
    this.#reader = openHashingReader(this.#handle.fd);
    const { offset, offsetSha256 } = this.#req;
    if (offset > 0 && offset <= info.size && offsetSha256 !== undefined) {
      await this.#reader.hashPrefix(offset).catch((err: unknown) => {
        throw err instanceof SourceChangedError ? this.#changed(err.message) : systemError('read', path, err);
      });
      if ((await this.#reader.peek()) === offsetSha256) this.#offset = offset;
      else {
        this.#reader.dispose(); // the client's partial is of another file: start over
        this.#reader = openHashingReader(this.#handle.fd);
      }
    }
    return { path, offset: this.#offset, entry: entryOf(basename(path), info) };
  }

  run(): void {
    const ctx = this.#ctx;
    const channel = ctx.channel();
    this.#sender = new FileSender({
      reader: this.#reader!,
      start: this.#offset,
      end: this.#info!.size,
      conn: ctx.host.conn,
      channel: ctx.id,
      type: FrameType.STDOUT,
      // The channel counts its credit in write(): the sender only reads it.
      window: { get available() { return channel.sendCredit; }, consume: () => {} },
      send: (piece) => void channel.write('stdout', piece),
      maxPacket: Math.min(ctx.request.maxPacket, ctx.host.limits.maxPayload),
      onDone: () => void this.#complete(),
      onError: (err) => void this.#fail(err instanceof SourceChangedError ? this.#changed(err.message) : systemError('read', this.#path, err)),
    });
    this.#sender.flush();
  }

  onWindow(): void {
    this.#sender?.flush();
  }

  abort(): void {
    this.#done = true;
    // While open() runs it owns the file; the channel calls abort() again once it settles.
    if (!this.#opening) void this.#close();
  }

  summary(): Record<string, unknown> {
    return { path: this.#path || this.#req.path, size: this.#info?.size, resumedFrom: this.#offset };
  }

  async #complete(): Promise<void> {
    if (this.#done) return;
    const before = this.#info!;
    const after = (await this.#handle?.stat().catch(() => null)) ?? null;
    if (this.#done) return;
    if (!after) return this.#fail(new FileOpError(`Cannot read ${this.#path} after sending it.`));
    if (!sameVersion(before, after) && !(await this.#replacedByRename(before, after))) {
      const what = after.size !== before.size ? `its size went from ${before.size} to ${after.size} bytes` : 'it was modified: mtime or ctime changed';
      return this.#fail(this.#changed(what));
    }
    let sha256: string;
    try {
      sha256 = await this.#reader!.digest();
    } catch (err) {
      return this.#fail(err);
    }
    if (this.#done) return;
    this.#done = true;
    await this.#close();
    this.#ctx.finish({ ok: true, size: before.size, sha256 });
  }

  /**
   * Same bytes, only a name gone (its ctime moved with the unlink): its last link, or the
   * path now names another inode or nothing (`mv new src` while it was sent).
   */
  async #replacedByRename(before: Stats, after: Stats): Promise<boolean> {
    if (!onlyUnlinked(before, after)) return false;
    if (after.nlink === 0) return true;
    const now = await this.#ctx.locate(this.#req.path, { verb: 'read' }).catch(() => null);
    if (!now) return true;
    await now.close();
    return !now.stats || now.stats.ino !== before.ino || now.stats.dev !== before.dev;
  }

  #changed(what: string): FileOpError {
    return new FileOpError(`${this.#path} changed while it was being sent (${what}); nothing was kept. Run the transfer again once it is no longer being written.`, {
      code: ErrorCode.SOURCE_CHANGED,
    });
  }

  async #fail(err: unknown): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#close();
    this.#ctx.finish(failure(err, this.#ctx.host));
  }

  async #close(): Promise<void> {
    await this.#sender?.stop();
    this.#reader?.dispose();
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close().catch(() => {});
  }
}
