/**
 * Moves one output stream of a command (stdout or stderr) into data frames, never faster
 * than the channel's window and the socket allow. When either is exhausted it pauses the
 * stream, so the command itself blocks on a full pipe: the memory held per channel is at
 * most one pipe read (64 KiB), whatever the command writes.
 */
import type { Readable } from 'node:stream';
import { FRAME_HEADER_SIZE } from '../protocol/frame.js';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { Channel } from '../channel/channel-state.js';
import { readInto, sharedReadBuffer } from '../process/direct-read.js';

/** Payload room of a pooled frame buffer: the default maxPacket, and Node's read size. */
const FRAME_PAYLOAD = 64 * 1024;
/** A read at least this big marks a busy stream: its next read lands in a frame buffer of its own. */
const BUSY_READ = 16 * 1024;
/**
 * Frame buffers given back after their write, for reuse (a fresh 64 KiB buffer per read is
 * external memory V8 answers with full collections). At most this many are kept: 2 MiB.
 */
const FREE_FRAMES: Buffer[] = [];
const FREE_FRAMES_MAX = 32;

function takeFrame(): Buffer {
  return FREE_FRAMES.pop() ?? Buffer.allocUnsafeSlow(FRAME_HEADER_SIZE + FRAME_PAYLOAD);
}

function giveFrame(frame: Buffer): void {
  if (FREE_FRAMES.length < FREE_FRAMES_MAX) FREE_FRAMES.push(frame);
}

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
    // A spawner's output socket reads straight into the payload of the frame to send.
    readInto(stream, { buffer: () => this.#readBuffer(), filled: (buffer, bytes) => this.#readFilled(buffer, bytes) });
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

  /** Whole frame buffer (header room + payload) of the read in flight, if it is ours. */
  #frame: Buffer | null = null;

  /**
   * Where the next read lands: a busy stream reads into the payload room of a frame buffer,
   * sent as it is; a quiet one (a prompt, `tail -f`) into the shared buffer, so an idle
   * command holds no 64 KiB buffer of its own.
   */
  #readBuffer(): Buffer {
    if (this.#frame) return this.#frame.subarray(FRAME_HEADER_SIZE);
    return sharedReadBuffer();
  }

  #readFilled(buffer: Buffer, bytes: number): boolean {
    const frame = this.#frame;
    const ours = frame !== null && buffer.buffer === frame.buffer && buffer.byteOffset === frame.byteOffset + FRAME_HEADER_SIZE;
    const payload = buffer.subarray(0, bytes);
    if (!ours) {
      // Copied out of the shared buffer, through the stream (behind what it holds already).
      if (bytes >= BUSY_READ && !this.#stopped && this.#channel.sendMaxPacket >= FRAME_PAYLOAD) this.#frame = takeFrame();
      return this.#stream.push(Buffer.from(payload));
    }
    if (this.#stopped) return true;
    if (bytes < BUSY_READ || this.#channel.sendMaxPacket < FRAME_PAYLOAD) this.#frame = null;
    else this.#frame = takeFrame();
    // Straight out as one frame when nothing waits before it and all of it may go now.
    if (this.#pending === null && this.#stream.readableLength === 0 && !this.#conn.closed && !this.#conn.congested) {
      if (this.#channel.writeFrame(this.#which, frame.subarray(0, FRAME_HEADER_SIZE + bytes), () => giveFrame(frame))) {
        this.bytesSent += bytes;
        return true;
      }
    }
    // Otherwise through the stream, which keeps the order and the pausing; the buffer stays
    // with those bytes (it is not given back).
    return this.#stream.push(payload);
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
