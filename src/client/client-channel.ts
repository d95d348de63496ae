/**
 * The client's end of one channel, shared by every client kind (exec: remote-process.ts,
 * session: shell-session.ts, file: file-channel.ts). The lifecycle and its ordering rules
 * (nothing but OPEN before OPEN_OK, no CLOSE across an OPEN_FAIL, no WINDOW after our
 * CLOSE, …) live in the core channel (src/channel/channel-state.ts); this adds only what
 * the client needs on top of it, once for all kinds:
 *
 * - one end reported to the kind, exactly once: `ended(null)` (closed, or given up on) or
 *   `ended(error)` (refused with OPEN_FAIL, connection lost, protocol error);
 * - the close grace: a close the daemon does not confirm within CHANNEL_CLOSE_GRACE_MS ends
 *   the kind anyway (a frozen daemon must not hold a caller that gave up). The channel's id
 *   stays in the table until the daemon's CLOSE (or OPEN_FAIL) does come, so its late
 *   frames are dropped by the core, not errors.
 */
import { ChannelState, CloseReason, type Channel, type ChannelHooks, type CloseDetail, type CloseReason as Reason, type OpenMessage } from '../channel/channel-state.js';
import { ConnectionError, ErrorCode, ProtocolError, ShellwireError, remoteErrorCode } from '../errors.js';
import type { ClientChannelHost } from './channel-host.js';

/**
 * How long `close()` (or an abort) waits for the daemon's CLOSE before the command counts
 * as canceled anyway. A frozen or unreachable daemon never answers, and a caller that gave
 * up must not wait for keepalive (tens of seconds) to learn it. The channel id stays
 * reserved until the daemon's CLOSE does come, so its late frames are dropped, not errors.
 */
export const CHANNEL_CLOSE_GRACE_MS = 2_000;

/** The OPEN_FAIL a kind turns into its own error. */
export interface OpenRefusal {
  code: ErrorCode;
  message: string;
  /** The whole OPEN_FAIL object, for a kind's extra fields (file channels: `errno`). */
  payload: Buffer;
}

/** One client kind: the frames it takes, and what it makes of the channel's end. */
export interface ClientKind {
  hooks: Omit<ChannelHooks, 'onClose'>;
  /** The daemon refused the OPEN: the error the caller sees. */
  refused(fail: OpenRefusal): ShellwireError;
  /** Exactly once: null when the channel closed (or its close went unconfirmed), else why it failed. */
  ended(error: ShellwireError | null): void;
}

export class ClientChannel {
  readonly channel: Channel;
  #kind: ClientKind;
  /** Running from `close()` until the channel ends. */
  #grace: NodeJS.Timeout | undefined;
  /** The kind's `ended`, until it was called. */
  #end: ((error: ShellwireError | null) => void) | null;

  /** Sends OPEN now; throws (as `openChannel`) when the connection is closed or full. */
  constructor(host: ClientChannelHost, message: OpenMessage, kind: ClientKind) {
    this.#kind = kind;
    this.#end = (error) => kind.ended(error);
    this.channel = host.openChannel(message, { ...kind.hooks, onClose: (reason, detail) => this.#onClose(reason, detail) });
  }

  get id(): number {
    return this.channel.id;
  }

  /** We asked to close, or the channel is over: nothing more goes out on it. */
  get closing(): boolean {
    return this.#grace !== undefined || this.#end === null || this.channel.state === ChannelState.CLOSING || this.channel.ended;
  }

  /**
   * Give up on the channel: CLOSE goes out (once the daemon accepted it; dropped if it
   * refuses), and the kind ends when the daemon confirms, or after CHANNEL_CLOSE_GRACE_MS.
   */
  close(): void {
    if (this.closing) return;
    this.channel.close();
    if (this.channel.ended) return;
    this.#grace = setTimeout(() => this.#ended(null), CHANNEL_CLOSE_GRACE_MS);
    this.#grace.unref();
  }

  #onClose(reason: Reason, detail: CloseDetail): void {
    if (reason === CloseReason.NORMAL) return this.#ended(null);
    if (reason === CloseReason.OPEN_FAILED) {
      const fail = detail.openFail!;
      return this.#ended(this.#kind.refused({ code: remoteErrorCode(fail.code, ErrorCode.BAD_REQUEST), message: fail.message, payload: fail.payload }));
    }
    const error = detail.error;
    if (error instanceof ShellwireError) return this.#ended(error);
    if (!error) return this.#ended(new ConnectionError(ErrorCode.CONNECTION_CLOSED, 'The connection closed.', { channel: this.id }));
    // A kind's hook failed on a frame: the connection fails with this (as FrameConnection reports it).
    this.#ended(new ProtocolError(ErrorCode.BAD_MESSAGE, `Internal error handling a frame: ${error.message}`, { cause: error, channel: this.id }));
  }

  #ended(error: ShellwireError | null): void {
    clearTimeout(this.#grace);
    const end = this.#end;
    this.#end = null;
    end?.(error);
  }
}
