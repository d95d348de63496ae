/**
 * A framed, kept-alive connection over one byte duplex (the TLS socket: see transport.ts),
 * used by both client and server. It owns the decoder, answers PING, notices a dead peer,
 * and exposes write congestion so channels can stop producing while the socket drains
 * (never an unbounded queue).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { ErrorCode, ProtocolError, ConnectionError, ShellwireError } from '../errors.js';
import { FrameDecoder, FrameType, STREAM_FRAME_TYPES, encodeFrame, encodeFrameHeader, type Frame } from '../protocol/frame.js';
import { encodeCodeMessage, decodeCodeMessage, type Goodbye } from '../protocol/messages.js';

export const DEFAULT_KEEPALIVE_MS = 15_000;
/** Bytes queued in a socket before channels stop producing: bounds memory per connection. */
export const WRITE_BUFFER_LIMIT = 1024 * 1024;
/** After our side ended (goodbye, or the peer's), how long the socket may linger before it is destroyed. */
export const GOODBYE_LINGER_MS = 2_000;
/** A peer silent for this many keepalive intervals is declared dead. */
export const KEEPALIVE_MISSES = 3;

export interface FrameConnectionHandlers {
  /** Called for each frame except PING/PONG/GOODBYE, which this layer handles. */
  onFrame(frame: Frame): void;
  /** Called once when the connection is gone; `error` is set unless it ended cleanly. */
  onClose(error: ShellwireError | null, goodbye: Goodbye | null): void;
}

export interface FrameConnectionOptions {
  maxPayload: number;
  keepaliveMs?: number;
  /** Description for error messages, e.g. "127.0.0.1:50007". */
  peer: string;
  /**
   * False on the server until the handshake succeeds: until then PING/PONG/GOODBYE go to
   * the handler like any other frame, which accepts nothing but HELLO.
   */
  authenticated?: boolean;
}

/**
 * `S` is the duplex below: a TLS socket in shellwire (whatever carries the TLS, see
 * transport.ts); any `Duplex` works, since only bytes, `writableLength` and 'drain' are used.
 */
export class FrameConnection<S extends Duplex = TLSSocket | Socket> {
  readonly socket: S;
  readonly peer: string;
  readonly decoder: FrameDecoder;
  #handlers: FrameConnectionHandlers;
  #closed = false;
  #goodbyeReceived: Goodbye | null = null;
  #drainWaiters: Array<() => void> = [];
  #keepaliveTimer: NodeJS.Timeout | null = null;
  #lastHeard = Date.now();
  #keepaliveMs = 0;
  /** See FrameConnectionOptions.authenticated. */
  authenticated: boolean;

