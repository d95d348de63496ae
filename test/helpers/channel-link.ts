/**
 * An in-memory link for socket-free channel tests: each side's frames are encoded with the
 * real codec (encodeFrame) into a byte queue, and delivered in chunks of any size through a
 * real FrameDecoder (data frames split into pieces, as from a socket) to the other side's
 * ChannelTable. Order within a direction is kept; the two directions interleave as the
 * test schedules them. Every frame sent and delivered is recorded for the checks.
 */
import { FrameDecoder, FrameType, STREAM_FRAME_TYPES, encodeFrame, type Frame } from '../../src/protocol/frame.js';
import type { FrameSink } from '../../src/channel/channel-state.js';
import type { ChannelTable } from '../../src/channel/channel-table.js';

export interface SentFrame {
  type: FrameType;
  channel: number;
  payload: Buffer;
}

/** One direction: the sender's sink, its byte queue, and the receiver's decoder. */
export class LinkDirection implements FrameSink {
  /** Every frame handed to the sink, in order (copies). */
  readonly sent: SentFrame[] = [];
  /** Every frame (or data piece) the receiver's table was given, in order. */
  readonly delivered: Frame[] = [];
  #queue: Buffer[] = [];
  #queued = 0;
  #decoder: FrameDecoder;
  #target: ChannelTable | null = null;
  /** Frames sent after this was set are a test failure (nothing may leave a dead connection). */
  dead = false;
  onSendAfterDeath: ((frame: SentFrame) => void) | null = null;
  /** Observes each sent frame before it is queued. */
  onSend: ((frame: SentFrame) => void) | null = null;
  /** Observes each frame (or data piece) just before the receiver's table gets it. */
  onDeliver: ((frame: Frame) => void) | null = null;

  constructor() {
    this.#decoder = new FrameDecoder((frame) => {
      const copy = { type: frame.type, channel: frame.channel, payload: Buffer.from(frame.payload) };
      this.delivered.push(copy);
      this.onDeliver?.(copy);
      this.#target!.dispatch(copy);
    }, { streamTypes: STREAM_FRAME_TYPES });
  }

  connect(target: ChannelTable): void {
    this.#target = target;
  }

  send(type: FrameType, channel: number, payload: Uint8Array = Buffer.alloc(0)): void {
    const frame = { type, channel, payload: Buffer.from(payload) };
    if (this.dead) {
      this.onSendAfterDeath?.(frame);
      return;
    }
    this.sent.push(frame);
    this.onSend?.(frame);
    const bytes = encodeFrame(type, channel, payload);
    this.#queue.push(bytes);
    this.#queued += bytes.length;
  }

  /** Bytes sent but not delivered yet. */
  get queued(): number {
    return this.#queued;
  }

  /** Deliver up to `bytes` bytes (all with Infinity); returns how many went. */
  deliver(bytes = Infinity): number {
    let left = Math.min(bytes, this.#queued);
    const total = left;
    while (left > 0) {
      const head = this.#queue[0]!;
      const take = Math.min(head.length, left);
      const piece = head.subarray(0, take);
      if (take === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(take);
      this.#queued -= take;
      left -= take;
      this.#decoder.push(piece);
    }
    return total;
  }

  /** The connection died: what is queued is lost. */
  drop(): void {
    this.#queue = [];
    this.#queued = 0;
    this.dead = true;
  }
}

/** Only the frames of one channel, as [type name, payload text] pairs, for example tests. */
export function framesOn(frames: readonly SentFrame[], channel: number): SentFrame[] {
  return frames.filter((f) => f.channel === channel);
}
