/**
 * One channel's lifecycle (docs/protocol.md §4–§6), the same on both ends: OPEN →
 * OPEN_OK | OPEN_FAIL → data / WINDOW / SIGNAL / RESIZE / EOF → EXIT → CLOSE. It owns the
 * open handshake, both credit windows (window.ts), the close handshake and the ordering
 * rules; what a kind does with its data (a process, a file, a session) lives in hooks.
 * No sockets and no timers: frames leave through a `FrameSink`, arrive through `receive()`.
 *
 * The opener (client in v1) sends OPEN, STDIN, SIGNAL, RESIZE, EOF; the acceptor (daemon)
 * sends OPEN_OK / OPEN_FAIL, STDOUT, STDERR, EXIT; both send WINDOW and CLOSE (§2.2).
 *
 * Ordering rules enforced here (R-numbers are cited in tests and in the report):
 *  R1  Nothing but OPEN before OPEN_OK from the opener: a close, signal, resize or EOF asked
 *      for while opening waits for OPEN_OK and is dropped on OPEN_FAIL, so no frame crosses an
 *      OPEN_FAIL (§9; remote-process.ts kill()/close(), file-channel.ts close(),
 *      channel-streams.ts _final()). A deferred close goes out alone: the held frames are dropped.
 *  R2  OPEN_FAIL ends the channel at once, no CLOSE either way (§4.6, §6.3 rule 1).
 *  R3  Frames other than OPEN_OK / OPEN_FAIL / CLOSE before OPEN_OK → SW_ERR_BAD_MESSAGE
 *      (§5 rule 4 for WINDOW; server/file-channel.ts for the daemon side).
 *  R4  No data beyond the peer's credit nor larger than its maxPacket (§5 rule 1).
 *  R5  Data beyond our outstanding credit → SW_ERR_WINDOW_OVERRUN, fatal, also after our
 *      CLOSE (§5 rule 2, §6.3 rule 2); credit above 2^32-1 → SW_ERR_WINDOW_OVERRUN (§5 rule 4).
 *  R6  Credit returns with one WINDOW once half the window was consumed (§5 rule 3), and
 *      never after our CLOSE, nor once the peer said EXIT (races.test.ts; exec-channel.ts
 *      #stdinOnData, file-channel.ts credit).
 *  R7  No data after our EOF; EOF at most once (§6.2).
 *  R8  Data after the peer's EOF is discarded and its credit returned (§6.2).
 *  R9  EXIT is followed by CLOSE in the same breath and nothing else (§6.2, §6.3 "normal
 *      exit"); no EXIT after CLOSE; no EXIT before OPEN_OK.
 *  R10 After EXIT the peer may send only CLOSE: data or a second EXIT → SW_ERR_BAD_MESSAGE
 *      ("output never arrives after EXIT", §6.2).
 *  R11 After our CLOSE we send nothing more; what arrives is ignored except EXIT (a crossing
 *      still reports it) and CLOSE (§6.3 rule 2, "crossing").
 *  R12 CLOSE received without ours sent → answer CLOSE once; the channel is then forgotten
 *      (§6.3 rules 1 and 3). Crossing CLOSEs are not answered again.
 *  R13 A frame type the role never receives → SW_ERR_BAD_MESSAGE (§6.2 "any other type").
 *  R14 The channel ends exactly once, with one reason: normal (both CLOSEs), open-failed,
 *      connection-lost, protocol-error.
 */
import { FRAME_HEADER_SIZE, FrameType, frameTypeName, writeFrameHeader, type Frame } from '../protocol/frame.js';
import {
  decodeCodeMessage, decodeOpenOk, decodeWindow, encodeCodeMessage, encodeExit, encodeOpenOk, encodeResize, encodeSignal, encodeWindow,
  type ExitMessage, type OpenFailExtra, type OpenOkMessage, type OpenRequest,
} from '../protocol/messages.js';
import { encodePutEof, type PutEof } from '../protocol/file-messages.js';
import { ErrorCode, ProtocolError, type ShellwireError } from '../errors.js';
import { ReceiveWindow, SendWindow } from './window.js';

