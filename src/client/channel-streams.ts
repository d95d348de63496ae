/**
 * Node streams for one channel's data, with credit-based flow control: output streams
 * return window credit only as their consumer reads, and the stdin stream sends only
 * inside the credit the server granted. A slow reader therefore slows the remote command
 * instead of growing a buffer.
 */
import { Readable, Writable } from 'node:stream';
import { FrameType } from '../protocol/frame.js';
import type { SendWindow } from '../channel/window.js';
import type { FrameConnection } from '../transport/frame-connection.js';

/** Readable whose consumption is reported, so credit can be returned. */
export class ChannelReadable extends Readable {
  #owed = 0;
  #onConsumed: (bytes: number) => void;

  constructor(onConsumed: (bytes: number) => void) {
    super({ highWaterMark: 64 * 1024 });
    this.#onConsumed = onConsumed;
  }

  /** Hand a data frame's payload to the consumer. */
  deliver(chunk: Buffer): void {
    if (this.push(chunk)) this.#onConsumed(chunk.length);
    else this.#owed += chunk.length;
  }

  override _read(): void {
    if (this.#owed === 0) return;
    const bytes = this.#owed;
    this.#owed = 0;
    this.#onConsumed(bytes);
  }
}

/** Writable that frames stdin into STDIN frames within the server's credit. */
export class ChannelWritable extends Writable {
  #conn: FrameConnection;
  #channel: number;
  #window: () => SendWindow | null;
  #maxPacket: () => number;
  #waiting: { chunk: Buffer; callback: (error?: Error | null) => void } | null = null;
  #discard = false;
  #eofPending = false;

  constructor(conn: FrameConnection, channel: number, window: () => SendWindow | null, maxPacket: () => number) {
    super({ highWaterMark: 64 * 1024 });
    this.#conn = conn;
    this.#channel = channel;
    this.#window = window;
    this.#maxPacket = maxPacket;
  }

  /** Credit arrived (or the channel opened): continue a write that waited. */
  resume(): void {
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = null;
      this.#sendChunk(waiting.chunk, waiting.callback);
    }
    if (this.#eofPending && !this.#waiting && this.#window()) {
      this.#eofPending = false;
      if (!this.#discard) this.#conn.send(FrameType.EOF, this.#channel);
    }
  }

  /** The command is gone: accept and drop further input, as a closed pipe would. */
  discard(): void {
    this.#discard = true;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.callback();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#sendChunk(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // EOF may only follow OPEN_OK (an OPEN can still fail); until then it waits in resume().
    if (this.#discard) {
      // nothing to tell a command that is gone
    } else if (this.#window()) this.#conn.send(FrameType.EOF, this.#channel);
    else this.#eofPending = true;
    callback();
  }

  #sendChunk(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.#discard || this.#conn.closed) return callback();
    const window = this.#window();
    let offset = 0;
    while (offset < chunk.length) {
      const allowed = window ? Math.min(window.available, this.#maxPacket(), chunk.length - offset) : 0;
      if (allowed <= 0) {
        this.#waiting = { chunk: chunk.subarray(offset), callback };
        return;
      }
      window!.consume(allowed);
      this.#conn.send(FrameType.STDIN, this.#channel, chunk.subarray(offset, offset + allowed));
      offset += allowed;
    }
    this.#conn.whenDrained(() => callback());
  }
}
