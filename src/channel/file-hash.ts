/**
 * SHA-256 of a transfer, computed as the bytes stream past, on the main thread.
 *
 * The sender reads through a `HashingReader`, which hashes every byte it read in file
 * order (reads may finish out of order; their hashing is chained). The receiver hashes
 * frames as they arrive (`InlineHash`).
 *
 * Tried and dropped: reading and hashing in a worker thread, with each read transferred
 * to the main thread. On the 2-core benchmark host it was no faster (A/B, 1 GiB x4: put
 * 2.87-3.34 s vs 2.84-3.04 s inline, get 2.91-3.25 s vs 2.66-2.91 s): client and daemon
 * already keep both cores busy. On hosts with cores to spare it would take ~0.7 s/GiB of
 * SHA-256 off the sender's main thread; revisit there.
 */
import { createHash, type Hash } from 'node:crypto';
import { read } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ErrorCode, LocalIoError, ShellwireError } from '../errors.js';

/**
 * The file being sent is not the one the transfer started with: it ended before its size
 * (truncated), or its size, mtime or ctime changed (see `sameVersion`). The bytes sent mix
 * versions, so the receiver must not keep them under the target's name.
 */
export class SourceChangedError extends ShellwireError {
  override name = 'SourceChangedError';

  constructor(reason: string) {
    super(ErrorCode.SOURCE_CHANGED, reason);
  }
}

/** Bytes hashed per step when checking a partial file before resuming. */
const PREFIX_CHUNK = 1024 * 1024;

export interface StreamHash {
  update(chunk: Buffer): void;
  /** The hash of everything so far, without ending the stream (to compare a resumed prefix). */
  peek(): Promise<string>;
  /** The final hash; the stream ends. */
  digest(): Promise<string>;
}

export class InlineHash implements StreamHash {
  #hash: Hash = createHash('sha256');

  update(chunk: Buffer): void {
    this.#hash.update(chunk);
  }

  peek(): Promise<string> {
    return Promise.resolve(this.#hash.copy().digest('hex'));
  }

  digest(): Promise<string> {
    return Promise.resolve(this.#hash.digest('hex'));
  }
}

/** Feed bytes `[0, length)` of an open file to `hash` (to check a partial file before resuming). */
export async function hashFilePrefix(handle: FileHandle, length: number, hash: StreamHash): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(length, PREFIX_CHUNK));
  let position = 0;
  while (position < length) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - position), position);
    if (bytesRead === 0) throw new LocalIoError(`the file ended at ${position} bytes, before ${length}`, { errno: 'EIO' });
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

/** Reads a file and hashes every byte read, in the order the reads were asked for. */
export interface HashingReader {
  /** Bytes `[position, position + length)`; fewer only at the end of the file. */
  read(position: number, length: number): Promise<Buffer>;
  /** Hash `[0, length)` without returning it (before resuming at `length`). */
  hashPrefix(length: number): Promise<void>;
  peek(): Promise<string>;
  digest(): Promise<string>;
  /** Forget the stream (transfer abandoned or finished). */
  dispose(): void;
}

/** A reader of `fd` that hashes what it reads. `fd` must stay open until its reads settle. */
export function openHashingReader(fd: number): HashingReader {
  return new InlineReader(fd);
}

class InlineReader implements HashingReader {
  #fd: number;
  #hash = new InlineHash();
  /** Hash updates are chained so reads that finish out of order are hashed in order. */
  #tail: Promise<void> = Promise.resolve();

  constructor(fd: number) {
    this.#fd = fd;
  }

  read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafeSlow(length);
    const done = new Promise<Buffer>((resolve, reject) =>
      read(this.#fd, buffer, 0, length, position, (err, n) => (err ? reject(err) : resolve(n === length ? buffer : buffer.subarray(0, n)))),
    );
    const hashed = Promise.all([done, this.#tail]).then(([chunk]) => {
      this.#hash.update(chunk);
      return chunk;
    });
    this.#tail = hashed.then(() => {}, () => {});
    return hashed;
  }

  async hashPrefix(length: number): Promise<void> {
    for (let position = 0; position < length; position += PREFIX_CHUNK) {
      const chunk = await this.read(position, Math.min(PREFIX_CHUNK, length - position));
      if (chunk.length < Math.min(PREFIX_CHUNK, length - position)) {
        throw new SourceChangedError(`it ended at ${position + chunk.length} bytes, before the ${length} bytes to resume from`);
      }
    }
  }

  async peek(): Promise<string> {
    await this.#tail;
    return this.#hash.peek();
  }

  async digest(): Promise<string> {
    await this.#tail;
    return this.#hash.digest();
  }

  dispose(): void {}
}

/**
 * A `HashingReader` over a stream that can be read only once, in order (an HTTP request's
 * body: the web console's upload). Reads must ask for the next bytes (positions in order, as
 * the file sender asks); the stream is pulled only as they ask, so a slow receiver pauses the
 * sender (no buffering beyond the stream's own high-water mark). No `hashPrefix`: no resume.
 */
export function streamHashingReader(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean; unshift(chunk: Buffer): void }): HashingReader {
  return new StreamReader(stream);
}

class StreamReader implements HashingReader {
  #stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean; unshift(chunk: Buffer): void };
  #hash = new InlineHash();
  #position = 0;
  #ended = false;
  #error: Error | null = null;
  #tail: Promise<void> = Promise.resolve();

  constructor(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean; unshift(chunk: Buffer): void }) {
    this.#stream = stream;
    stream.once('end', () => (this.#ended = true));
    stream.once('error', (err: Error) => (this.#error = err));
    // A request that goes away mid-body is a short read, not a hang.
    stream.once('close', () => (this.#ended = true));
  }

  read(position: number, length: number): Promise<Buffer> {
    const run = this.#tail.then(() => this.#take(position, length));
    this.#tail = run.then(() => {}, () => {});
    return run;
  }

  async #take(position: number, length: number): Promise<Buffer> {
    if (position !== this.#position) throw new LocalIoError(`a stream is read in order: asked for byte ${position} at ${this.#position}`, { errno: 'ESPIPE' });
    const parts: Buffer[] = [];
    let got = 0;
    while (got < length) {
      if (this.#error) throw this.#error;
      let chunk = this.#stream.read() as Buffer | string | null;
      if (chunk === null) {
        if (this.#ended || this.#stream.readableEnded || this.#stream.destroyed) break;
        await new Promise<void>((resolve) => {
          const done = () => {
            this.#stream.off('readable', done);
            this.#stream.off('end', done);
            this.#stream.off('error', done);
            this.#stream.off('close', done);
            resolve();
          };
          this.#stream.on('readable', done);
          this.#stream.on('end', done);
          this.#stream.on('error', done);
          this.#stream.on('close', done);
        });
        continue;
      }
      if (typeof chunk === 'string') chunk = Buffer.from(chunk);
      if (chunk.length > length - got) {
        this.#stream.unshift(chunk.subarray(length - got));
        chunk = chunk.subarray(0, length - got);
      }
      parts.push(chunk);
      got += chunk.length;
    }
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
    this.#hash.update(bytes);
    this.#position += got;
    return bytes;
  }

  hashPrefix(): Promise<void> {
    return Promise.reject(new LocalIoError('a stream cannot be resumed', { errno: 'ESPIPE' }));
  }

  async peek(): Promise<string> {
    await this.#tail;
    return this.#hash.peek();
  }

  async digest(): Promise<string> {
    await this.#tail;
    return this.#hash.digest();
  }

  dispose(): void {}
}
