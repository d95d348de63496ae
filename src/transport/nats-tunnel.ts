/**
 * A byte stream over NATS (docs/nats.md, "The tunnel"): a `Duplex` (a `Transport`, transport.ts)
 * whose writes go out as numbered DATA messages on one subject and whose reads come from
 * another, so TLS 1.3 and the shellwire frames run over it as over TCP; the broker sees only
 * ciphertext.
 *
 * Why numbered, and why a window: NATS core delivers at most once, in order per publisher, but
 * drops messages on a server restart, a slow consumer, a route hiccup. TLS would notice a gap
 * only as a MAC failure; the sequence numbers say what happened ("message 17 expected, 19
 * arrived") and fail the connection at once. The credit window (TUNNEL_WINDOW unacknowledged
 * bytes per direction, ACKed as the reader consumes) means a slow reader stops the writer, so
 * neither side nor the broker ever holds more than a window per tunnel (a NATS slow consumer
 * would drop messages).
 */
import { Duplex } from 'node:stream';
import type { NatsConnection, Subscription, Msg } from '@nats-io/transport-node';
import { ConnectionError, ErrorCode, ShellwireError } from '../errors.js';
import { decodeTunnelMessage, encodeTunnelMessage, TunnelMessageType, TUNNEL_MAX_DATA, type TunnelMessage } from '../protocol/tunnel-codec.js';
import { peerText } from '../terminal-text.js';

/** Unacknowledged DATA bytes in flight per direction. */
export const TUNNEL_WINDOW = 256 * 1024;
/** An ACK goes out at the latest this long after the reader consumed something. */
export const TUNNEL_ACK_DELAY_MS = 20;
/** Bytes of a tunnel message before its DATA (type + seq: protocol/tunnel-codec.ts). */
const TUNNEL_HEADER_BYTES = 5;
/** The smallest DATA message we cut to, whatever a server announces (a broken INFO must not make 0-byte messages). */
const MIN_DATA_BYTES = 512;

/**
 * The largest DATA body that fits the connected server's `max_payload` (its INFO; 1 MiB by
 * default, often lowered in hardened deployments), at most TUNNEL_MAX_DATA. Read at each
 * publish: after a reconnect the server, and so its limit, may differ.
 */
export function maxDataBytes(nc: NatsConnection): number {
  const limit = nc.info?.max_payload;
  if (typeof limit !== 'number' || !Number.isFinite(limit) || limit <= 0) return TUNNEL_MAX_DATA;
  return Math.max(MIN_DATA_BYTES, Math.min(TUNNEL_MAX_DATA, limit - TUNNEL_HEADER_BYTES));
}

export interface NatsTunnelOptions {
  /** The NATS connection (shared by many tunnels). */
  nc: NatsConnection;
  /** Where this end publishes (`P.t.ID.a` from the client, `P.t.ID.c` from the agent). */
  sendSubject: string;
  /** Where the peer publishes. */
  receiveSubject: string;
  /** How errors name the other end: `NATS tunnel to NAME`. */
  label: string;
  /** Credit window (default TUNNEL_WINDOW); both ends must agree (the open request carries it). */
  window?: number;
}

/** One end of a NATS tunnel. 'close' comes once; a broken tunnel errors with `SW_ERR_TUNNEL_BROKEN`. */
export class NatsTunnel extends Duplex {
  readonly label: string;
  readonly window: number;
  #nc: NatsConnection;
  #send: string;
  #sub: Subscription | null;
  /** Sender: next DATA seq, bytes published and not yet ACKed, the write waiting for credit. */
  #sendSeq = 0;
  #inFlight = 0;
  #pending: { chunk: Buffer; callback: (error?: Error | null) => void } | null = null;
  /** Most bytes ever unacknowledged at once (tests check it never passes the window). */
  maxInFlight = 0;
  /** Receiver: next DATA seq expected, bytes pushed, bytes ACKed back. */
  #recvSeq = 0;
  #pushed = 0;
  #acked = 0;
  #ackTimer: NodeJS.Timeout | null = null;
  /** ACKs are numbered too (from 0 per direction): a lost ACK would otherwise leak credit and stall the writer unnoticed. */
  #ackSendSeq = 0;
  #ackRecvSeq = 0;
  #ended = false;
  #finSent = false;

