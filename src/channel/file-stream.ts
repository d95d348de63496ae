/**
 * File data over a channel, used by both ends of a "file" channel (see
 * src/protocol/file-messages.ts): `FileSender` reads a file region into data frames no
 * faster than the peer's window and the socket allow; `FileSink` writes received data
 * frames to a file and reports bytes only once they reached it, so window credit returns
 * at the disk's pace. Either way the memory held per transfer is bounded by the window,
 * whatever the file size.
 */
import { writev } from 'node:fs';
import { SourceChangedError, type HashingReader } from './file-hash.js';
import { LocalIoError } from '../errors.js';

export { SourceChangedError };
import type { FrameConnection } from '../transport/frame-connection.js';
import type { FrameType } from '../protocol/frame.js';

/**
 * Credit a receiver of file data grants. Credit returns only once bytes reached the disk,
 * whose write latency varies a lot; 8 MiB keeps the link busy through it (measured:
 * 4 MiB lost ~15% on a loaded ext4, 16 MiB gained nothing more). It is also the most a
 * transfer can hold in memory on the receiving side.
 */
export const FILE_WINDOW = 8 * 1024 * 1024;
/** What identifies one version of a file for a transfer: fstat before and after reading it. */
export interface FileVersion {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /** Links to the inode: 0 once its last name was unlinked (or renamed over). */
  nlink: number;
}

/**
 * True when `before` and `after` (fstat of the same descriptor) describe the same version.
 * A write in place changes mtime and ctime even when the size stays; a chmod/rename changes
 * only ctime, so a ctime change alone also counts (it may hide a write whose mtime was
 * reset by `touch -r`). Limit: timestamps tick at the kernel's coarse clock (a few ms), so
 * a rewrite within the same tick as the previous write, before the first read, can go
 * unseen; docs/protocol.md says so.
 */
export function sameVersion(before: FileVersion, after: FileVersion): boolean {
  return before.size === after.size && before.mtimeMs === after.mtimeMs && before.ctimeMs === after.ctimeMs && before.ino === after.ino && before.dev === after.dev;
}

/**
 * True when the only change from `before` to `after` (fstat of the same descriptor) is
 * that a name of the file went away: same inode, size and mtime, fewer links. Unlinking a
 * name (`rm`, or `mv new src` replacing it) bumps the inode's ctime, yet its bytes stay
 * those that were opened, so what was read is that version whole. The caller decides
 * whether a link count that dropped but is not 0 is such a replacement (the path now
 * names another inode, or nothing).
 */
export function onlyUnlinked(before: FileVersion, after: FileVersion): boolean {
  return before.size === after.size && before.mtimeMs === after.mtimeMs && before.ino === after.ino && before.dev === after.dev && after.nlink < before.nlink;
}

/** Most buffers handed to one writev(2) (IOV_MAX is 1024 on Linux). */
const MAX_IOV = 256;

/** The credit a sender spends: a SendWindow, or a view of a Channel's `sendCredit`. */
export interface SendCredit {
  readonly available: number;
  consume(bytes: number): void;
}

/**
 * What a FileSender needs from the transport: its backpressure, and a data frame sent
 * without a copy. One read-ahead budget is shared by all senders on the same transport.
 */
export type SenderTransport = Pick<FrameConnection, 'congested' | 'closed' | 'whenDrained' | 'sendData'>;

export interface FileSenderOptions {
  /** Reads the file and hashes every byte read (file-hash.ts). */
  reader: HashingReader;
  /** File offset of the first byte to send. */
  start: number;
  /** File offset after the last byte to send (the size announced to the peer). */
  end: number;
  conn: SenderTransport;
  channel: number;
  type: FrameType;
  window: SendCredit;
  maxPacket: number;
  /**
   * Sends one data frame of at most `maxPacket` bytes; default `conn.sendData(type, channel,
   * piece)`. A Channel's `write` (channel-state.ts) counts the credit itself: pass a `window`
   * that only reads `sendCredit` then.
   */
  send?(piece: Buffer): void;
  /** Bytes per second; 0 or absent: as fast as window and socket allow. */
  rateLimit?: number;
  onProgress?(bytesSent: number): void;
  onDone(): void;
  onError(error: Error): void;
}

