/**
 * Moves one output stream of a command (stdout or stderr) into data frames, never faster
 * than the channel's window and the socket allow. When either is exhausted it pauses the
 * stream, so the command itself blocks on a full pipe: the memory held per channel is at
 * most one pipe read (64 KiB), whatever the command writes.
 */
import type { Readable } from 'node:stream';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { Channel } from '../channel/channel-state.js';

export class OutputPump {
  #stream: Readable;
  #conn: FrameConnection;
  #channel: Channel;
  #which: 'stdout' | 'stderr';
  #pending: Buffer | null = null;
  #waitingForDrain = false;
  #ended = false;
  #stopped = false;
  #onSettled: () => void;
  bytesSent = 0;

  /** `conn` only for its congestion; the frames and their credit go through `channel`. */
  constructor(stream: Readable, conn: FrameConnection, channel: Channel, which: 'stdout' | 'stderr', onSettled: () => void) {
    this.#stream = stream;
    this.#conn = conn;
    this.#channel = channel;
    this.#which = which;
    this.#onSettled = onSettled;
    stream.on('data', (chunk: Buffer) => this.#streamOnData(chunk));
    stream.on('end', () => {
      this.#ended = true;
      if (this.settled) this.#onSettled();
    });
    // Destroyed without 'end': the command's output was cut after its output grace (a process
    // it left behind still held the pipe). What was read is still sent; nothing more comes.
    stream.on('close', () => {
      if (this.#ended) return;
      this.#ended = true;
      if (this.settled) this.#onSettled();
    });
    stream.on('error', () => {});
  }

  /** Stream ended and every byte was sent (or the pump was stopped). */
  get settled(): boolean {
    return this.#stopped || (this.#ended && this.#pending === null);
  }

  /** Credit arrived or the socket drained: send what waits, then read on. */
  flush(): void {
    if (this.#pending === null || this.#stopped) return;
    const chunk = this.#pending;
    this.#pending = null;
    if (this.#send(chunk)) {
      this.#stream.resume();
      if (this.settled) this.#onSettled();
    } else if (this.#stopped && this.#ended) {
      this.#onSettled();
    }
  }

  /**
   * Stop sending (channel closed, connection lost); the stream is read to its end and
   * discarded, so the pipe closes and the command's exit is seen. Nothing pauses it again.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pending = null;
    this.#stream.removeAllListeners('data');
    this.#stream.on('data', () => {});
    this.#stream.resume();
  }

  #streamOnData(chunk: Buffer): void {
    if (this.#stopped) return;
    if (this.#pending !== null) {
      // Can happen if data was already queued in the stream when we paused.
      this.#pending = Buffer.concat([this.#pending, chunk]);
      return;
    }
    if (!this.#send(chunk) && !this.#stopped) this.#stream.pause();
  }

  /** Send as much as allowed; keep the rest as pending. Returns true when all was sent. */
  #send(chunk: Buffer): boolean {
    if (this.#conn.closed) {
      // Nobody will ever grant credit or drain this socket: discard, never wait.
      this.stop();
      return false;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const allowed = Math.min(this.#channel.sendCredit, this.#channel.sendMaxPacket, chunk.length - offset);
      if (allowed <= 0 || this.#conn.congested) {
        this.#pending = offset === 0 ? chunk : chunk.subarray(offset);
        if (this.#conn.congested && !this.#waitingForDrain) {
          this.#waitingForDrain = true;
          this.#conn.whenDrained(() => {
            this.#waitingForDrain = false;
            this.flush();
          });
        }
        return false;
      }
      const piece = allowed === chunk.length && offset === 0 ? chunk : chunk.subarray(offset, offset + allowed);
      this.#channel.write(this.#which, piece);
      this.bytesSent += allowed;
      offset += allowed;
    }
    return true;
  }
}