export const ChannelState = {
  /** Opener: OPEN sent, no answer yet. Acceptor: OPEN received, not answered yet. */
  OPENING: 'opening',
  OPEN: 'open',
  /** We sent CLOSE; waiting for the peer's. */
  CLOSING: 'closing',
  /** Both CLOSEs exchanged, or the connection ended: the id is free. */
  CLOSED: 'closed',
  /** OPEN_FAIL sent or received: the id is free, no CLOSE either way. */
  OPEN_FAILED: 'open-failed',
} as const;
export type ChannelState = (typeof ChannelState)[keyof typeof ChannelState];

export const ChannelRole = { OPENER: 'opener', ACCEPTOR: 'acceptor' } as const;
export type ChannelRole = (typeof ChannelRole)[keyof typeof ChannelRole];

export const CloseReason = {
  NORMAL: 'normal',
  OPEN_FAILED: 'open-failed',
  CONNECTION_LOST: 'connection-lost',
  PROTOCOL_ERROR: 'protocol-error',
} as const;
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];

export type DataStream = 'stdin' | 'stdout' | 'stderr';

/** Where a channel's frames go (FrameConnection fits; tests use an in-memory link). */
export interface FrameSink {
  send(type: FrameType, channel: number, payload?: Uint8Array): void;
  /** Data frames, if the sink can send them without copying (FrameConnection.sendData). */
  sendData?(type: FrameType, channel: number, payload: Buffer): void;
  /**
   * A whole frame built in place (header, then payload) as one write; `done` once the sink no
   * longer holds the buffer (FrameConnection.sendFrame). Absent: the channel never offers it.
   */
  sendFrame?(frame: Buffer, done: () => void): void;
}

/** What ended the channel, besides the reason. */
export interface CloseDetail {
  /** open-failed: the OPEN_FAIL's code and message (and its raw payload for extra fields). */
  openFail?: { code: string; message: string; payload: Buffer };
  /** connection-lost / protocol-error: why (null for a connection that closed cleanly). */
  error?: ShellwireError | Error | null;
  /** An EXIT arrived (opener) or was sent (acceptor) before the end. */
  exited: boolean;
}

/**
 * Per-kind behaviour. A hook that is absent means the kind does not take that frame:
 * receiving it (while open) is SW_ERR_BAD_MESSAGE. Hooks may throw a ProtocolError to
 * refuse a frame; the channel then ends with `protocol-error` and the error goes up.
 */
export interface ChannelHooks {
  /** Opener: OPEN_OK arrived; `payload` is its JSON, for the kind's own fields. */
  onOpen?(payload: Buffer): void;
  /** Data within our credit. Call `consumed()` as the consumer takes it. */
  onData?(stream: DataStream, bytes: Buffer): void;
  /** Send credit grew: writers may continue. */
  onWindow?(): void;
  onEof?(payload: Buffer): void;
  onSignal?(payload: Buffer): void;
  onResize?(payload: Buffer): void;
  /** Opener: EXIT arrived (also after our CLOSE, when they crossed). */
  onExit?(payload: Buffer): void;
  /** Exactly once. */
  onClose(reason: CloseReason, detail: CloseDetail): void;
}

/** The messages the lifecycle frames carry, each with its typed encoder (protocol/messages.ts). */
export type OpenMessage = OpenRequest;
export type { OpenOkMessage };

export interface ChannelInit {
  id: number;
  role: ChannelRole;
  sink: FrameSink;
  hooks: ChannelHooks;
  /** Opener: the OPEN we send (its `window` is the credit we grant). Acceptor: the peer's OPEN. */
  open: { window: number; maxPacket: number };
  /** Told once when the channel ends, after `hooks.onClose` (the table forgets it). */
  onEnded?: (channel: Channel) => void;
}

