/**
 * Moves one output stream of a command (stdout or stderr) into data frames, never faster
 * than the channel's window and the socket allow. When either is exhausted it pauses the
 * stream, so the command itself blocks on a full pipe: the memory held per stream is at
 * most one waiting read and the buffer of the next (64 KiB each), whatever the command writes.
 *
 * Output from the spawner's sockets is read straight into the payload room of the frame that
 * carries it (process/direct-read.ts) and goes to TLS as one buffer with the header written in
 * place: no per-read allocation, no copy in JS, no header+payload concatenation under TLS.
 * Measured on a loaded 2-core machine (issue 12): daemon CPU per streamed GiB −15 %.
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
  /** Bytes read but not sent yet (no credit, congested socket): the stream is paused meanwhile. */
  #pending: Buffer | null = null;
  /** The pooled frame buffer `#pending` is the whole payload of, if it is: it may still go as one write. */
  #pendingFrame: Buffer | null = null;
  /** Whole frame buffer (header room + payload) the next read lands in; null: the shared buffer. */
  #frame: Buffer | null = null;
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
    const frame = this.#pendingFrame;
    this.#pending = null;
    this.#pendingFrame = null;
    if (frame ? this.#sendFrame(frame, chunk.length) : this.#send(chunk)) {
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
    if (this.#pendingFrame) giveFrame(this.#pendingFrame);
    this.#pendingFrame = null;
    this.#stream.removeAllListeners('data');
    this.#stream.on('data', () => {});
    this.#stream.resume();
  }

  /**
   * Where the next read lands: a busy stream reads into the payload room of a frame buffer,
   * sent as it is; a quiet one (a prompt, `tail -f`) into the shared buffer, so an idle
   * command holds no 64 KiB buffer of its own.
   */
  #readBuffer(): Buffer {
    if (this.#frame) return this.#frame.subarray(FRAME_HEADER_SIZE);
    return sharedReadBuffer();
  }

  /** A read landed (direct-read.ts); false stops reading until `flush` resumes the stream. */
  #readFilled(buffer: Buffer, bytes: number): boolean {
    const frame = this.#frame;
    const ours = frame !== null && buffer.buffer === frame.buffer && buffer.byteOffset === frame.byteOffset + FRAME_HEADER_SIZE;
    const busy = bytes >= BUSY_READ && !this.#stopped && this.#channel.sendMaxPacket >= FRAME_PAYLOAD;
    const payload = buffer.subarray(0, bytes);
    if (!ours) {
      // Copied out of the shared buffer, through the stream (behind what it holds already).
      if (busy) this.#frame = takeFrame();
      return this.#stream.push(Buffer.from(payload));
    }
    if (this.#stopped) return true;
    this.#frame = busy ? takeFrame() : null;
    // Behind bytes that wait in the stream: through the stream too, which keeps the order;
    // the buffer stays with those bytes (it is not given back).
    if (this.#pending !== null || this.#stream.readableLength > 0) return this.#stream.push(payload);
    if (this.#sendFrame(frame, bytes)) return true;
    // Paused, as the 'data' path does: the stream shows it waits (CommandProcess's output cut).
    if (!this.#stopped) this.#stream.pause();
    return false;
  }

  #streamOnData(chunk: Buffer): void {
    if (this.#stopped) return;
    if (this.#pending !== null) {
      // Can happen if data was already queued in the stream when we paused.
      this.#pending = Buffer.concat([this.#pending, chunk]);
      this.#pendingFrame = null;
      return;
    }
    if (!this.#send(chunk) && !this.#stopped) this.#stream.pause();
  }

  /**
   * A read frame buffer with `bytes` of payload: out as ONE write (header in place) when all
   * of it may go now; within a partial credit in pieces (#send; the buffer is then not reused);
   * otherwise it waits whole. Returns true when all was sent.
   */
  #sendFrame(frame: Buffer, bytes: number): boolean {
    if (this.#conn.closed) {
      this.stop();
      return false;
    }
    const payload = frame.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + bytes);
    if (!this.#conn.congested) {
      if (this.#channel.writeFrame(this.#which, frame.subarray(0, FRAME_HEADER_SIZE + bytes), () => giveFrame(frame))) {
        this.bytesSent += bytes;
        return true;
      }
      if (this.#channel.sendCredit > 0) return this.#send(payload);
    }
    this.#pending = payload;
    this.#pendingFrame = frame;
    if (this.#conn.congested) this.#waitForDrain();
    return false;
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
        if (this.#conn.congested) this.#waitForDrain();
        return false;
      }
      const piece = allowed === chunk.length && offset === 0 ? chunk : chunk.subarray(offset, offset + allowed);
      this.#channel.write(this.#which, piece);
      this.bytesSent += allowed;
      offset += allowed;
    }
    return true;
  }

  #waitForDrain(): void {
    if (this.#waitingForDrain) return;
    this.#waitingForDrain = true;
    this.#conn.whenDrained(() => {
      this.#waitingForDrain = false;
      this.flush();
    });
  }
}
