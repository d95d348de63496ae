/**
 * Where the daemon's JSON log lines go: stderr, written asynchronously, never allowed to
 * keep the process alive, block it, or crash it.
 *
 * Why not pino.destination (sonic-boom): its exit handler flushes synchronously and, on any
 * error but EAGAIN, sleeps and retries forever — with stderr a closed pipe
 * (`serve 2>&1 >/dev/null | head -1`), SIGTERM then hung the daemon in that loop, and a second
 * signal could not run. Here a broken stderr (EPIPE, EBADF, …) ends logging and nothing else;
 * a slow one drops lines past `maxQueuedBytes` and says how many when it catches up.
 */
import { write as fsWrite, writeSync } from 'node:fs';

/** Log bytes held while stderr is slow; beyond it lines are dropped (and counted). */
export const LOG_QUEUE_BYTES = 1024 * 1024;

export class StderrDestination {
  readonly fd: number;
  #maxQueuedBytes: number;
  #queue: string[] = [];
  #queuedBytes = 0;
  #writing = false;
  #dropped = 0;
  #broken: string | null = null;
  #flushWaiters: Array<() => void> = [];

  constructor(fd = 2, maxQueuedBytes = LOG_QUEUE_BYTES) {
    this.fd = fd;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Why logging stopped (`EPIPE`, …), or null while it works. */
  get broken(): string | null {
    return this.#broken;
  }

  /** pino calls this with one JSON line. Always returns at once. */
  write(line: string): boolean {
    if (this.#broken !== null) return true;
    if (this.#queuedBytes + line.length > this.#maxQueuedBytes) {
      this.#dropped += 1;
      return true;
    }
    this.#queue.push(line);
    this.#queuedBytes += line.length;
    if (!this.#writing) this.#writeNext();
    return true;
  }

  /** pino's `logger.flush(cb)`: calls back once queued lines are written (or logging broke). */
  flush(cb?: (err?: Error) => void): void {
    if (!this.#writing || this.#broken !== null) {
      cb?.();
      return;
    }
    if (cb) this.#flushWaiters.push(() => cb());
  }

  /**
   * Last chance before exit: one synchronous attempt per queued line, stopping at the first
   * error. Never retries and never waits: a stuck reader must not hold the process.
   */
  flushSync(): void {
    if (this.#broken !== null) return;
    try {
      for (const line of this.#queue) writeSync(this.fd, line);
    } catch {
      // EPIPE, EAGAIN: what is left is lost; exiting matters more
    }
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #writeNext(): void {
    if (this.#dropped > 0 && this.#queue.length === 0) {
      const dropped = this.#dropped;
      this.#dropped = 0;
      this.#queue.push(`${JSON.stringify({ level: 40, time: new Date().toISOString(), pid: process.pid, name: 'shellwire', dropped, msg: `${dropped} log lines dropped: stderr was not keeping up` })}\n`);
    }
    if (this.#queue.length === 0) {
      this.#writing = false;
      for (const waiter of this.#flushWaiters.splice(0)) waiter();
      return;
    }
    this.#writing = true;
    const text = this.#queue.join('');
    this.#queue = [];
    this.#queuedBytes = 0;
    const data = Buffer.from(text, 'utf8');
    this.#writeBuffer(data);
  }

  #writeBuffer(data: Buffer): void {
    fsWrite(this.fd, data, 0, data.length, null, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking stderr that is full: try again shortly, without spinning.
          setTimeout(() => this.#writeBuffer(data), 50).unref();
          return;
        }
        this.#stop(err.code ?? err.message);
        return;
      }
      if (written < data.length) return this.#writeBuffer(data.subarray(written));
      this.#writeNext();
    });
  }

  #stop(reason: string): void {
    this.#broken = reason;
    this.#writing = false;
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const waiter of this.#flushWaiters.splice(0)) waiter();
  }
}
