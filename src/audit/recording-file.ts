/**
 * One recording file written in the background: `write()` queues bytes and returns at once
 * (the relay that calls it must never wait for a disk), one async loop writes them in
 * order and feeds the SHA-256 with exactly the bytes that reached the file.
 *
 * Bounded: a disk that stalls (NFS hang, a full disk retrying) must not turn into memory.
 * When more than `maxQueuedBytes` wait, or a write fails, the file stops: the queue is
 * dropped, the reason kept, and `close()` reports it — the session goes on without its
 * recording rather than the gateway running out of memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

/** Bytes a recording may have waiting for the disk before it gives up (8 MiB). */
export const RECORDING_MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** What a finished file says about itself. */
export interface RecordingFileResult {
  /** Hex SHA-256 of the bytes in the file. */
  sha256: string;
  /** Bytes in the file. */
  bytes: number;
  /** Why the file stopped early (queue overflow, write error); absent when complete. */
  error?: string;
}

export class RecordingFile {
  readonly path: string;
  #maxQueued: number;
  #queue: Buffer[] = [];
  #queued = 0;
  #hash: Hash = createHash('sha256');
  #written = 0;
  #error: string | undefined;
  #handle: Promise<FileHandle | null>;
  #running: Promise<void> | null = null;
  #closed: Promise<RecordingFileResult> | null = null;
  #onError: (message: string) => void;

  /**
   * Create `path` (exclusively, mode 0600: recordings carry what was on a screen) in the
   * background, once `after` (the folder being made) has settled. `onError` is told once when
   * the file stops early.
   */
  constructor(path: string, options: { maxQueuedBytes?: number; onError?: (message: string) => void; after?: Promise<unknown> } = {}) {
    this.path = path;
    this.#maxQueued = options.maxQueuedBytes ?? RECORDING_MAX_QUEUED_BYTES;
    this.#onError = options.onError ?? (() => {});
    this.#handle = (options.after ?? Promise.resolve()).then(() => open(path, 'wx', 0o600)).catch((err: NodeJS.ErrnoException) => {
      this.#fail(`cannot create ${path}: ${err.code ?? err.message}`);
      return null;
    });
  }

  /** Why the file stopped, or undefined while it is being written. */
  get error(): string | undefined {
    return this.#error;
  }

  /** Bytes waiting for the disk. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Queue `data`; never blocks, never throws. Ignored after an error or close(). */
  write(data: Buffer): void {
    if (this.#error !== undefined || this.#closed !== null || data.length === 0) return;
    if (this.#queued + data.length > this.#maxQueued) {
      this.#fail(`the disk did not keep up: more than ${this.#maxQueued} bytes waited to be written; recording stopped`);
      return;
    }
    this.#queue.push(data);
    this.#queued += data.length;
    this.#running ??= this.#drain();
  }

  async #drain(): Promise<void> {
    const handle = await this.#handle;
    while (this.#queue.length > 0 && this.#error === undefined && handle !== null) {
      // One write of everything queued: fewer syscalls when output comes in many small chunks.
      const batch = this.#queue.length === 1 ? this.#queue[0]! : Buffer.concat(this.#queue);
      this.#queue = [];
      try {
        let offset = 0;
        while (offset < batch.length) {
          const { bytesWritten } = await handle.write(batch, offset, batch.length - offset, null);
          this.#hash.update(batch.subarray(offset, offset + bytesWritten));
          this.#written += bytesWritten;
          offset += bytesWritten;
        }
      } catch (err) {
        this.#fail(`writing ${this.path} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; recording stopped`);
      }
      if (this.#error === undefined) this.#queued -= batch.length;
    }
    this.#running = null;
  }

  #fail(message: string): void {
    if (this.#error !== undefined) return;
    this.#error = message;
    this.#queue = [];
    this.#queued = 0;
    this.#onError(message);
  }

  /** Write what is queued, close the file, and report its hash and size. Idempotent. */
  close(): Promise<RecordingFileResult> {
    this.#closed ??= (async () => {
      while (this.#running !== null) await this.#running;
      const handle = await this.#handle;
      if (handle !== null) {
        try {
          await handle.close();
        } catch (err) {
          this.#fail(`closing ${this.path} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      const result: RecordingFileResult = { sha256: this.#hash.digest('hex'), bytes: this.#written };
      if (this.#error !== undefined) result.error = this.#error;
      return result;
    })();
    return this.#closed;
  }
}
