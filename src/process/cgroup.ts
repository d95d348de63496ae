/**
 * Just enough cgroup v2 to contain commands: find the unified hierarchy and our own place
 * in it, make a child cgroup, list and signal its processes, kill all of it at once
 * (`cgroup.kill`, Linux ≥ 5.14), move survivors out, and remove it.
 *
 * Why cgroups: a process group is left by anything that calls setsid() (`setsid`, daemons,
 * `nohup … &` started by some shells); a cgroup cannot be left by an unprivileged process,
 * and the kernel moves every fork into its parent's cgroup before the child runs.
 */
import { readFileSync, writeFileSync, mkdirSync, rmdirSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export interface Cgroup2Location {
  /** Where the unified hierarchy is mounted (from /proc/self/mountinfo). */
  mount: string;
  /** Our own cgroup's directory (mount + the path from /proc/self/cgroup). */
  ownDir: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * The cgroup v2 mount and our cgroup in it, or null without cgroup v2 (or when our cgroup
 * is outside what is mounted, as in a container that mounts only its own subtree).
 */
export function findCgroup2(mountinfo?: string, selfCgroup?: string): Cgroup2Location | null {
  try {
    mountinfo ??= readFileSync('/proc/self/mountinfo', 'utf8');
    selfCgroup ??= readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return null;
  }
  const own = selfCgroup.split('\n').find((line) => line.startsWith('0::'))?.slice(3);
  if (own === undefined) return null;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields] - fstype source superoptions
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const fields = left.split(' ');
    const root = unescapeMountPath(fields[3] ?? '');
    const mount = unescapeMountPath(fields[4] ?? '');
    if (!mount) continue;
    const inside = root === '/' ? own : own === root ? '/' : own.startsWith(`${root}/`) ? own.slice(root.length) : null;
    if (inside === null) continue;
    return { mount, ownDir: inside === '/' ? mount : join(mount, inside) };
  }
  return null;
}

/** True when we may make child cgroups under `dir` (root, or a delegated subtree). */
export function cgroupWritable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    accessSync(join(dir, 'cgroup.procs'), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** One cgroup directory. Methods never throw for a cgroup that is already gone. */
export class Cgroup {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  static make(dir: string): Cgroup {
    mkdirSync(dir);
    return new Cgroup(dir);
  }

  get procsFile(): string {
    return join(this.dir, 'cgroup.procs');
  }

  pids(): number[] {
    try {
      return readFileSync(this.procsFile, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** True while any process is in it (or in a child cgroup). */
  populated(): boolean {
    try {
      return /^populated 1$/m.test(readFileSync(join(this.dir, 'cgroup.events'), 'utf8'));
    } catch {
      return false;
    }
  }

  /**
   * Send `signal` to every process in it. A process forked while we read the list is
   * missed; callers that must stop everything follow up with `kill()`, which misses none.
   */
  signal(signal: NodeJS.Signals): boolean {
    let any = false;
    for (const pid of this.pids()) {
      try {
        process.kill(pid, signal);
        any = true;
      } catch {
        // exited meanwhile
      }
    }
    return any;
  }

  /** SIGKILL everything in it, forks in flight included (cgroup.kill); kernels < 5.14 get a signal loop. */
  kill(): void {
    try {
      writeFileSync(join(this.dir, 'cgroup.kill'), '1');
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !this.#exists()) return;
    }
    for (let round = 0; round < 10 && this.signal('SIGKILL'); round++);
  }

  /** Move every process to `targetProcsFile` (release). Returns how many are left behind. */
  moveAll(targetProcsFile: string): number {
    for (let round = 0; round < 5; round++) {
      const pids = this.pids();
      if (pids.length === 0) return 0;
      for (const pid of pids) {
        try {
          writeFileSync(targetProcsFile, String(pid));
        } catch {
          // exited meanwhile, or not ours to move
        }
      }
    }
    return this.pids().length;
  }

  /** rmdir; false while processes remain (EBUSY). True when it is gone. */
  remove(): boolean {
    try {
      rmdirSync(this.dir);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }

  #exists(): boolean {
    try {
      accessSync(this.dir);
      return true;
    } catch {
      return false;
    }
  }
}
