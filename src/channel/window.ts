/**
 * Per-channel flow-control windows (docs/protocol.md §5). A sender may have at most
 * `window` unacknowledged bytes in flight on a channel; the receiver returns credit with
 * WINDOW frames as its consumer takes the data. Sending past the credit is a protocol
 * error (never a silent drop).
 */
import { ErrorCode, ProtocolError } from '../errors.js';

/** Default credit a receiver grants: 2 MiB keeps a loopback link busy at >1 GB/s. */
export const DEFAULT_WINDOW = 2 * 1024 * 1024;
/** Default largest data payload: large frames amortise per-frame costs. */
export const DEFAULT_MAX_PACKET = 64 * 1024;
const MAX_CREDIT = 0xffffffff;

/** The sending side's view: how many bytes the peer still accepts. */
export class SendWindow {
  #available: number;

  constructor(initial: number) {
    this.#available = initial;
  }

  get available(): number {
    return this.#available;
  }

  consume(bytes: number): void {
    this.#available -= bytes;
  }

  /** Add credit from a WINDOW frame. */
  grant(increment: number, channel: number): void {
    if (this.#available + increment > MAX_CREDIT) {
      throw new ProtocolError(ErrorCode.WINDOW_OVERRUN, `WINDOW on channel ${channel} raised the credit past 2^32-1 bytes.`, { channel });
    }
    this.#available += increment;
  }
}

/**
 * The receiving side's view: it checks that the peer stays inside the credit it was
 * given, and decides when consumed bytes are worth a WINDOW frame (at half the window,
 * as ssh does, so credit returns before the sender stalls but not once per chunk).
 */
export class ReceiveWindow {
  readonly size: number;
  #outstanding: number;
  #consumed = 0;

  constructor(size: number) {
    this.size = size;
    this.#outstanding = size;
  }

  /**
   * Record bytes received; throws on an overrun. A frame that arrives in pieces is checked
   * whole on its first piece (`frame.remaining`: its bytes from this piece on), and the
   * error names the frame's size (`frame.frameLength`), not the piece's.
   */
  receive(bytes: number, channel: number, frame?: { frameLength?: number | undefined; remaining?: number | undefined }): void {
    const incoming = frame?.remaining ?? bytes;
    if (incoming > this.#outstanding) {
      const size = frame?.frameLength ?? bytes;
      const already = size - incoming;
      throw new ProtocolError(
        ErrorCode.WINDOW_OVERRUN,
        `Peer sent a ${size}-byte data frame on channel ${channel} with only ${this.#outstanding + already} bytes of window left.`,
        { channel },
      );
    }
    this.#outstanding -= bytes;
  }

  /** Record bytes the consumer took; returns the increment to send now, or 0. */
  consume(bytes: number): number {
    this.#consumed += bytes;
    if (this.#consumed < this.size / 2) return 0;
    const increment = this.#consumed;
    this.#consumed = 0;
    this.#outstanding += increment;
    return increment;
  }
}
