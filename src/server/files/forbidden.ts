/**
 * Directories the file service never opens for anyone but the daemon's own token: the
 * daemon's state dir (its token, users.yaml, host key, audit log: reading the token there
 * would turn a file-only login into "run anything"), and the daemon account's `~/.ssh` and
 * `~/.shellwire` (its private keys). A user's home or file root defaults to the daemon
 * account's home on a daemon run by a normal account, which holds all three.
 *
 * They are recognised by device and inode, on the descriptors beneath.ts holds for every
 * directory it walks through: a symlink, a bind mount, `..` or a second spelling of the
 * path reaches the same inode and is refused the same way.
 */
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { encodeOsBytes } from '../../protocol/os-bytes.js';
import { FileOpError } from './paths.js';

export interface ForbiddenDir {
  path: string;
  /** Why it is never served, for the refusal: "the daemon's state dir", … */
  what: string;
}

/** The state dir, and the daemon account's key directories under `home`. */
export function daemonForbiddenDirs(stateDir: string, home: string): ForbiddenDir[] {
  return [
    { path: stateDir, what: "the daemon's state dir" },
    { path: join(home, '.ssh'), what: "the daemon account's ~/.ssh" },
    { path: join(home, '.shellwire'), what: "the daemon account's ~/.shellwire" },
  ];
}

/** The forbidden directories' identities at the time of one request. */
export class ForbiddenSet {
  #byInode: Map<string, ForbiddenDir>;

  private constructor(byInode: Map<string, ForbiddenDir>) {
    this.#byInode = byInode;
  }

  /** Stat each directory now (one that does not exist forbids nothing). */
  static async of(dirs: readonly ForbiddenDir[]): Promise<ForbiddenSet> {
    const byInode = new Map<string, ForbiddenDir>();
    for (const dir of dirs) {
      // Numbers, as fstat gives beneath.ts: both sides convert the same way.
      const info = await stat(encodeOsBytes(dir.path)).catch(() => null);
      if (info?.isDirectory()) byInode.set(`${info.dev}:${info.ino}`, dir);
    }
    return new ForbiddenSet(byInode);
  }

  get empty(): boolean {
    return this.#byInode.size === 0;
  }

  /**
   * Throw when `info` (fstat of a descriptor the walk holds) is a forbidden directory. The
   * message names neither the path it was reached through nor where a link led.
   */
  check(info: Stats, text: string, verb: string): void {
    if (this.#byInode.size === 0 || !info.isDirectory()) return;
    const dir = this.#byInode.get(`${info.dev}:${info.ino}`);
    if (!dir) return;
    throw new FileOpError(
      `Cannot ${verb} ${text}: ${dir.what} is never served over file transfers (it holds the daemon's secrets); only the daemon's own token may reach it.`,
      { escape: true, errno: 'EACCES', forbidden: true },
    );
  }
}