/** Reads kept in flight ahead of the socket, so reading, hashing and TLS overlap. */
const READ_AHEAD = 3;
/**
 * Bytes per read: several frames' worth. Each read is a message to the reader's thread
 * (a wake-up costs tens of µs on a VM), so fewer, larger reads leave more CPU for TLS.
 */
const READ_SIZE = 1024 * 1024;

/**
 * Read-ahead memory one connection's senders may hold at once, whatever windows its peer
 * granted and however many channels it opened: a peer that opens 1,000 gets with 4 GiB
 * windows and then stops reading holds this much of the sender's memory, not 3 GiB (each
 * sender alone would read READ_AHEAD × READ_SIZE ahead).
 */
export const CONNECTION_READ_AHEAD = 8 * 1024 * 1024;

/** The read-ahead bytes left to one connection's senders, and who waits for some. */
class ReadAheadBudget {
  available = CONNECTION_READ_AHEAD;
  #waiters = new Set<() => void>();

  /** Take up to `bytes`; returns what was taken (0: wait for `give`). */
  take(bytes: number): number {
    const taken = Math.min(bytes, this.available);
    this.available -= taken;
    return taken;
  }

  give(bytes: number): void {
    if (bytes <= 0) return;
    this.available += bytes;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter();
  }

  wait(waiter: () => void): void {
    this.#waiters.add(waiter);
  }

  cancel(waiter: () => void): void {
    this.#waiters.delete(waiter);
  }
}

/** Per connection (any object standing for one), held only as long as the connection lives. */
const budgets = new WeakMap<object, ReadAheadBudget>();

function budgetOf(conn: object): ReadAheadBudget {
  let budget = budgets.get(conn);
  if (!budget) budgets.set(conn, (budget = new ReadAheadBudget()));
  return budget;
}

interface PendingRead {
  position: number;
  length: number;
  buffer: Buffer | null;
  done: boolean;
  error: Error | null;
}

/**
 * Reads `[start, end)` of a file and sends it as data frames, in order, never more than
 * the window's credit, pausing while the socket is congested. Up to READ_AHEAD reads are
 * in flight at once (in the thread pool); each holds window credit, so bytes
 * read ahead are always bytes the peer already agreed to take, and memory stays at
 * READ_AHEAD × READ_SIZE plus what the socket holds.
 */
export class FileSender {
  #o: FileSenderOptions;
  #position: number;
  #next: number;
  #reserved = 0;
  #reads: PendingRead[] = [];
  #inFlight = 0;
  #waitingForDrain = false;
  #waitingForTimer = false;
  #stopped = false;
  #startedAt = performance.now();
  #sent = 0;
  #settled: (() => void) | null = null;
  #budget: ReadAheadBudget;
  #budgetOnFreed = () => this.#pump();

  constructor(options: FileSenderOptions) {
    this.#o = options;
    this.#budget = budgetOf(options.conn);
    this.#position = options.start;
    this.#next = options.start;
  }

  /** Start, or continue after WINDOW credit arrived. */
  flush(): void {
    this.#pump();
  }

