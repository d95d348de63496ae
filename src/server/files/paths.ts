/**
 * Where a file request may go. A remote path is resolved the way the operation will use
 * it — `..` collapsed, then symlinks resolved through the deepest ancestor that exists —
 * and must land inside one of the allowed roots. Anything else is refused, whatever the
 * spelling (`../`, an absolute path, a symlink that points out).
 *
 * TODO(risk: TOCTOU): a local user who can write inside a root may swap a checked
 * directory for a symlink between this check and the open/rename. Node has no
 * openat2(RESOLVE_BENEATH); the final opens use O_NOFOLLOW, intermediate directories
 * are not pinned.
 */
import { lstat, realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';

/** A request the daemon refuses: a path outside the roots, or a failed system call. */
export class FileOpError extends Error {
  override name = 'FileOpError';
  /** The system error code (ENOENT, EACCES, ENOSPC, …) when a system call failed. */
  readonly errno: string | undefined;
  /** True when the path resolved outside the allowed roots. */
  readonly escape: boolean;

  constructor(message: string, options: { errno?: string; escape?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.errno = options.errno;
    this.escape = options.escape ?? false;
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

/** "PATH: permission denied (EACCES)" for a failed system call. */
export function systemError(what: string, path: string, err: unknown): FileOpError {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const text = code ? ERRNO_TEXT[code] ?? e.message : String(err);
  return new FileOpError(`Cannot ${what} ${path}: ${text}${code ? ` (${code})` : ''}.`, code ? { errno: code, cause: err } : { cause: err });
}

/** The absolute path a request names: relative to `home`, `~` and `~/x` too. `..` is collapsed. */
export function requestedPath(text: string, home: string): string {
  if (text === '' || text === '~') return resolve(home);
  if (text.startsWith('~/')) return resolve(home, text.slice(2));
  return resolve(home, text);
}

/**
 * `absolute` with symlinks resolved: realpath of the deepest ancestor that exists, plus
 * the components that do not exist yet. A dangling symlink is accepted only as the last
 * component (the operation then acts on the link itself, never through it).
 */
export async function resolveReal(absolute: string): Promise<string> {
  const missing: string[] = [];
  let current = absolute;
  for (;;) {
    try {
      const real = await realpath(current);
      return missing.length === 0 ? real : join(real, ...missing.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw systemError('resolve', absolute, err);
      if (missing.length > 0 && code === 'ENOENT') {
        const link = await lstat(current).catch(() => null);
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
      out.push(await realpath(resolve(root)));
    } catch {
      // missing root: skip
    }
  }
  return out;
}

export function inside(path: string, root: string): boolean {
  return root === sep || path === root || path.startsWith(root + sep);
}

/**
 * Resolve `text` for `home` and check it against `roots`. Throws `FileOpError` with
 * `escape: true` (message names the roots) when it lands outside them.
 */
export async function resolveInRoots(text: string, home: string, roots: readonly string[]): Promise<string> {
  const absolute = requestedPath(text, home);
  const real = await resolveReal(absolute);
  const allowed = await realRoots(roots);
  if (allowed.some((root) => inside(real, root))) return real;
  const shown = roots.length === 0 ? '(none)' : roots.join(', ');
  const via = real === absolute ? '' : ` (it resolves to ${real})`;
  throw new FileOpError(`Path ${text || '~'} is outside the allowed file root${roots.length === 1 ? '' : 's'} ${shown}${via}; refused.`, { escape: true });
}
