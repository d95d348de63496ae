/**
 * Reading a config, key or token file the user named: a regular file only, and only up to a
 * size cap for its kind. `readFileSync('/dev/zero')` grows until the process dies (and, being
 * synchronous, ignores SIGTERM meanwhile); `readFileSync(FIFO)` blocks forever. Symlinks are
 * followed, as ssh follows them for its own config and keys.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { kindOf } from '../file-kind.js';
import { ErrorCode, UsageError } from '../errors.js';

const MiB = 1024 * 1024;
/** Private and public keys, token files: a 16384-bit RSA key is 13 KB. */
export const KEY_FILE_LIMIT = MiB;
/** known_hosts, inventory.yaml, serve.yaml, users.yaml: tens of thousands of lines fit. */
export const CONFIG_FILE_LIMIT = 16 * MiB;

/** The file is not a regular file, or is over its kind's cap; `path` and `what` say which. */
export class BoundedFileError extends UsageError {
  override name = 'BoundedFileError';
}

/**
 * The bytes of `path`, described as `what` in errors ("known_hosts", "token file"). The
 * errors of open(2) (ENOENT, EACCES, ELOOP…) are thrown as they are, so callers keep their
 * "missing file" handling; a non-regular or oversized file is a `BoundedFileError`.
 */
export function readBoundedFile(path: string, what: string, limit: number): Buffer {
  // O_NONBLOCK: opening a FIFO with no writer would block here; on a regular file it does nothing.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new BoundedFileError(ErrorCode.BAD_CONFIG, `${what} ${path} is not a regular file (it is ${kindOf(stat)}).`);
    if (stat.size > limit) throw tooBig(what, path, stat.size, limit);
    return readUpTo(fd, limit, () => tooBig(what, path, null, limit));
  } finally {
    closeSync(fd);
  }
}

/** `readBoundedFile` as UTF-8 text. */
export function readBoundedText(path: string, what: string, limit: number): string {
  return readBoundedFile(path, what, limit).toString('utf8');
}

/**
 * Standard input (`--from -`), which is a pipe or a terminal, not a file: read to its end,
 * refusing it past `limit` bytes (`< /dev/zero` must not fill memory).
 */
export function readBoundedStdin(what: string, limit: number): Buffer {
  return readUpTo(0, limit, () => new BoundedFileError(ErrorCode.BAD_CONFIG, `${what} on standard input is longer than ${formatSize(limit)}.`));
}

function readUpTo(fd: number, limit: number, over: () => Error): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  // A file may grow between fstat and read: stop one byte past the cap rather than trust the size.
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total));
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (err) {
      // A non-blocking stdin pipe with nothing yet: wait a little, then read again.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
    total += n;
    if (total > limit) throw over();
  }
  return Buffer.concat(chunks, total);
}

function tooBig(what: string, path: string, size: number | null, limit: number): BoundedFileError {
  return new BoundedFileError(ErrorCode.BAD_CONFIG, `${what} ${path} is ${size === null ? `larger than ${formatSize(limit)}` : formatSize(size)}; at most ${formatSize(limit)} is read. Is it the right file?`);
}

/** 16 MiB, 2.1 GB: binary units for limits (they are powers of two), decimal for sizes found. */
export function formatSize(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} bytes`;
}
