/**
 * SHA-256 of a transfer, computed as the bytes stream past. `InlineHash` hashes on the
 * calling thread; `WorkerHash` hands the bytes to one shared worker thread so the sender's
 * main thread (which also does TLS) is not the bottleneck: the read buffers are
 * SharedArrayBuffer slices, so the worker sees them without a copy.
 *
 * Work handed to the worker is bounded: past MAX_BACKLOG unhashed bytes, `backlogged`
 * is true and the sender waits (`whenCaughtUp`), so a slow worker slows the transfer
 * instead of growing memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** Unhashed bytes a WorkerHash may have outstanding before the sender pauses. */
const MAX_BACKLOG = 16 * 1024 * 1024;

export interface StreamHash {
  update(chunk: Buffer): void;
  /** The hash of everything so far, without ending the stream (to compare a resumed prefix). */
  peek(): Promise<string>;
  /** The final hash; the stream ends. */
  digest(): Promise<string>;
  /** True while the hashing lags so far behind that the sender should wait. */
  readonly backlogged: boolean;
  whenCaughtUp(callback: () => void): void;
  /** Forget the stream (transfer abandoned). */
  dispose(): void;
}

export class InlineHash implements StreamHash {
  #hash: Hash = createHash('sha256');
  readonly backlogged = false;

  update(chunk: Buffer): void {
    this.#hash.update(chunk);
  }

  peek(): Promise<string> {
    return Promise.resolve(this.#hash.copy().digest('hex'));
  }

  digest(): Promise<string> {
    return Promise.resolve(this.#hash.digest('hex'));
  }

  whenCaughtUp(callback: () => void): void {
    callback();
  }

  dispose(): void {}
}

// Runs in the worker: one Hash per stream id; acknowledges every update so the owner can
// bound its backlog, answers peek/digest with the hex digest.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  let h = hashes.get(m.id);
  if (!h && m.t !== 'x') hashes.set(m.id, (h = createHash('sha256')));
  if (m.t === 'u') {
    h.update(new Uint8Array(m.sab, m.off, m.len));
    parentPort.postMessage({ id: m.id, t: 'a', len: m.len });
  } else if (m.t === 'p') {
    parentPort.postMessage({ id: m.id, t: 'h', hex: h.copy().digest('hex') });
  } else if (m.t === 'd') {
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, t: 'h', hex: h.digest('hex') });
  } else if (m.t === 'x') {
    hashes.delete(m.id);
  }
});
`;

type Reply = { id: number; t: 'a'; len: number } | { id: number; t: 'h'; hex: string };

let worker: Worker | null | undefined;
let nextId = 1;
const streams = new Map<number, WorkerHash>();

function sharedWorker(): Worker | null {
  if (worker !== undefined) return worker;
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (reply: Reply) => streams.get(reply.id)?.onReply(reply));
    worker.on('error', () => {
      // Streams in flight fail their digest; new ones hash inline.
      const failed = [...streams.values()];
      streams.clear();
      worker = null;
      for (const stream of failed) stream.onWorkerGone();
    });
  } catch {
    worker = null;
  }
  return worker;
}

/** A SharedArrayBuffer-backed buffer when worker hashing is available (no copy to hash it). */
export function allocateShared(size: number): Buffer {
  return typeof SharedArrayBuffer === 'function' ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafeSlow(size);
}

/** An off-thread hash when a worker can run here, else an inline one. */
export function createStreamHash(): StreamHash {
  const w = sharedWorker();
  return w ? new WorkerHash(w) : new InlineHash();
}

class WorkerHash implements StreamHash {
  #id = nextId++;
  #worker: Worker;
  #backlog = 0;
  #waiters: Array<() => void> = [];
  #answers: Array<{ resolve: (hex: string) => void; reject: (error: Error) => void }> = [];
  #gone = false;

  constructor(w: Worker) {
    this.#worker = w;
    streams.set(this.#id, this);
  }

  get backlogged(): boolean {
    return this.#backlog > MAX_BACKLOG;
  }

  update(chunk: Buffer): void {
    if (this.#gone) return;
    let view = chunk;
    if (!(chunk.buffer instanceof SharedArrayBuffer)) {
      view = allocateShared(chunk.length);
      chunk.copy(view);
    }
    this.#backlog += view.length;
    this.#worker.postMessage({ t: 'u', id: this.#id, sab: view.buffer, off: view.byteOffset, len: view.length });
  }

  peek(): Promise<string> {
    return this.#ask('p');
  }

  digest(): Promise<string> {
    return this.#ask('d').finally(() => streams.delete(this.#id));
  }

  whenCaughtUp(callback: () => void): void {
    if (!this.backlogged) callback();
    else this.#waiters.push(callback);
  }

  dispose(): void {
    if (!streams.delete(this.#id) || this.#gone) return;
    this.#worker.postMessage({ t: 'x', id: this.#id });
  }

  onReply(reply: Reply): void {
    if (reply.t === 'a') {
      this.#backlog -= reply.len;
      if (!this.backlogged && this.#waiters.length > 0) {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const waiter of waiters) waiter();
      }
      return;
    }
    this.#answers.shift()?.resolve(reply.hex);
  }

  onWorkerGone(): void {
    this.#gone = true;
    for (const answer of this.#answers.splice(0)) answer.reject(new Error('the hashing worker stopped'));
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  #ask(t: 'p' | 'd'): Promise<string> {
    if (this.#gone) return Promise.reject(new Error('the hashing worker stopped'));
    return new Promise((resolve, reject) => {
      this.#answers.push({ resolve, reject });
      this.#worker.postMessage({ t, id: this.#id });
    });
  }
}