  /**
   * Stop reading; nothing more is sent. Resolves once no read is in flight, so the caller
   * may close the fd (closing it under a pending read could hit a reused descriptor).
   * Dispose of the reader only after this.
   */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#reads = [];
    this.#releaseAll();
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#settled = resolve));
  }

  #pump(): void {
    if (this.#stopped) return;
    // Never re-entered: releasing read-ahead wakes the connection's waiting senders, this one
    // among them, and a nested pump would send the next read before the one being sent
    // (concurrent puts on one connection stored 1 MiB blocks out of order). Run once more instead.
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        this.#pumpOnce();
      } while (this.#pumpAgain && !this.#stopped);
    } finally {
      this.#pumping = false;
    }
  }

  #pumping = false;
  #pumpAgain = false;

  #pumpOnce(): void {
    const o = this.#o;
    // Send what was read, in file order, while the socket takes it.
    while (this.#reads.length > 0 && this.#reads[0]!.done && !o.conn.congested) {
      const r = this.#reads.shift()!;
      this.#release(r.length);
      if (r.error) return this.#fail(r.error);
      const buffer = r.buffer!;
      if (buffer.length < r.length) {
        return this.#fail(new SourceChangedError(`it ended at ${r.position + buffer.length} bytes, before its size of ${o.end} when the transfer started (truncated while being sent?)`));
      }
      o.window.consume(buffer.length);
      for (let offset = 0; offset < buffer.length; offset += o.maxPacket) {
        const piece = buffer.subarray(offset, Math.min(offset + o.maxPacket, buffer.length));
        if (o.send) o.send(piece);
        else o.conn.sendData(o.type, o.channel, piece);
      }
      this.#position += buffer.length;
      this.#sent += buffer.length;
      o.onProgress?.(this.#position);
    }
    if (this.#position >= o.end) {
      this.#stopped = true;
      this.#releaseAll();
      o.onDone();
      return;
    }
    if (o.conn.closed) return;
    // Read ahead even while the socket drains, so the next bytes are ready when it has.
    this.#readAhead();
    if (this.#reads.length > 0 && this.#reads[0]!.done && o.conn.congested && !this.#waitingForDrain) {
      this.#waitingForDrain = true;
      o.conn.whenDrained(() => {
        this.#waitingForDrain = false;
        this.#pump();
      });
    }
  }

  #readAhead(): void {
    const o = this.#o;
    if (this.#waitingForTimer) return;
    while (this.#reads.length < READ_AHEAD && this.#next < o.end) {
      if (o.rateLimit) {
        const due = this.#startedAt + ((this.#sent + this.#reserved) / o.rateLimit) * 1000;
        const now = performance.now();
        if (due > now + 1) {
          this.#waitingForTimer = true;
          setTimeout(() => {
            this.#waitingForTimer = false;
            this.#pump();
          }, due - now);
          return;
        }
      }
      const wanted = Math.min(o.window.available - this.#reserved, o.rateLimit ? o.maxPacket : READ_SIZE, o.end - this.#next);
      if (wanted <= 0) return; // no credit: WINDOW will call flush()
      const length = this.#budget.take(wanted);
      if (length === 0) {
        // The connection's read-ahead is all held (by its other channels, or by bytes the
        // socket has not taken yet): read on when some is sent.
        this.#budget.wait(this.#budgetOnFreed);
        return;
      }
      const r: PendingRead = { position: this.#next, length, buffer: null, done: false, error: null };
      this.#reads.push(r);
      this.#reserved += length;
      this.#next += length;
      this.#inFlight += 1;
      const settle = (buffer: Buffer | null, error: Error | null) => {
        this.#inFlight -= 1;
        r.done = true;
        r.buffer = buffer;
        r.error = error;
        if (this.#stopped) {
          if (this.#inFlight === 0) this.#settled?.();
          return;
        }
        this.#pump();
      };
      o.reader.read(r.position, length).then((buffer) => settle(buffer, null), (err: Error) => settle(null, err));
    }
  }

  #release(bytes: number): void {
    this.#reserved -= bytes;
    this.#budget.give(bytes);
  }

  /** Stopped, failed or done: the read-ahead goes back to the connection's other channels. */
  #releaseAll(): void {
    this.#budget.cancel(this.#budgetOnFreed);
    this.#release(this.#reserved);
  }

  #fail(error: Error): void {
    this.#stopped = true;
    this.#reads = [];
    this.#releaseAll();
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
  #onError: (error: Error) => void;

  constructor(fd: number, position: number, onWritten: (bytes: number) => void, onError: (error: Error) => void) {
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
    writev(this.#fd, buffers, this.#position, (writeErr, written) => {
      if (this.#stopped) return this.#writeQueued();
      let err: Error | null = writeErr;
      if (!err && written === 0) {
        // A regular file never takes zero bytes without an error; do not spin on it.
        err = new LocalIoError('the file system accepted no data', { errno: 'EIO' });
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