  constructor(options: NatsTunnelOptions) {
    const window = options.window ?? TUNNEL_WINDOW;
    // The readable buffer may hold up to a window (the sender never sends more), so push() never
    // refuses within it; the writable buffer is small: write() returns false soon, and the
    // window, not Node's queue, holds what is in flight.
    super({ readableHighWaterMark: window, writableHighWaterMark: 16 * 1024, allowHalfOpen: true });
    this.label = options.label;
    this.window = window;
    this.#nc = options.nc;
    this.#send = options.sendSubject;
    this.#sub = options.nc.subscribe(options.receiveSubject, { callback: (err, msg) => this.#subOnMessage(err, msg) });
    watchConnection(options.nc, this);
    liveTunnels.add(this);
  }

  /**
   * The process is exiting (a reader gone, `| head`): tell the peer the tunnel is over (a clean
   * RST) without destroying it here, so nothing local turns it into an error on the way out.
   */
  resetForExit(): void {
    if (this.destroyed || this.#rstSent || this.#nc.isClosed()) return;
    this.#rstSent = true;
    try {
      this.#nc.publish(this.#send, encodeTunnelMessage({ type: TunnelMessageType.RST, seq: this.#sendSeq, reason: '' }));
    } catch {
      // closed meanwhile: the agent's keepalive will tell it
    }
  }

  /** The NATS connection it runs on (to flush before the process exits). */
  get connection(): NatsConnection {
    return this.#nc;
  }

  /** Bytes published and not yet acknowledged by the peer (≤ window). */
  get inFlight(): number {
    return this.#inFlight;
  }

  #publish(message: TunnelMessage): void {
    try {
      this.#nc.publish(this.#send, encodeTunnelMessage(message));
    } catch (err) {
      this.destroy(this.#broken(`cannot publish (${(err as Error).message})`, err));
    }
  }

  #broken(what: string, cause?: unknown, advice = 'reconnect'): ConnectionError {
    const error = new ConnectionError(ErrorCode.TUNNEL_BROKEN, `${this.label}: ${what}; ${advice}.`, cause === undefined ? {} : { cause });
    // What the RST tells the peer: the reason alone, not our label and advice (it adds its own).
    resetReasons.set(error, what);
    return error;
  }

