/**
 * Test helpers that speak the wire directly: a TLS client that writes whatever bytes a test
 * asks for and decodes what the daemon answers, a plain-TCP pest, and a pino logger whose
 * lines a test can read back.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import pino, { type Logger } from 'pino';
import { FrameDecoder, FrameType, encodeFrame, frameTypeName, type Frame } from '../../src/protocol/frame.js';
import {
  decodeCodeMessage, decodeWelcome, encodeJson, FEATURES, PROTOCOL_MAGIC, SUPPORTED_VERSIONS, type Goodbye, type Welcome,
} from '../../src/protocol/messages.js';
import { ALPN_PROTOCOL } from '../../src/transport/tls.js';

const DEFAULT_WAIT_MS = 3_000;

/** A TLS connection to the daemon that sends raw bytes and collects every frame it gets back. */
export class RawClient {
  readonly socket: TLSSocket;
  /** Frames received and not yet taken by `nextFrame`. */
  readonly frames: Frame[] = [];
  /** Set when the daemon sent bytes our decoder rejects (it should never). */
  decodeError: Error | null = null;
  socketError: Error | null = null;
  closed = false;
  /** Local `ip:port`, as the daemon's logs name this client (kept: the socket forgets it once closed). */
  readonly localAddress: string;
  readonly whenClosed: Promise<void>;
  #wakers = new Set<() => void>();

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    this.localAddress = `${socket.localAddress}:${socket.localPort}`;
    const decoder = new FrameDecoder((frame) => {
      // The decoder hands out views of the chunk; keep a copy so later reads cannot alias.
      this.frames.push({ type: frame.type, channel: frame.channel, payload: Buffer.from(frame.payload) });
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        this.decodeError = err as Error;
      }
      this.#wake();
    });
    socket.on('error', (err) => {
      this.socketError = err;
    });
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.#wake();
        resolve();
      }),
    );
  }

  /** TLS-connect to `127.0.0.1:port` (self-signed cert accepted) and wait for the handshake. */
  static open(port: number, tls: Partial<ConnectionOptions> = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        ALPNProtocols: [ALPN_PROTOCOL],
        ...tls,
      });
      const onError = (err: Error) => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.removeListener('error', onError);
        resolve(new RawClient(socket));
      });
    });
  }


  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  send(type: FrameType, channel: number, payload?: Uint8Array): void {
    this.socket.write(encodeFrame(type, channel, payload));
  }

  sendJson(type: FrameType, channel: number, value: unknown): void {
    this.send(type, channel, encodeJson(value));
  }

  /** A HELLO as the real client sends it, with `overrides` merged in. */
  static helloFrame(token: string, overrides: Record<string, unknown> = {}): Buffer {
    return encodeFrame(
      FrameType.HELLO,
      0,
      encodeJson({
        magic: PROTOCOL_MAGIC,
        versions: [...SUPPORTED_VERSIONS],
        features: [...FEATURES],
        client: 'raw-test-client/0',
        auth: { method: 'token', token },
        ...overrides,
      }),
    );
  }

  /** HELLO with the right token; resolves with the daemon's WELCOME. */
  async authenticate(token: string): Promise<Welcome> {
    this.write(RawClient.helloFrame(token));
    const frame = await this.nextFrame((f) => f.type === FrameType.WELCOME || f.type === FrameType.GOODBYE);
    if (frame.type === FrameType.GOODBYE) {
      const goodbye = decodeCodeMessage(FrameType.GOODBYE, frame.payload);
      throw new Error(`expected WELCOME, got GOODBYE ${goodbye.code}: ${goodbye.message}`);
    }
    return decodeWelcome(frame.payload);
  }

  /** Open an exec channel and wait for its OPEN_OK (or OPEN_FAIL); returns the decoded JSON. */
  async openExec(channel: number, request: Record<string, unknown>): Promise<{ type: FrameType; body: Record<string, unknown> }> {
    this.sendJson(FrameType.OPEN, channel, { kind: 'exec', window: 64 * 1024, maxPacket: 64 * 1024, ...request });
    const frame = await this.nextFrame(
      (f) => f.channel === channel && (f.type === FrameType.OPEN_OK || f.type === FrameType.OPEN_FAIL),
    );
    return { type: frame.type, body: JSON.parse(frame.payload.toString('utf8')) as Record<string, unknown> };
  }

  /**
   * Take the first received frame that matches (waiting for it if needed). Rejects on
   * timeout, or when the connection closed without such a frame.
   */
  nextFrame(match: (frame: Frame) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const index = this.frames.findIndex(match);
        if (index >= 0) {
          const [frame] = this.frames.splice(index, 1);
          done(null, frame);
          return true;
        }
        if (this.closed) {
          const seen = this.frames.map((f) => frameTypeName(f.type)).join(', ') || 'nothing';
          done(new Error(`connection closed without the expected frame (unclaimed: ${seen})`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => done(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      const done = (error: Error | null, frame?: Frame) => {
        clearTimeout(timer);
        this.#wakers.delete(waker);
        if (error) reject(error);
        else resolve(frame!);
      };
      const waker = () => {
        check();
      };
      if (!check()) this.#wakers.add(waker);
    });
  }

  /** Wait for the daemon's GOODBYE and return its `{ code, message }`. */
  async goodbye(timeoutMs = DEFAULT_WAIT_MS): Promise<Goodbye> {
    const frame = await this.nextFrame((f) => f.type === FrameType.GOODBYE, timeoutMs);
    assertChannelZero(frame);
    return decodeCodeMessage(FrameType.GOODBYE, frame.payload);
  }

  /** Resolves when the socket is closed; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return withTimeout(this.whenClosed, timeoutMs, 'the daemon did not close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }

  #wake(): void {
    for (const waker of [...this.#wakers]) waker();
  }
}

function assertChannelZero(frame: Frame): void {
  if (frame.channel !== 0) throw new Error(`GOODBYE on channel ${frame.channel}, expected channel 0`);
}

/** Plain TCP (no TLS): write `bytes`, then collect what comes back until the daemon closes. */
export function plainTcpExchange(port: number, bytes: Uint8Array | string, timeoutMs = DEFAULT_WAIT_MS): Promise<{ received: Buffer; error: Error | null }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    let error: Error | null = null;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`plain TCP connection not closed by the daemon within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(received), error });
    });
    socket.on('connect', () => socket.write(bytes));
  });
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

export type LogLine = Record<string, unknown> & { msg?: string; level: number; code?: string; client?: string };

/** A pino logger at debug level whose JSON lines land in `lines`, for asserting what the daemon logged. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug', base: null }, {
    write(line: string) {
      lines.push(JSON.parse(line) as LogLine);
    },
  });
  return { logger, lines };
}
