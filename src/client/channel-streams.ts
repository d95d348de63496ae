/**
 * Node streams for one channel's data, with credit-based flow control: output streams
 * return window credit only as their consumer reads, and the stdin stream sends only
 * inside the credit the server granted. A slow reader therefore slows the remote command
 * instead of growing a buffer.
 */
import { Readable, Writable } from 'node:stream';
import type { Channel } from '../channel/channel-state.js';

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

/**
 * Writable that sends stdin as STDIN frames within the daemon's credit (the channel's
 * `write` splits and counts it). Its end is the channel's EOF, which the channel holds
 * until OPEN_OK (an OPEN can still fail).
 */
export class ChannelWritable extends Writable {
  #channel: Channel;
  #whenDrained: (callback: () => void) => void;
  #waiting: { chunk: Buffer; callback: (error?: Error | null) => void } | null = null;
  #discard = false;

  constructor(channel: Channel, whenDrained: (callback: () => void) => void) {
    super({ highWaterMark: 64 * 1024 });
    this.#channel = channel;
    this.#whenDrained = whenDrained;
  }

  /** Credit arrived (or the channel opened): continue a write that waited. */
  resume(): void {
    const waiting = this.#waiting;
    if (!waiting) return;
    this.#waiting = null;
    this.#sendChunk(waiting.chunk, waiting.callback);
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
    if (!this.#discard) this.#channel.eof(); // nothing to tell a command that is gone
    callback();
  }

  #sendChunk(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.#discard || this.#channel.ended) return callback();
    const sent = this.#channel.write('stdin', chunk);
    if (sent < chunk.length) {
      // No credit (or not open yet): resume() continues on WINDOW / OPEN_OK.
      this.#waiting = { chunk: chunk.subarray(sent), callback };
      return;
    }
    this.#whenDrained(() => callback());
  }
}
