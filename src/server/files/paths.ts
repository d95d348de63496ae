/**
 * Where a file request may go, and how a refusal reads. A remote path is `..`-collapsed
 * text relative to the user's home, and must land inside one of the allowed roots; anything
 * else is refused, whatever the spelling (`../`, an absolute path, a symlink that points
 * out). The walk that reaches it without a check-then-use window is in beneath.ts.
 */
import { ErrorCode, errnoOf } from '../../errors.js';
import { lstat, realpath } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { decodeOsBytes, encodeOsBytes } from '../../protocol/os-bytes.js';

/** A request the daemon refuses: a path outside the roots, or a failed system call. */
export class FileOpError extends Error {
  override name = 'FileOpError';
  /** The system error code (ENOENT, EACCES, ENOSPC, …) when a system call failed. */
  readonly errno: string | undefined;
  /** True when the path resolved outside the allowed roots. */
  readonly escape: boolean;
  /** True when it reached a directory never served (forbidden.ts): the state dir, the daemon's keys. */
  readonly forbidden: boolean;
  /** The code EXIT.error carries (default SW_ERR_BAD_REQUEST). */
  readonly code: ErrorCode;

  constructor(message: string, options: { errno?: string; escape?: boolean; forbidden?: boolean; cause?: unknown; code?: ErrorCode } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errno = options.errno;
    this.escape = options.escape ?? false;
    this.forbidden = options.forbidden ?? false;
    this.code = options.code ?? ErrorCode.BAD_REQUEST;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'it already exists',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EIO: 'input/output error',
  EFBIG: 'the file is too large for the file system',
  EBUSY: 'the resource is busy',
  ETXTBSY: 'the file is a running program',
};

/** "Cannot write to PATH: permission denied (EACCES). <what to do>" for a failed system call. */
export function systemError(what: string, path: string, err: unknown): FileOpError {
  const e = err as NodeJS.ErrnoException;
  const code = errnoOf(err);
  const text = code ? ERRNO_TEXT[code] ?? e.message : String(err);
  const hint = code ? nextStep(what, path, code) : '';
  return new FileOpError(`Cannot ${what} ${path}: ${text}${code ? ` (${code})` : ''}.${hint ? ` ${hint}` : ''}`, code ? { errno: code, cause: err } : { cause: err });
}

/** What the user can do about a failed system call on the daemon's host ('' when nothing useful). */
function nextStep(what: string, path: string, code: string): string {
  const writing = /^(write|create|rename|replace|set)/.test(what);
  const dir = dirname(path);
  switch (code) {
    case 'ENOENT':
      return writing
        ? `Create the remote directory first (\`shellwire exec HOST mkdir -p ${dir}\`), or copy a whole directory with \`shellwire put -r\`.`
        : 'Check the remote path (`shellwire ls HOST:DIR` lists a directory).';
    case 'ENOTDIR':
      return 'A part of the remote path is a file, not a directory: check the path.';
    case 'EACCES':
    case 'EPERM':
      return `The remote account may not do that: check the permissions of ${writing ? dir : path} (\`ls -ld\`), or log in as a user who may.`;
    case 'EROFS':
      return 'Choose a writable location on the remote host.';
    default:
      // ENOSPC/EDQUOT: the put that hit them says what it did with its partial file and what to do.
      return '';
  }
}

/** The absolute path a request names: relative to `home`, `~` and `~/x` too. `..` is collapsed. */
export function requestedPath(text: string, home: string): string {
  if (text === '' || text === '~') return resolve(home);
  if (text.startsWith('~/')) return resolve(home, text.slice(2));
  return resolve(home, text);
}

/**
 * `absolute` with symlinks resolved: realpath of the deepest ancestor that exists, plus
 * the components that do not exist yet. Racy by nature: used only to find which root a
 * path spelled through a symlink means, never to reach it (beneath.ts walks it again). A dangling symlink is accepted only as the last
 * component (the operation then acts on the link itself, never through it).
 */
export async function resolveReal(absolute: string): Promise<string> {
  const missing: string[] = [];
  let current = absolute;
  for (;;) {
    try {
      const real = decodeOsBytes(await realpath(encodeOsBytes(current), { encoding: 'buffer' }));
      return missing.length === 0 ? real : join(real, ...missing.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw systemError('resolve', absolute, err);
      if (missing.length > 0 && code === 'ENOENT') {
        const link = await lstat(encodeOsBytes(current)).catch(() => null);
        if (link?.isSymbolicLink()) {
          throw new FileOpError(`Cannot use ${absolute}: ${current} is a symbolic link to a missing target.`, { errno: 'ENOENT' });
        }
      }
      const cut = current.lastIndexOf(sep);
      missing.push(current.slice(cut + 1));
      current = cut <= 0 ? sep : current.slice(0, cut);
    }
  }
}

/** The roots as real paths; a root that does not exist allows nothing. */
export async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const root of roots) {
    try {
      out.push(decodeOsBytes(await realpath(encodeOsBytes(resolve(root)), { encoding: 'buffer' })));
    } catch {
      // missing root: skip
    }
  }
  return out;
}

export function inside(path: string, root: string): boolean {
  return root === sep || path === root || path.startsWith(root + sep);
}

