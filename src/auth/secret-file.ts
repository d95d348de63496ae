/** Reading and writing files that hold secrets: created 0600 in a 0700 directory, refused if others can read them. */
import { KEY_FILE_LIMIT, readBoundedText } from './bounded-file.js';
import { mkdirSync, writeFileSync, statSync, renameSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, UsageError } from '../errors.js';

export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UsageError(ErrorCode.STATE_DIR, `Cannot create state directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Atomically write a secret: temp file with mode 0600, then rename over the target. */
export function writeSecretFile(path: string, contents: string): void {
  ensurePrivateDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, contents, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Read a secret file; undefined when missing; an error when group/other can read it (like ssh). */
export function readSecretFile(path: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(ErrorCode.STATE_DIR, `Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new UsageError(
      ErrorCode.STATE_DIR,
      `${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  return readBoundedText(path, 'Secret file', KEY_FILE_LIMIT);
}
