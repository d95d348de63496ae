/**
 * The channels of one connection, on either end (docs/protocol.md §6.1, §6.3): id
 * allocation, dispatch of frames to their channel, the table-level protocol errors, and
 * the one "connection lost" that every channel hears exactly once.
 *
 * - The opener (client) chooses ids: 1…2^32-1, counting up from 1, skipping ids in use,
 *   wrapping (§6.1). An id is in use until the channel ended: both CLOSEs exchanged, or
 *   OPEN_FAIL (§6.3 rule 1).
 * - A frame for an id not in the table → SW_ERR_UNKNOWN_CHANNEL, fatal (§6.3 rule 4); that
 *   includes channel 0 after the handshake (§3.4). OPEN for an id in use →
 *   SW_ERR_CHANNEL_IN_USE, fatal (§6.1).
 * - Max channels: the opener refuses locally (RequestError SW_ERR_TOO_MANY_CHANNELS, as
 *   client/connection.ts); the acceptor answers OPEN_FAIL SW_ERR_TOO_MANY_CHANNELS (§4.6).
 * - A channel whose frame broke the protocol ends with `protocol-error` before the error
 *   goes up (the connection then fails; the others end with `connection-lost`).
 */
import { FrameType, frameTypeName, type Frame } from '../protocol/frame.js';
import { encodeCodeMessage, encodeOpen } from '../protocol/messages.js';
import { ConnectionError, ErrorCode, ProtocolError, RequestError, type ShellwireError } from '../errors.js';
import { Channel, ChannelRole, type ChannelHooks, type FrameSink, type OpenMessage } from './channel-state.js';

const MAX_ID = 0xffffffff;

/** What the acceptor's owner answers to an OPEN. */
export type AcceptResult = Channel | { refuse: { code: string; message: string; extra?: Record<string, unknown> } };

/** An OPEN as the acceptor's owner sees it. */
export interface IncomingOpen {
  id: number;
  payload: Buffer;
  /** Build the channel for this OPEN (then answer with `openOk`/`openFail`, now or later). */
  accept(open: { window: number; maxPacket: number }, hooks: ChannelHooks): Channel;
}

export interface ChannelTableOptions {
  role: ChannelRole;
  sink: FrameSink;
  /** Channels open at once: WELCOME.maxChannels (client) or limits.maxChannels (daemon). */
  maxChannels: number;
  /** The peer, for messages (`host:port`). */
  peer?: string;
  /**
   * Acceptor: decide on an OPEN (decode it, check policy, build the kind). Return the
   * channel from `open.accept()`, or a refusal for OPEN_FAIL. A ProtocolError thrown here
   * is fatal to the connection.
   */
  accept?: (open: IncomingOpen) => AcceptResult;
  /** Opener: the first id tried (default 1); tests use it to reach the wrap at 2^32-1. */
  firstId?: number;
  /**
   * Acceptor: false leaves the max-channels check to accept(), which refuses with
   * `tooManyChannels()` when `atLimit` at the point of its own choosing (the daemon refuses
   * a malformed OPEN, a draining daemon and an unwritable audit log first). Default true:
   * the table refuses before accept() is called.
   */
  checkMaxChannels?: boolean;
}

/** The acceptor's OPEN_FAIL at the channel limit (§4.6). */
export function tooManyChannels(maxChannels: number): { code: string; message: string } {
  return { code: ErrorCode.TOO_MANY_CHANNELS, message: `This connection already has ${maxChannels} open channels (the daemon's --max-channels); close some first.` };
}

export class ChannelTable {
  readonly role: ChannelRole;
  #sink: FrameSink;
  #channels = new Map<number, Channel>();
  #maxChannels: number;
  #peer: string;
  #accept: ChannelTableOptions['accept'];
  #nextId = 1;
  #checkMaxChannels: boolean;
  #lost: ShellwireError | Error | null | undefined = undefined;