const RECEIVES: Record<ChannelRole, ReadonlySet<number>> = {
  opener: new Set([FrameType.OPEN_OK, FrameType.OPEN_FAIL, FrameType.STDOUT, FrameType.STDERR, FrameType.WINDOW, FrameType.EXIT, FrameType.CLOSE]),
  acceptor: new Set([FrameType.STDIN, FrameType.WINDOW, FrameType.SIGNAL, FrameType.EOF, FrameType.RESIZE, FrameType.CLOSE]),
};

const STREAM_TYPE: Record<DataStream, FrameType> = { stdin: FrameType.STDIN, stdout: FrameType.STDOUT, stderr: FrameType.STDERR };

export class Channel {
  readonly id: number;
  readonly role: ChannelRole;
  #sink: FrameSink;
  #hooks: ChannelHooks;
  #onEnded: ((channel: Channel) => void) | undefined;
  #state: ChannelState = ChannelState.OPENING;
  /** Credit the peer gave us; null until OPEN_OK (opener) or for ever on a channel that failed. */
  #sendWindow: SendWindow | null;
  #sendMaxPacket: number;
  /** Credit we gave; null on the acceptor until it sends OPEN_OK. */
  #recvWindow: ReceiveWindow | null;
  #eofSent = false;
  #eofReceived = false;
  #exited = false;
  /** R1: held until OPEN_OK. */
  #closeWanted = false;
  #held: { type: FrameType; payload: Buffer }[] = [];

  constructor(init: ChannelInit) {
    this.id = init.id;
    this.role = init.role;
    this.#sink = init.sink;
    this.#hooks = init.hooks;
    this.#onEnded = init.onEnded;
    if (init.role === ChannelRole.OPENER) {
      this.#recvWindow = new ReceiveWindow(init.open.window);
      this.#sendWindow = null;
      this.#sendMaxPacket = 0;
    } else {
      this.#recvWindow = null;
      this.#sendWindow = new SendWindow(init.open.window);
      this.#sendMaxPacket = init.open.maxPacket;
    }
  }

  get state(): ChannelState {
    return this.#state;
  }

  /** The channel has ended (closed or open-failed): it sends and delivers nothing more. */
  get ended(): boolean {
    return this.#state === ChannelState.CLOSED || this.#state === ChannelState.OPEN_FAILED;
  }

