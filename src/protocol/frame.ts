/**
 * Frame layer of protocol v1 (docs/protocol.md §2). Pure: no sockets, no timers.
 *
 * Every frame is a 9-byte header and a payload:
 *   u32 length (payload bytes, big-endian) | u8 type | u32 channel | payload
 */
import { ErrorCode, ProtocolError } from '../errors.js';

export const FRAME_HEADER_SIZE = 9;
/** Largest payload any v1 peer may send, whatever it negotiated. */
export const PROTOCOL_MAX_PAYLOAD = 1024 * 1024;
/** Largest payload accepted before authentication: only the handshake fits. */
export const PREAUTH_MAX_PAYLOAD = 16 * 1024;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  GOODBYE: 0x03,
  PING: 0x04,
  PONG: 0x05,
  OPEN: 0x10,
  OPEN_OK: 0x11,
  OPEN_FAIL: 0x12,
  STDIN: 0x13,
  STDOUT: 0x14,
  STDERR: 0x15,
  WINDOW: 0x16,
  SIGNAL: 0x17,
  EOF: 0x18,
  EXIT: 0x19,
  CLOSE: 0x1a,
  RESIZE: 0x1b,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));
const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, value]) => [value, name]));

export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export interface Frame {
  type: FrameType;
  channel: number;
  payload: Buffer;
  /**
   * Set on the pieces of a stream-type frame passed on in pieces (FrameDecoderOptions.streamTypes):
   * the whole frame's payload length, and its bytes from this piece's start to its end, so a
   * receiver can check (and name) the frame, not the piece, against its window.
   */
  frameLength?: number;
  remaining?: number;
}

// u32 length | u8 type | u32 channel
export function encodeFrameHeader(type: FrameType, channel: number, payloadLength: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  header.writeUInt32BE(payloadLength, 0);
  header.writeUInt8(type, 4);
  header.writeUInt32BE(channel >>> 0, 5);
  return header;
}

/** Write a frame header into the first FRAME_HEADER_SIZE bytes of `target` (a frame built in place). */
export function writeFrameHeader(target: Buffer, type: FrameType, channel: number, payloadLength: number): void {
  target.writeUInt32BE(payloadLength, 0);
  target[4] = type;
  target.writeUInt32BE(channel >>> 0, 5);
}