  constructor(options: ChannelTableOptions) {
    this.role = options.role;
    this.#sink = options.sink;
    this.#maxChannels = options.maxChannels;
    this.#peer = options.peer ?? 'the peer';
    this.#accept = options.accept;
    this.#nextId = options.firstId ?? 1;
    this.#checkMaxChannels = options.checkMaxChannels ?? true;
    if (this.role === ChannelRole.ACCEPTOR && !this.#accept) throw new TypeError('An acceptor table needs an accept() callback.');
  }

  /** Channels in the table (open, opening, or waiting for the peer's CLOSE). */
  get size(): number {
    return this.#channels.size;
  }

  /** The table holds as many channels as the limit allows. */
  get atLimit(): boolean {
    return this.#channels.size >= this.#maxChannels;
  }

  get lost(): boolean {
    return this.#lost !== undefined;
  }

  get(id: number): Channel | undefined {
    return this.#channels.get(id);
  }

  channels(): IterableIterator<Channel> {
    return this.#channels.values();
  }

  /**
   * Opener: open a channel on a fresh id and send its OPEN. Throws the connection's error
   * after it was lost, and SW_ERR_TOO_MANY_CHANNELS at the peer's limit.
   */
  open(message: OpenMessage, hooks: ChannelHooks): Channel {
    if (this.role !== ChannelRole.OPENER) throw new TypeError('Only the opener of a connection opens channels.');
    if (this.#lost !== undefined) {
      throw this.#lost ?? new ConnectionError(ErrorCode.CONNECTION_CLOSED, `Connection to ${this.#peer} is closed.`);
    }
    if (this.#channels.size >= this.#maxChannels) {
      throw new RequestError(ErrorCode.TOO_MANY_CHANNELS, `${this.#peer} allows ${this.#maxChannels} channels per connection; wait for some commands to finish.`);
    }
    const id = this.#allocateId();
    const channel = new Channel({ id, role: ChannelRole.OPENER, sink: this.#sink, hooks, open: message, onEnded: (c) => this.#forget(c) });
    this.#channels.set(id, channel);
    this.#sink.send(FrameType.OPEN, id, encodeOpen(message));
    return channel;
  }

  /** A decoded frame for a channel (channel 0's PING/PONG/GOODBYE stay with the transport). */
  dispatch(frame: Frame): void {
    if (this.#lost !== undefined) return;
    if (frame.type === FrameType.OPEN && this.role === ChannelRole.ACCEPTOR) return this.#openOnFrame(frame);
    const channel = this.#channels.get(frame.channel);
    if (!channel) {
      throw new ProtocolError(ErrorCode.UNKNOWN_CHANNEL, `${this.#peer} sent ${frameTypeName(frame.type)} for channel ${frame.channel}, which is not open.`, { channel: frame.channel });
    }
    try {
      channel.receive(frame);
    } catch (err) {
      channel.protocolError(err as Error);
      throw err;
    }
  }

  /** The connection ended: every channel still in the table is told, once. */
  connectionLost(error: ShellwireError | Error | null = null): void {
    if (this.#lost !== undefined) return;
    this.#lost = error;
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    let first: unknown;
    for (const channel of channels) {
      try {
        channel.connectionLost(error);
      } catch (err) {
        // One kind's failing hook must not keep the others from hearing it.
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  #openOnFrame(frame: Frame): void {
    const id = frame.channel;
    if (this.#channels.has(id)) {
      throw new ProtocolError(ErrorCode.CHANNEL_IN_USE, `OPEN for channel ${id}, which is already open.`, { channel: id });
    }
    const refuse = (code: string, message: string, extra: Record<string, unknown> = {}) =>
      this.#sink.send(FrameType.OPEN_FAIL, id, encodeCodeMessage(code, message, extra));
    if (this.#checkMaxChannels && this.atLimit) {
      const full = tooManyChannels(this.#maxChannels);
      return refuse(full.code, full.message);
    }
    const slot: { built: Channel | null } = { built: null };
    const incoming: IncomingOpen = {
      id,
      payload: frame.payload,
      accept: (open, hooks) => {
        if (slot.built) throw new TypeError(`accept() called twice for channel ${id}.`);
        slot.built = new Channel({ id, role: ChannelRole.ACCEPTOR, sink: this.#sink, hooks, open, onEnded: (c) => this.#forget(c) });
        return slot.built;
      },
    };
    let result: AcceptResult;
    try {
      result = this.#accept!(incoming);
    } catch (err) {
      // Whatever was built heard nothing yet: it ends with the error (it may have started work).
      slot.built?.protocolError(err as Error);
      throw err;
    }
    const built = slot.built as Channel | null;
    if (!(result instanceof Channel)) {
      if (!built) return refuse(result.refuse.code, result.refuse.message, result.refuse.extra);
      built.openFail(result.refuse.code, result.refuse.message, result.refuse.extra);
    } else if (result !== built) {
      throw new TypeError(`accept() must return the channel built by open.accept() for channel ${id}.`);
    }
    // Answered and ended inside accept() (OPEN_FAIL at once): nothing to keep.
    if (built && !built.ended) this.#channels.set(id, built);
  }

  #forget(channel: Channel): void {
    if (this.#channels.get(channel.id) === channel) this.#channels.delete(channel.id);
  }

  #allocateId(): number {
    let id = this.#nextId;
    while (this.#channels.has(id)) id = id >= MAX_ID ? 1 : id + 1;
    this.#nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }
}