  constructor(socket: S, handlers: FrameConnectionHandlers, options: FrameConnectionOptions) {
    this.socket = socket;
    this.peer = options.peer;
    this.#handlers = handlers;
    this.authenticated = options.authenticated ?? true;
    // Data frames reach the channels as views of the TLS chunks: no copy per frame.
    this.decoder = new FrameDecoder((frame) => this.#decoderOnFrame(frame), { maxPayload: options.maxPayload, streamTypes: STREAM_FRAME_TYPES });
    socket.on('data', (chunk: Buffer) => this.#socketOnData(chunk));
    socket.on('drain', () => this.#socketOnDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => this.#socketOnError(err));
    socket.on('end', () => this.#socketOnEnd());
    socket.on('close', () => this.#finish(null));
    if (options.keepaliveMs) this.startKeepalive(options.keepaliveMs);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Hand the frames to someone else from the next frame on, even one in the middle of the
   * chunk being decoded: the client's handshake reads WELCOME with its own handlers, then
   * gives the connection to `Connection` before the bytes after WELCOME are decoded.
   */
  setHandlers(handlers: FrameConnectionHandlers): void {
    this.#handlers = handlers;
  }

  /** The ping interval in use (0: none); a peer silent for `KEEPALIVE_MISSES` of them is dropped. */
  get keepaliveMs(): number {
    return this.#keepaliveMs;
  }

  /**
   * True while more than `WRITE_BUFFER_LIMIT` bytes wait in the socket: producers should
   * wait for `whenDrained`. Not the stream's own high-water mark: TLS sockets have 16 KiB,
   * which would stop and restart every 64 KiB output chunk and halve throughput.
   */
  get congested(): boolean {
    // A closed connection is never congested: its queue (which a destroyed socket keeps
    // reporting) will never drain, and a producer that waited for it would wait forever or,
    // re-checking, spin. Sends after close are dropped, so there is nothing to wait for.
    return !this.#closed && this.socket.writableLength >= WRITE_BUFFER_LIMIT;
  }

  /**
   * Calls back (a callback, to avoid a promise per chunk) when the socket drains or closes.
   * Never synchronously while congested or closed: a producer that calls `whenDrained`
   * again from its callback must not recurse (issue 8: stack overflow on a closed,
   * congested connection took the whole daemon down).
   */
  whenDrained(callback: () => void): void {
    if (this.#closed) setImmediate(callback);
    else if (!this.congested) callback();
    else this.#drainWaiters.push(callback);
  }

  /**
   * False once our side is ended (a goodbye said or answered) or the socket is gone. Frames
   * produced after that (a killed command's exit, late output) have no one to go to: writing
   * them would fail with "write after end" and report a clean close as a connection error.
   */
  get #writable(): boolean {
    return !this.#closed && !this.socket.destroyed && !this.socket.writableEnded;
  }

  send(type: FrameType, channel: number, payload?: Uint8Array): void {
    if (!this.#writable) return;
    this.socket.write(encodeFrame(type, channel, payload));
  }

  /**
   * Send a data frame without copying the payload in JS: header and payload go out as one
   * corked write (TLS combines them into one record stream natively).
   */
  sendData(type: FrameType, channel: number, payload: Buffer): void {
    if (!this.#writable) return;
    const socket = this.socket;
    socket.cork();
    socket.write(encodeFrameHeader(type, channel, payload.length));
    socket.write(payload);
    socket.uncork();
  }

  /**
   * Send a whole frame built in place (header and payload in one buffer: channel writeFrame)
   * as ONE write: TLS encrypts it straight from the buffer, with no concatenating copy and
   * no extra allocation. `done` runs once the socket no longer holds `frame` (its write
   * completed or failed, or nothing was written), so the buffer can be reused.
   */
  sendFrame(frame: Buffer, done: () => void): void {
    if (!this.#writable) {
      done();
      return;
    }
    this.socket.write(frame, () => done());
  }

  /** Tell the peer why we are closing, then end the connection. */
  goodbye(code: string, message: string): void {
    if (!this.#writable) return;
    this.send(FrameType.GOODBYE, 0, encodeCodeMessage(code, message));
    this.socket.end();
    // A peer that never reads must not keep the socket (and our memory) forever.
    setTimeout(() => this.socket.destroy(), GOODBYE_LINGER_MS).unref();
  }

  /** Close after a protocol violation: the peer hears the code, we report the error. */
  fail(error: ShellwireError): void {
    if (this.#closed) return;
    this.goodbye(error.code, error.message);
    this.#finish(error);
  }

  destroy(error?: ShellwireError): void {
    this.socket.destroy();
    this.#finish(error ?? null);
  }

  startKeepalive(intervalMs: number): void {
    this.#keepaliveMs = intervalMs;
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    if (intervalMs <= 0) return;
    this.#keepaliveTimer = setInterval(() => this.#keepaliveOnTick(), intervalMs);
    this.#keepaliveTimer.unref();
  }

  #keepaliveOnTick(): void {
    const silentFor = Date.now() - this.#lastHeard;
    if (silentFor >= this.#keepaliveMs * KEEPALIVE_MISSES) {
      this.fail(
        new ConnectionError(
          ErrorCode.KEEPALIVE_TIMEOUT,
          `No answer from ${this.peer} for ${Math.round(silentFor / 1000)} s; the peer or the network is gone.`,
        ),
      );
      return;
    }
    if (silentFor >= this.#keepaliveMs) this.send(FrameType.PING, 0, pingPayload());
  }

  #socketOnData(chunk: Buffer): void {
    this.#lastHeard = Date.now();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) this.fail(err);
      else this.#internalError(err);
    }
  }

  /**
   * Our own fault while handling the peer's bytes: the peer did nothing wrong and must not be
   * told it did (SW_ERR_BAD_MESSAGE), nor read our internals. It hears a generic
   * SW_ERR_INTERNAL; the details (message, stack as `cause`) go to our `onClose`, which logs them.
   */
  #internalError(err: unknown): void {
    if (this.#closed) return;
    this.goodbye(ErrorCode.INTERNAL, 'Internal error while handling a frame (a bug in shellwire); the details are in the log of the side that closed the connection.');
    this.#finish(new ShellwireError(ErrorCode.INTERNAL, `Internal error handling a frame: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
  }

  #decoderOnFrame(frame: Frame): void {
    if (this.#closed) return;
    switch (this.authenticated ? frame.type : -1) {
      case FrameType.PING:
        this.send(FrameType.PONG, 0, frame.payload);
        return;
      case FrameType.PONG:
        return;
      case FrameType.GOODBYE:
        try {
          this.#goodbyeReceived = decodeCodeMessage(FrameType.GOODBYE, frame.payload);
        } catch {
          this.#goodbyeReceived = { code: ErrorCode.BAD_MESSAGE, message: 'peer said goodbye with a malformed message' };
        }
        this.socket.end();
        // A peer that said goodbye and then stopped (frozen, gone) must not hold us.
        setTimeout(() => this.socket.destroy(), GOODBYE_LINGER_MS).unref();
        return;
      default:
        // Handlers throw ProtocolError for sequence violations; anything else is our bug,
        // but it must still close only this connection, never the process.
        try {
          this.#handlers.onFrame(frame);
        } catch (err) {
          if (err instanceof ProtocolError) this.fail(err);
          else this.#internalError(err);
        }
    }
  }

  #socketOnDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #socketOnError(err: NodeJS.ErrnoException): void {
    // A broken NATS tunnel under the TLS keeps its code (SW_ERR_TUNNEL_BROKEN, docs/nats.md): it is why.
    const code = err instanceof ShellwireError && err.code === ErrorCode.TUNNEL_BROKEN ? ErrorCode.TUNNEL_BROKEN : ErrorCode.CONNECTION_CLOSED;
    this.#finish(new ConnectionError(code, `Connection to ${this.peer} failed: ${err.message}`, { cause: err }));
  }

  #socketOnEnd(): void {
    // The peer half-closed. We have nothing to say to a peer that will not listen; a
    // frame cut off at the end is a truncation error.
    if (!this.decoder.idle && !this.#closed) {
      this.#finish(new ProtocolError(ErrorCode.FRAME_TRUNCATED, `${this.peer} closed the connection in the middle of a frame.`));
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), GOODBYE_LINGER_MS).unref();
  }

  #finish(error: ShellwireError | null): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    if (!this.socket.destroyed && error) (this.socket as { destroySoon?: () => void }).destroySoon?.();
    // Channels hear of the loss first (they stop their producers), then drain waiters run,
    // off this stack, and find the connection closed.
    this.#handlers.onClose(error, this.#goodbyeReceived);
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) setImmediate(waiter);
  }
}

function pingPayload(): Buffer {
  const payload = Buffer.allocUnsafe(8);
  payload.writeDoubleBE(Date.now(), 0);
  return payload;
}