  #subOnMessage(err: Error | null, msg: Msg): void {
    if (this.destroyed) return;
    if (err) return void this.destroy(this.#broken(`subscription failed (${err.message})`, err));
    let message: TunnelMessage;
    try {
      message = decodeTunnelMessage(msg.data);
    } catch (e) {
      return this.#fail((e as ShellwireError).message, e);
    }
    switch (message.type) {
      case TunnelMessageType.DATA:
        if (this.#ended) return this.#fail(`DATA message ${message.seq} arrived after the end of the stream`);
        if (message.seq !== this.#recvSeq) return this.#fail(this.#gap(message.seq));
        this.#recvSeq++;
        if (this.#pushed + message.data.length - this.#acked > this.window) {
          return this.#fail(`the other end sent more than the ${this.window}-byte window`);
        }
        this.#pushed += message.data.length;
        // A copy: the payload's buffer belongs to the NATS client's parser.
        this.push(Buffer.from(message.data));
        this.#ackIfDue();
        return;
      case TunnelMessageType.ACK:
        if (message.seq !== this.#ackRecvSeq) {
          return this.#fail(`ACK ${this.#ackRecvSeq} expected, ${message.seq} arrived: a message was lost or reordered (a NATS server restart?)`);
        }
        this.#ackRecvSeq++;
        if (message.bytes > this.#inFlight) return this.#fail(`ACK of ${message.bytes} bytes with ${this.#inFlight} in flight`);
        this.#inFlight -= message.bytes;
        this.#flushPending();
        return;
      case TunnelMessageType.FIN:
        if (this.#ended) return;
        if (message.seq !== this.#recvSeq) return this.#fail(this.#gap(message.seq, true));
        this.#ended = true;
        this.push(null);
        return;
      case TunnelMessageType.RST: {
        // A clean close from the other end says nothing (''), a failure says why. The reason is
        // text from the wire (anyone allowed to publish on this subject can write it): shown
        // quoted, escaped and capped, never as if it were our own message.
        if (message.reason === '') return void this.destroy();
        const error = this.#broken(`reset by the other end (it said: ${peerText(message.reason)})`);
        // Told back to the peer as such: a reset it never sent (someone else published it) shows as one.
        resetReasons.set(error, `reset by a message on your side of the tunnel (it said: ${peerText(message.reason, 120)})`);
        return void this.destroy(error);
      }
    }
  }

  #gap(arrived: number, end = false): string {
    const what = end ? `the end of the stream (after ${arrived})` : `${arrived}`;
    // An older number than expected is a message seen twice: two ends answer on this tunnel's
    // subject, i.e. two agents run under one --name (a copy of a host, or an impostor).
    const why = !end && arrived < this.#recvSeq
      ? 'a message came twice: two agents may be answering under this name (the same --name on two hosts, or an impostor; compare the fingerprints in shellwire hosts --via), or messages were reordered'
      : 'a message was lost or reordered (a NATS server restart or a slow consumer?)';
    return `message ${this.#recvSeq} expected, ${what} arrived: ${why}`;
  }

  /** Tell the peer why (`what`, without our label or advice), then drop the tunnel. */
  #fail(what: string, cause?: unknown): void {
    if (this.destroyed) return;
    this.#publish({ type: TunnelMessageType.RST, seq: this.#sendSeq, reason: what });
    this.#rstSent = true;
    this.destroy(this.#broken(what, cause));
  }

  #rstSent = false;

  /** Credit back what the reader consumed: at once past half the window, else within TUNNEL_ACK_DELAY_MS. */
  #ackIfDue(): void {
    const consumed = this.#pushed - this.readableLength;
    const unacked = consumed - this.#acked;
    if (unacked <= 0) return;
    if (unacked >= this.window / 2) return this.#sendAck();
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = null;
      if (!this.destroyed) this.#sendAck();
    }, TUNNEL_ACK_DELAY_MS);
  }

  #sendAck(): void {
    const consumed = this.#pushed - this.readableLength;
    const bytes = consumed - this.#acked;
    if (bytes <= 0) return;
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.#acked = consumed;
    this.#publish({ type: TunnelMessageType.ACK, seq: this.#ackSendSeq++, bytes });
  }