// u32 length | u8 type | u32 channel | payload
export function encodeFrame(type: FrameType, channel: number, payload: Uint8Array = EMPTY): Buffer {
  if (payload.length > PROTOCOL_MAX_PAYLOAD) {
    throw new ProtocolError(
      ErrorCode.FRAME_TOO_LARGE,
      `Frame payload of ${payload.length} bytes exceeds the protocol maximum of ${PROTOCOL_MAX_PAYLOAD}; split it into smaller frames.`,
    );
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(channel >>> 0, 5);
  frame.set(payload, FRAME_HEADER_SIZE);
  return frame;
}

const EMPTY = Buffer.alloc(0);

export interface FrameDecoderOptions {
  /** Largest payload to accept; a bigger length prefix is a protocol error before any allocation. */
  maxPayload?: number;
  /**
   * Frame types whose payload is a byte stream (STDIN/STDOUT/STDERR): a frame of these types
   * that spans input chunks is passed on in pieces, as views of each chunk, instead of being
   * copied into one buffer. The pieces of one frame are consecutive sink calls with the same
   * type and channel, and their bytes concatenate to the payload.
   */
  streamTypes?: ReadonlySet<number>;
}

/** The data frame types, whose payloads are byte streams. */
export const STREAM_FRAME_TYPES: ReadonlySet<number> = new Set([FrameType.STDIN, FrameType.STDOUT, FrameType.STDERR]);

/**
 * Turns a byte stream, split anywhere, into frames. Calls `sink` once per frame in order.
 * A frame contained in one chunk is passed as a view of that chunk (no copy); one that spans
 * chunks is assembled into a buffer allocated only after its length passed the size check.
 * Throws `ProtocolError` on a bad length or unknown type; the decoder is then unusable.
 */
export class FrameDecoder {
  #sink: (frame: Frame) => void;
  #maxPayload: number;
  #header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  #headerFill = 0;
  #payload: Buffer | null = null;
  #payloadFill = 0;
  #type: FrameType = FrameType.HELLO;
  #channel = 0;
  #failed: ProtocolError | null = null;
  #streamTypes: ReadonlySet<number> | null;
  /** Bytes still to come of a stream-type frame being passed on in pieces. */
  #streaming = 0;
  /** That frame's whole payload length. */
  #frameLength = 0;

  constructor(sink: (frame: Frame) => void, options: FrameDecoderOptions = {}) {
    this.#sink = sink;
    this.#streamTypes = options.streamTypes ?? null;
    this.#maxPayload = Math.min(options.maxPayload ?? PROTOCOL_MAX_PAYLOAD, PROTOCOL_MAX_PAYLOAD);
  }

  /** Raise or lower the accepted payload size (after authentication the limit grows). */
  set maxPayload(value: number) {
    this.#maxPayload = Math.min(value, PROTOCOL_MAX_PAYLOAD);
  }

  get maxPayload(): number {
    return this.#maxPayload;
  }

  /** Bytes of an incomplete frame held right now. */
  get bufferedBytes(): number {
    return this.#headerFill + this.#payloadFill;
  }

  /** True when no partial frame is held: the stream ended on a frame boundary. */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#payload === null && this.#streaming === 0;
  }

  push(chunk: Buffer): void {
    if (this.#failed) throw this.#failed;
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.#streaming > 0) {
        // The rest of a stream-type frame: pass this chunk's part on as a view.
        const take = Math.min(this.#streaming, end - offset);
        const remaining = this.#streaming;
        this.#streaming -= take;
        const piece = chunk.subarray(offset, offset + take);
        offset += take;
        this.#sink({ type: this.#type, channel: this.#channel, payload: piece, frameLength: this.#frameLength, remaining });
        continue;
      }
      if (this.#payload !== null) {
        // Filling a frame that spans chunks.
        const take = Math.min(this.#payload.length - this.#payloadFill, end - offset);
        chunk.copy(this.#payload, this.#payloadFill, offset, offset + take);
        this.#payloadFill += take;
        offset += take;
        if (this.#payloadFill === this.#payload.length) {
          const payload = this.#payload;
          this.#payload = null;
          this.#payloadFill = 0;
          this.#sink({ type: this.#type, channel: this.#channel, payload });
        }
        continue;
      }
      if (this.#headerFill === 0 && end - offset >= FRAME_HEADER_SIZE) {
        // Fast path: the header is whole in this chunk.
        const length = chunk.readUInt32BE(offset);
        const type = chunk[offset + 4]!;
        const channel = chunk.readUInt32BE(offset + 5);
        this.#check(length, type);
        offset += FRAME_HEADER_SIZE;
        if (end - offset >= length) {
          const payload = chunk.subarray(offset, offset + length);
          offset += length;
          this.#sink({ type: type as FrameType, channel, payload });
        } else if (this.#streamTypes?.has(type)) {
          this.#type = type as FrameType;
          this.#channel = channel;
          this.#streaming = length;
          this.#frameLength = length;
        } else {
          this.#beginPayload(type as FrameType, channel, length);
        }
        continue;
      }
      // Slow path: the header itself is split.
      const take = Math.min(FRAME_HEADER_SIZE - this.#headerFill, end - offset);
      chunk.copy(this.#header, this.#headerFill, offset, offset + take);
      this.#headerFill += take;
      offset += take;
      if (this.#headerFill === FRAME_HEADER_SIZE) {
        this.#headerFill = 0;
        const length = this.#header.readUInt32BE(0);
        const type = this.#header[4]!;
        const channel = this.#header.readUInt32BE(5);
        this.#check(length, type);
        if (length === 0) this.#sink({ type: type as FrameType, channel, payload: EMPTY });
        else if (this.#streamTypes?.has(type)) {
          this.#type = type as FrameType;
          this.#channel = channel;
          this.#streaming = length;
          this.#frameLength = length;
        } else this.#beginPayload(type as FrameType, channel, length);
      }
    }
  }

  #beginPayload(type: FrameType, channel: number, length: number): void {
    this.#type = type;
    this.#channel = channel;
    this.#payload = Buffer.allocUnsafe(length);
    this.#payloadFill = 0;
  }

  #check(length: number, type: number): void {
    if (!KNOWN_TYPES.has(type)) {
      this.#failed = new ProtocolError(
        ErrorCode.UNKNOWN_FRAME_TYPE,
        `Unknown frame type ${frameTypeName(type)}; the peer does not speak shellwire protocol v1.`,
      );
      throw this.#failed;
    }
    if (length > this.#maxPayload) {
      this.#failed = new ProtocolError(
        ErrorCode.FRAME_TOO_LARGE,
        `Frame of ${length} bytes (type ${frameTypeName(type)}) exceeds the limit of ${this.#maxPayload} bytes.`,
      );
      throw this.#failed;
    }
  }
}
