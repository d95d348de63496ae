/**
 * Two in-memory `Duplex` ends joined back to back, with backpressure: a write completes only
 * when the other end's reader has room (its buffer below the high-water mark), so a reader that
 * stops reading stops the writer, as a socket does. `destroy()` on one end closes both. A
 * `Transport` (transport.ts) for a connection within one process: the web console's browser
 * sessions log in to their gateway's own `Server` over one (src/web/in-process.ts).
 */
import { Duplex } from 'node:stream';

/** One end of a `duplexPair()`. */
export class DuplexEnd extends Duplex {
  peer!: DuplexEnd;
  /** The other end's write, waiting for this end's reader to want more. */
  waiting: (() => void) | null = null;
  /** Bytes written into this end by the other (counted for tests). */
  received = 0;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (peer.destroyed) return callback();
    peer.received += chunk.length;
    if (peer.push(chunk)) callback();
    else peer.waiting = () => callback();
  }

  override _read(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const waiting = this.peer.waiting;
    this.peer.waiting = null;
    waiting?.();
    if (!this.peer.destroyed) this.peer.destroy();
    callback(error);
  }
}

export function duplexPair(): [DuplexEnd, DuplexEnd] {
  const a = new DuplexEnd();
  const b = new DuplexEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