  override _read(): void {
    // Node calls _read before it takes the chunk it is reading out of the buffer: count it a tick later.
    process.nextTick(() => {
      if (!this.destroyed) this.#ackIfDue();
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#pending = { chunk, callback };
    this.#flushPending();
  }

  /** Publish what the window allows of the waiting write; its callback runs once all of it went. */
  #flushPending(): void {
    const pending = this.#pending;
    if (!pending || this.destroyed) return;
    while (pending.chunk.length > 0) {
      const room = Math.min(this.window - this.#inFlight, maxDataBytes(this.#nc));
      if (room <= 0) return;
      const piece = pending.chunk.subarray(0, room);
      pending.chunk = pending.chunk.subarray(piece.length);
      this.#inFlight += piece.length;
      if (this.#inFlight > this.maxInFlight) this.maxInFlight = this.#inFlight;
      this.#publish({ type: TunnelMessageType.DATA, seq: this.#sendSeq++, data: piece });
      if (this.destroyed) return;
    }
    this.#pending = null;
    pending.callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finSent = true;
    this.#publish({ type: TunnelMessageType.FIN, seq: this.#sendSeq });
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    // Closing before both ends said FIN: tell the peer, so it does not wait for a keepalive.
    if (!this.#rstSent && !(this.#finSent && this.#ended) && !this.#nc.isClosed()) {
      this.#rstSent = true;
      const reason = error ? (resetReasons.get(error) ?? `closed: ${error.message}`) : '';
      const rst = { type: TunnelMessageType.RST, seq: this.#sendSeq, reason: capBytes(reason, 512) } as const;
      this.#publish(rst);
      // While the connection is down nats.js drops what is published (its buffer is reset at the
      // next dial): the peer would wait for its keepalive. Send the RST again once reconnected.
      owePublishAfterReconnect(this.#nc, this.#send, encodeTunnelMessage(rst));
    }
    const pending = this.#pending;
    this.#pending = null;
    pending?.callback(error ?? new ConnectionError(ErrorCode.CONNECTION_CLOSED, `${this.label}: closed`));
    this.#sub?.unsubscribe();
    this.#sub = null;
    unwatchConnection(this.#nc, this);
    liveTunnels.delete(this);
    callback(error);
  }

  /** Called by the connection watcher: the NATS connection dropped or reconnected (messages may be lost). */
  connectionLost(what: string): void {
    if (!this.destroyed) this.destroy(this.#broken(`the NATS connection ${what}: messages in flight may be lost`));
  }
}

/** `text` cut (at a character boundary, with "…") to at most `max` UTF-8 bytes: an RST reason stays small. */
function capBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  const chars = [...text];
  let bytes = 3; // the "…"
  let end = 0;
  while (end < chars.length && bytes + Buffer.byteLength(chars[end]!) <= max) bytes += Buffer.byteLength(chars[end++]!);
  return `${chars.slice(0, end).join('')}…`;
}

/** Every open tunnel of this process (for `resetAllTunnels`). */
const liveTunnels = new Set<NatsTunnel>();

/**
 * Reset every tunnel of this process and wait (at most `maxMs`) until the RSTs left: for a CLI
 * about to exit (`| head` closed its stdout). process.exit() does not wait for nats.js's
 * outgoing buffer, and without the RST the agent learns only from its keepalive (~45 s), so
 * the remote command would run on; over TCP the kernel's close tells the daemon at once.
 */
export async function resetAllTunnels(maxMs = 1_000): Promise<void> {
  const connections = new Set<NatsConnection>();
  for (const tunnel of liveTunnels) {
    connections.add(tunnel.connection);
    tunnel.resetForExit();
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all([...connections].map((nc) => (nc.isClosed() ? undefined : nc.flush().catch(() => {})))),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxMs);
    }),
  ]);
  clearTimeout(timer);
}

/** The reason an RST carries for an error of ours (`#broken`): without label or advice. */
const resetReasons = new WeakMap<Error, string>();

// One status watcher per NATS connection for all its tunnels: a disconnect, a reconnect or a
// close may lose messages in flight, so every tunnel on it fails fast with a clear error.
// While the connection is down, the RSTs its tunnels publish are lost (nats.js resets its
// outbound buffer at each dial), so they are kept and sent again after the reconnect: the
// other end (on a surviving server) learns at once instead of after its keepalive.
interface Watch {
  tunnels: Set<NatsTunnel>;
  down: boolean;
  owed: Array<{ subject: string; payload: Uint8Array }>;
}
const watched = new WeakMap<NatsConnection, Watch>();
/** RSTs kept per connection while it is down (each a few dozen bytes). */
const MAX_OWED_RESETS = 10_000;

function watchConnection(nc: NatsConnection, tunnel: NatsTunnel): void {
  let watch = watched.get(nc);
  if (!watch) {
    const w: Watch = { tunnels: new Set(), down: false, owed: [] };
    watch = w;
    watched.set(nc, w);
    const failAll = (what: string): void => {
      for (const t of [...w.tunnels]) t.connectionLost(what);
    };
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          w.down = true;
          failAll(`to ${status.server} dropped`);
        } else if (status.type === 'reconnect') {
          w.down = false;
          failAll(`reconnected to ${status.server}`);
          const owed = w.owed;
          w.owed = [];
          for (const { subject, payload } of owed) {
            try {
              nc.publish(subject, payload);
            } catch {
              break; // closed again: nothing more to tell
            }
          }
        } else if (status.type === 'staleConnection') failAll('went stale');
      }
    })().catch(() => {});
    void nc.closed().then(() => failAll('closed'));
  }
  watch.tunnels.add(tunnel);
  if (nc.isClosed()) queueMicrotask(() => tunnel.connectionLost('is closed'));
}

function owePublishAfterReconnect(nc: NatsConnection, subject: string, payload: Uint8Array): void {
  const watch = watched.get(nc);
  if (watch?.down && watch.owed.length < MAX_OWED_RESETS) watch.owed.push({ subject, payload });
}

function unwatchConnection(nc: NatsConnection, tunnel: NatsTunnel): void {
  watched.get(nc)?.tunnels.delete(tunnel);
}
