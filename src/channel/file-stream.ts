/**
 * File data over a channel, used by both ends of a "file" channel (see
 * src/protocol/file-messages.ts): `FileSender` reads a file region into data frames no
 * faster than the peer's window and the socket allow; `FileSink` writes received data
 * frames to a file and reports bytes only once they reached it, so window credit returns
 * at the disk's pace. Either way the memory held per transfer is bounded by the window,
 * whatever the file size.
 */
import { read, writev } from 'node:fs';
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { SendWindow } from './window.js';
import type { FrameType } from '../protocol/frame.js';

/** Credit a receiver of file data grants: 4 MiB keeps TLS on loopback busy between WINDOW frames. */
export const FILE_WINDOW = 4 * 1024 * 1024;
/** Most buffers handed to one writev(2) (IOV_MAX is 1024 on Linux). */
const MAX_IOV = 256;

export interface FileSenderOptions {
  fd: number;
  /** File offset of the first byte to send. */
  start: number;
  /** File offset after the last byte to send (the size announced to the peer). */
  end: number;
  conn: FrameConnection;
  channel: number;
  type: FrameType;
  window: SendWindow;
  maxPacket: number;
  /** Updated with every byte sent, in order. */
  hash: Hash;
  /** Bytes per second; 0 or absent: as fast as window and socket allow. */
  rateLimit?: number;
  onProgress?(bytesSent: number): void;
  onDone(): void;
  onError(error: Error): void;
}

export class FileSender {
  #o: FileSenderOptions;
  #position: number;
  #reading = false;
  #waiting = false;
  #stopped = false;
  #startedAt = performance.now();
  #sent = 0;
  #settled: (() => void) | null = null;

  constructor(options: FileSenderOptions) {
    this.#o = options;
    this.#position = options.start;
  }

  /** Start, or continue after WINDOW credit arrived. */
  flush(): void {
    this.#pump();
  }

  /**
   * Stop reading; nothing more is sent. Resolves once no read is in flight, so the caller
   * may close the fd (closing it under a pending read could hit a reused descriptor).
   */
  stop(): Promise<void> {
    this.#stopped = true;
    if (!this.#reading) return Promise.resolve();
    return new Promise((resolve) => (this.#settled = resolve));
  }

  #pump(): void {
    if (this.#reading || this.#waiting || this.#stopped) return;
    const o = this.#o;
    if (this.#position >= o.end) {
      this.#stopped = true;
      o.onDone();
      return;
    }
    if (o.conn.closed) return;
    if (o.conn.congested) {
      this.#waiting = true;
      o.conn.whenDrained(() => this.#resume());
      return;
    }
    if (o.rateLimit) {
      const due = this.#startedAt + (this.#sent / o.rateLimit) * 1000;
      const now = performance.now();
      if (due > now + 1) {
        this.#waiting = true;
        setTimeout(() => this.#resume(), due - now);
        return;
      }
    }
    const length = Math.min(o.window.available, o.maxPacket, o.end - this.#position);
    if (length <= 0) return; // no credit: WINDOW will call flush()
    this.#reading = true;
    const buffer = Buffer.allocUnsafe(length);
    read(o.fd, buffer, 0, length, this.#position, (err, bytesRead) => {
      this.#reading = false;
      if (this.#stopped) {
        this.#settled?.();
        return;
      }
      if (err) return this.#fail(err);
      if (bytesRead === 0) {
        return this.#fail(new Error(`the file ended at ${this.#position} bytes, before its size of ${o.end} (was it truncated while being sent?)`));
      }
      const chunk = bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      o.hash.update(chunk);
      o.window.consume(bytesRead);
      o.conn.sendData(o.type, o.channel, chunk);
      this.#position += bytesRead;
      this.#sent += bytesRead;
      o.onProgress?.(this.#position);
      this.#pump();
    });
  }

  #resume(): void {
    this.#waiting = false;
    this.#pump();
  }

  #fail(error: Error): void {
    this.#stopped = true;
    this.#o.onError(error);
  }
}

/**
 * Writes data frames to a file at increasing offsets, one writev(2) at a time; bytes
 * queued meanwhile go out together in the next one. `onWritten` reports bytes that
 * reached the file (the caller returns window credit for them).
 */
export class FileSink {
  #fd: number;
  #position: number;
  #queue: Buffer[] = [];
  #queued = 0;
  #inFlight = false;
  #stopped = false;
  #waiters: Array<() => void> = [];
  #onWritten: (bytes: number) => void;
  #onError: (error: NodeJS.ErrnoException) => void;

  constructor(fd: number, position: number, onWritten: (bytes: number) => void, onError: (error: NodeJS.ErrnoException) => void) {
    this.#fd = fd;
    this.#position = position;
    this.#onWritten = onWritten;
    this.#onError = onError;
  }

  /** File offset after the last byte written so far. */
  get position(): number {
    return this.#position;
  }

  /** Bytes accepted but not yet in the file. */
  get pending(): number {
    return this.#queued;
  }

  write(chunk: Buffer): void {
    if (this.#stopped || chunk.length === 0) return;
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    if (!this.#inFlight) this.#writeQueued();
  }

  /** Resolves once every accepted byte is in the file, or (after `stop`/an error) no write is in flight. */
  flushed(): Promise<void> {
    if (!this.#inFlight) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Drop what is queued and ignore later writes; resolves when no write is in flight. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#queue = [];
    this.#queued = 0;
    return this.flushed();
  }

  #writeQueued(): void {
    if (this.#stopped || this.#queue.length === 0) {
      this.#inFlight = false;
      this.#settle();
      return;
    }
    this.#inFlight = true;
    const buffers = this.#queue.length <= MAX_IOV ? this.#queue : this.#queue.slice(0, MAX_IOV);
    this.#queue = this.#queue.length <= MAX_IOV ? [] : this.#queue.slice(MAX_IOV);
    let total = 0;
    for (const b of buffers) total += b.length;
    writev(this.#fd, buffers, this.#position, (err, written) => {
      if (this.#stopped) return this.#writeQueued();
      if (!err && written === 0) {
        // A regular file never takes zero bytes without an error; do not spin on it.
        err = Object.assign(new Error('the file system accepted no data'), { code: 'EIO' });
      }
      if (err) {
        this.#stopped = true;
        this.#queue = [];
        this.#queued = 0;
        this.#onError(err);
        return this.#writeQueued();
      }
      this.#position += written;
      this.#queued -= written;
      if (written < total) this.#queue.unshift(...remainder(buffers, written));
      this.#onWritten(written);
      this.#writeQueued();
    });
  }

  #settle(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}

/** The part of `buffers` after the first `skip` bytes (a short write). */
function remainder(buffers: Buffer[], skip: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    rest.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return rest;
}

/** Feed bytes `[0, length)` of an open file to `hash` (to check a partial file before resuming). */
export async function hashFilePrefix(handle: FileHandle, length: number, hash: Hash): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(length, 1024 * 1024));
  let position = 0;
  while (position < length) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - position), position);
    if (bytesRead === 0) throw Object.assign(new Error(`the file ended at ${position} bytes, before ${length}`), { code: 'EIO' });
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}