  /** Bytes of data we may send now (0 before OPEN_OK, after our EOF or CLOSE). */
  get sendCredit(): number {
    if (!this.#sendsData()) return 0;
    return this.#sendWindow!.available;
  }

  /** Largest data payload the peer wants. */
  get sendMaxPacket(): number {
    return this.#sendMaxPacket;
  }

  get eofSent(): boolean {
    return this.#eofSent;
  }

  get eofReceived(): boolean {
    return this.#eofReceived;
  }

  /** Opener: EXIT arrived. Acceptor: EXIT sent. */
  get exited(): boolean {
    return this.#exited;
  }

  // ---- acceptor: answering the OPEN ----

  /** Acceptor: accept the channel. `message.window` is the credit we grant for the peer's data. */
  openOk(message: OpenOkMessage): boolean {
    this.#mustBe(ChannelRole.ACCEPTOR, 'openOk');
    if (this.#state !== ChannelState.OPENING) return false;
    this.#recvWindow = new ReceiveWindow(message.window);
    this.#state = ChannelState.OPEN;
    this.#sink.send(FrameType.OPEN_OK, this.id, encodeOpenOk(message));
    if (this.#closeWanted) this.close();
    return true;
  }

  /** Acceptor: refuse the channel (R2): the id is free at once, no CLOSE follows. */
  openFail(code: string, message: string, extra: OpenFailExtra = {}): boolean {
    this.#mustBe(ChannelRole.ACCEPTOR, 'openFail');
    if (this.#state !== ChannelState.OPENING) return false;
    const payload = encodeCodeMessage(code, message, extra);
    this.#sink.send(FrameType.OPEN_FAIL, this.id, payload);
    this.#end(ChannelState.OPEN_FAILED, CloseReason.OPEN_FAILED, { openFail: { code, message, payload } });
    return true;
  }

  // ---- sending ----

  /**
   * Send as much of `bytes` as the peer's credit allows, in frames of at most its maxPacket
   * (R4); returns how many bytes went. 0 before OPEN_OK, after EOF (R7) or CLOSE (R11):
   * check `sendCredit`, and continue in `onWindow`.
   */
  write(stream: DataStream, bytes: Buffer): number {
    if ((stream === 'stdin') !== (this.role === ChannelRole.OPENER)) throw new TypeError(`The ${this.role} of a channel cannot send ${stream}.`);
    if (!this.#sendsData()) return 0;
    const window = this.#sendWindow!;
    const type = STREAM_TYPE[stream];
    let sent = 0;
    while (sent < bytes.length) {
      const take = Math.min(window.available, this.#sendMaxPacket, bytes.length - sent);
      if (take <= 0) break;
      window.consume(take);
      const piece = bytes.subarray(sent, sent + take);
      if (this.#sink.sendData) this.#sink.sendData(type, this.id, piece);
      else this.#sink.send(type, this.id, piece);
      sent += take;
    }
    return sent;
  }

  /**
   * Send `frame` — FRAME_HEADER_SIZE bytes of room, then the payload — as ONE data frame with
   * the header written in place: a single buffer for the socket, no copy, no second write.
   * Only when the sink can (sendFrame) and the whole payload fits the peer's credit and
   * maxPacket; otherwise nothing is sent and false returned (send the payload with `write`).
   * `done` runs once the sink no longer holds `frame` (only after true).
   */
  writeFrame(stream: DataStream, frame: Buffer, done: () => void): boolean {
    if ((stream === 'stdin') !== (this.role === ChannelRole.OPENER)) throw new TypeError(`The ${this.role} of a channel cannot send ${stream}.`);
    const length = frame.length - FRAME_HEADER_SIZE;
    if (!this.#sink.sendFrame || length <= 0 || !this.#sendsData()) return false;
    const window = this.#sendWindow!;
    if (length > window.available || length > this.#sendMaxPacket) return false;
    window.consume(length);
    writeFrameHeader(frame, STREAM_TYPE[stream], this.id, length);
    this.#sink.sendFrame(frame, done);
    return true;
  }

  /**
   * The consumer took `bytes` of what `onData` delivered: return credit at half the window
   * (R6), never after our CLOSE or the peer's EXIT.
   */
  consumed(bytes: number): void {
    const window = this.#recvWindow;
    if (!window || bytes <= 0) return;
    const increment = window.consume(bytes);
    if (increment > 0 && this.#state === ChannelState.OPEN && !(this.role === ChannelRole.OPENER && this.#exited)) {
      this.#sink.send(FrameType.WINDOW, this.id, encodeWindow(increment));
    }
  }

  /** Opener: the command's stdin ends (R7). `message`: a put channel's `{sha256, size}` (exec's EOF is empty). */
  eof(message?: PutEof): boolean {
    this.#mustBe(ChannelRole.OPENER, 'eof');
    if (this.#eofSent || this.#closeWanted || this.ended || this.#state === ChannelState.CLOSING) return false;
    this.#eofSent = true;
    return this.#sendOrHold(FrameType.EOF, message === undefined ? Buffer.alloc(0) : encodePutEof(message));
  }

  /** Opener: send a signal to the remote command (held until OPEN_OK, R1). */
  signal(signal: string): boolean {
    this.#mustBe(ChannelRole.OPENER, 'signal');
    return this.#sendOrHold(FrameType.SIGNAL, encodeSignal({ signal }));
  }

  /** Opener: the terminal's new size (held until OPEN_OK, R1). */
  resize(cols: number, rows: number): boolean {
    this.#mustBe(ChannelRole.OPENER, 'resize');
    if (this.#state === ChannelState.OPENING) {
      // Only the last size matters.
      this.#held = this.#held.filter((h) => h.type !== FrameType.RESIZE);
    }
    return this.#sendOrHold(FrameType.RESIZE, encodeResize({ cols, rows }));
  }

  /** Acceptor: the command ended; EXIT and CLOSE go together (R9). */
  exit(status: ExitMessage): boolean {
    this.#mustBe(ChannelRole.ACCEPTOR, 'exit');
    if (this.#state !== ChannelState.OPEN || this.#closeWanted) return false;
    this.#exited = true;
    this.#sink.send(FrameType.EXIT, this.id, encodeExit(status));
    this.close();
    return true;
  }

  /**
   * "I will send nothing more" (§6.3). While opening it waits for OPEN_OK (R1) and is
   * dropped on OPEN_FAIL. The channel ends when the peer's CLOSE arrives.
   */
  close(): void {
    if (this.ended || this.#state === ChannelState.CLOSING) return;
    if (this.#state === ChannelState.OPENING) {
      this.#closeWanted = true;
      this.#held = [];
      return;
    }
    this.#state = ChannelState.CLOSING;
    this.#held = [];
    this.#sink.send(FrameType.CLOSE, this.id);
  }

  // ---- receiving ----

  /** A frame for this channel from the peer. Throws ProtocolError on a violation (fatal). */
  receive(frame: Frame): void {
    if (this.ended) return; // the table forgets ended channels; defensive
    const type = frame.type;
    if (!RECEIVES[this.role].has(type)) {
      throw this.#bad(`${frameTypeName(type)} is not valid from the ${this.role === ChannelRole.OPENER ? 'acceptor' : 'opener'} of channel ${this.id}`);
    }
    if (type === FrameType.CLOSE) return this.#peerClosed();
    if (this.#state === ChannelState.OPENING) return this.#receiveOpening(frame);
    if (type === FrameType.OPEN_OK || type === FrameType.OPEN_FAIL) throw this.#bad(`second answer to OPEN (${frameTypeName(type)}) on channel ${this.id}`);
    const closing = this.#state === ChannelState.CLOSING;
    switch (type) {
      case FrameType.STDIN:
      case FrameType.STDOUT:
      case FrameType.STDERR:
        return this.#receiveData(frame, closing);
      case FrameType.WINDOW: {
        const increment = decodeWindow(frame.payload);
        this.#sendWindow!.grant(increment, this.id);
        if (closing) return;
        return this.#call('onWindow', () => this.#hooks.onWindow?.());
      }
      case FrameType.EXIT:
        if (this.#exited) throw this.#bad(`second EXIT on channel ${this.id}`);
        this.#exited = true;
        return this.#call('onExit', () => this.#hooks.onExit?.(frame.payload)); // also when closing (R11)
      case FrameType.EOF:
        if (closing || this.#eofReceived) return;
        this.#eofReceived = true;
        return this.#call('onEof', () => this.#hooks.onEof?.(frame.payload));
      case FrameType.SIGNAL:
        if (closing) return;
        return this.#call('onSignal', () => this.#hooks.onSignal?.(frame.payload));
      case FrameType.RESIZE:
        if (closing) return;
        return this.#call('onResize', () => this.#hooks.onResize?.(frame.payload));
    }
  }

  /** The connection is gone (R14). */
  connectionLost(error: ShellwireError | Error | null = null): void {
    if (this.ended) return;
    this.#end(ChannelState.CLOSED, CloseReason.CONNECTION_LOST, { error });
  }

  /** This channel broke the protocol; the connection fails with `error` (R14). */
  protocolError(error: ShellwireError | Error): void {
    if (this.ended) return;
    this.#end(ChannelState.CLOSED, CloseReason.PROTOCOL_ERROR, { error });
  }

  #receiveOpening(frame: Frame): void {
    if (this.role === ChannelRole.ACCEPTOR) throw this.#bad(`${frameTypeName(frame.type)} on channel ${this.id} before OPEN_OK`);
    if (frame.type === FrameType.OPEN_FAIL) {
      const fail = decodeCodeMessage(FrameType.OPEN_FAIL, frame.payload);
      this.#held = [];
      this.#end(ChannelState.OPEN_FAILED, CloseReason.OPEN_FAILED, { openFail: { ...fail, payload: frame.payload } });
      return;
    }
    if (frame.type !== FrameType.OPEN_OK) throw this.#bad(`${frameTypeName(frame.type)} on channel ${this.id} before OPEN_OK`);
    const ok = decodeOpenOk(frame.payload);
    this.#sendWindow = new SendWindow(ok.window);
    this.#sendMaxPacket = ok.maxPacket;
    this.#state = ChannelState.OPEN;
    this.#hooks.onOpen?.(frame.payload);
    if (this.#closeWanted) return this.close();
    for (const held of this.#held.splice(0)) {
      if (this.#state !== ChannelState.OPEN) break;
      this.#sink.send(held.type, this.id, held.payload);
    }
    if (this.#state === ChannelState.OPEN) this.#hooks.onWindow?.();
  }

  #receiveData(frame: Frame, closing: boolean): void {
    // Counted whatever happens next: an overrun is fatal even after our CLOSE (R5).
    this.#recvWindow!.receive(frame.payload.length, this.id, frame);
    if (this.role === ChannelRole.OPENER && this.#exited) throw this.#bad(`${frameTypeName(frame.type)} after EXIT on channel ${this.id}`);
    if (closing) return;
    if (this.#eofReceived) return this.consumed(frame.payload.length); // R8
    const stream: DataStream = frame.type === FrameType.STDIN ? 'stdin' : frame.type === FrameType.STDOUT ? 'stdout' : 'stderr';
    this.#call('onData', () => this.#hooks.onData?.(stream, frame.payload));
  }

  #peerClosed(): void {
    // R12: answer unless ours is out (crossing). Before OPEN_OK the peer gave up at once;
    // it sends nothing after its CLOSE, so ours cannot cross an OPEN_FAIL.
    if (this.#state !== ChannelState.CLOSING) this.#sink.send(FrameType.CLOSE, this.id);
    this.#held = [];
    this.#end(ChannelState.CLOSED, CloseReason.NORMAL, {});
  }

  /** A hook the kind did not give means the kind does not take that frame (R13). */
  #call(hook: keyof ChannelHooks, run: () => void): void {
    if (this.#hooks[hook] === undefined) throw this.#bad(`${hook.slice(2)} is not valid on channel ${this.id} of this kind`);
    run();
  }

  #sendOrHold(type: FrameType, payload: Buffer): boolean {
    if (this.#closeWanted || this.ended || this.#state === ChannelState.CLOSING) return false;
    if (this.#state === ChannelState.OPENING) {
      this.#held.push({ type, payload });
      return true;
    }
    this.#sink.send(type, this.id, payload);
    return true;
  }

  #sendsData(): boolean {
    return this.#state === ChannelState.OPEN && this.#sendWindow !== null && !this.#eofSent && !(this.role === ChannelRole.ACCEPTOR && this.#exited);
  }

  #end(state: ChannelState, reason: CloseReason, detail: Omit<CloseDetail, 'exited'>): void {
    this.#state = state;
    this.#held = [];
    try {
      this.#hooks.onClose(reason, { ...detail, exited: this.#exited });
    } finally {
      this.#onEnded?.(this);
    }
  }

  #mustBe(role: ChannelRole, what: string): void {
    if (this.role !== role) throw new TypeError(`${what}() is for the ${role} of a channel.`);
  }

  #bad(why: string): ProtocolError {
    return new ProtocolError(ErrorCode.BAD_MESSAGE, `${why[0]!.toUpperCase()}${why.slice(1)}.`, { channel: this.id });
  }
}
