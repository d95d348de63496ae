/**
 * Containment of commands (docs/processes.md): every command runs in a cgroup of its own
 * under the daemon's parent cgroup (`<own cgroup>/shellwire.<pid>.<n>/c<N>`), so that stopping
 * it reaches everything it started, `setsid` included, and a supervisor process kills all of
 * it if the daemon dies. Without a writable cgroup v2 (a non-root daemon, no cgroup2 mount)
 * the process group is the container: the supervisor still kills recorded groups, but a
 * process that calls setsid() leaves the group and escapes. A command that exits by itself
 * is not stopped: what survives its hang-up (command-process.ts) is released from here.
 *
 * A process must be in its cgroup before it can fork, so a contained command starts through
 * a two-command `/bin/sh` wrapper that moves itself into the cgroup and then execs the
 * command (same pid, so the same process group). Measured: ~1.5 ms more per spawn here. It
 * runs before setpriv, so the cgroup need not be writable by the user the command runs as.
 */
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Cgroup, cgroupWritable, findCgroup2 } from './cgroup.js';
import { Supervisor } from './supervisor.js';
import { signalProcessGroup } from './process-group.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';

export type ContainmentMode = 'cgroup' | 'process-group';

export interface ContainersOptions {
  /** 'auto' (default): cgroups where cgroup v2 is writable, else process groups. */
  mode?: ContainmentMode | 'auto';
  /** Where the supervisor leaves lost commands for the next start; null: not kept. */
  lostDir?: string | null;
  /** Problems worth a log line (fallback taken, supervisor restarted). */
  onWarning?: (message: string) => void;
}

/** The cgroup wrapper: `$0` is the cgroup.procs file, `$@` the command. */
const ENTER_CGROUP = 'echo 0 > "$0" || { echo "shellwire: cannot enter the command\'s cgroup $0" >&2; exit 126; }; exec "$@"';

/** Several daemons (or a daemon and its classic port) may share one process: each its own parent. */
let instances = 0;

/** How often a finished command's container is checked until it can be removed. */
const SETTLE_POLL_MS = 50;

/** The daemon's set of containers, and its supervisor. */
export class Containers {
  readonly mode: ContainmentMode;
  #ownDir: string | null;
  #parentName: string;
  #parent: Cgroup | null = null;
  #supervisor: Supervisor;
  #seq = 0;
  #owners = 1;
  #open = new Set<Containment>();
  #onWarning: (message: string) => void;

  constructor(options: ContainersOptions = {}) {
    this.#onWarning = options.onWarning ?? (() => {});
    const location = options.mode === 'process-group' ? null : findCgroup2();
    const writable = location !== null && cgroupWritable(location.ownDir);
    if (options.mode === 'cgroup' && !writable) {
      throw new Error(location ? `Cannot make cgroups under ${location.ownDir} (not writable by this user).` : 'No cgroup v2 hierarchy is mounted here.');
    }
    this.mode = writable ? 'cgroup' : 'process-group';
    this.#ownDir = writable ? location.ownDir : null;
    this.#parentName = `shellwire.${process.pid}.${++instances}`;
    const parentDir = this.#ownDir ? join(this.#ownDir, this.#parentName) : null;
    this.#supervisor = new Supervisor({ parent: parentDir, lostDir: options.lostDir ?? null, daemonPid: process.pid }, (message) => this.#onWarning(message));
  }

  /** Where this daemon's command cgroups go (null in process-group mode or before the first command). */
  get parentDir(): string | null {
    return this.#parent?.dir ?? null;
  }

  /** The supervisor's pid, once the first command has started it. */
  get supervisorPid(): number | undefined {
    return this.#supervisor.pid;
  }

  /** A container for one command, before it is spawned. */
  open(): Containment {
    const id = ++this.#seq;
    let cgroup: Cgroup | null = null;
    if (this.mode === 'cgroup') {
      try {
        this.#parent ??= this.#makeParent();
        cgroup = Cgroup.make(join(this.#parent.dir, `c${id}`));
      } catch (err) {
        // Fail safe rather than closed: the command still runs in its process group.
        this.#onWarning(`cannot make a cgroup for a command (${(err as NodeJS.ErrnoException).code ?? String(err)}); it runs in its process group only`);
      }
    }
    const containment = new Containment(id, cgroup, this.#ownDir, this.#supervisor, (c) => this.#open.delete(c));
    this.#open.add(containment);
    return containment;
  }

  /** One more owner (the classic port beside the daemon): `close()` acts at the last one. */
  share(): this {
    this.#owners += 1;
    return this;
  }

  /** Daemon stop: kill what is still contained, remove the cgroups, let the supervisor go. */
  close(): void {
    if (--this.#owners > 0) return;
    for (const c of this.#open) c.killAll();
    for (const c of this.#open) c.removeNow();
    if (this.#parent && !this.#parent.remove()) this.#onWarning(`cgroup ${this.#parent.dir} not removed: processes remain`);
    this.#supervisor.close();
  }

  #makeParent(): Cgroup {
    this.#sweepStale();
    return Cgroup.make(join(this.#ownDir!, this.#parentName));
  }

  /**
   * Parents of daemons that died with their supervisor (both SIGKILLed, OOM): kill and remove
   * them. A directory whose pid is alive belongs to a running daemon and is left alone.
   */
  #sweepStale(): void {
    let names: string[];
    try {
      names = readdirSync(this.#ownDir!).filter((name) => /^shellwire\.\d+\.\d+$/.test(name));
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split('.')[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      const parent = new Cgroup(join(this.#ownDir!, name));
      let children: string[] = [];
      try {
        children = readdirSync(parent.dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
      } catch {
        continue;
      }
      for (const child of children) {
        const cgroup = new Cgroup(join(parent.dir, child));
        cgroup.kill();
        if (!cgroup.remove()) this.#onWarning(`stale cgroup ${cgroup.dir} of a dead daemon could not be removed yet`);
      }
      parent.remove();
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Like execvp's search (libuv's, with the command's own PATH): true when `file` would be
 * found and executable. Only then is the command wrapped; otherwise it is spawned as is and
 * fails the way it always did (ENOENT/EACCES as a spawn error), with nothing to contain.
 */
function executableExists(file: string, path: string | undefined, cwd: string): boolean {
  if (file.length === 0) return false;
  const candidates = file.includes('/') ? [resolve(cwd, file)] : (path ?? '/usr/bin:/bin').split(':').map((dir) => join(resolve(cwd, dir || '.'), file));
  return candidates.some((candidate) => {
    try {
      // As bytes: a name or cwd that is not UTF-8 must not miss (and so escape the cgroup).
      const bytes = encodeOsBytes(candidate);
      accessSync(bytes, constants.X_OK);
      return statSync(bytes).isFile();
    } catch {
      return false;
    }
  });
}

/** One command's container: its cgroup (when there is one) and its process group. */
export class Containment {
  readonly id: number;
  readonly cgroup: Cgroup | null;
  #ownDir: string | null;
  #supervisor: Supervisor;
  #onDone: (c: Containment) => void;
  #pgid: number | undefined;
  #stopping = false;
  #settling = false;
  #released = false;
  #done = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(id: number, cgroup: Cgroup | null, ownDir: string | null, supervisor: Supervisor, onDone: (c: Containment) => void) {
    this.id = id;
    this.cgroup = cgroup;
    this.#ownDir = ownDir;
    this.#supervisor = supervisor;
    this.#onDone = onDone;
  }

  /**
   * Where a spawner puts the command instead of wrapping it (spawner.ts): the command's
   * cgroup.procs and the daemon's own, to which the spawner, the daemon's child, returns.
   */
  get placement(): { procs: string; home: string } | null {
    return this.cgroup && this.#ownDir ? { procs: this.cgroup.procsFile, home: join(this.#ownDir, 'cgroup.procs') } : null;
  }

  /** The command line that starts `file args` inside the cgroup (unchanged without one). */
  wrap(file: string, args: string[], env: Record<string, string>, cwd: string): { file: string; args: string[] } {
    if (!this.cgroup || !executableExists(file, env.PATH, cwd)) return { file, args };
    return { file: '/bin/sh', args: ['-c', ENTER_CGROUP, this.cgroup.procsFile, file, ...args] };
  }

  /** The command was spawned: its leader is `pid`, also its process group. Tells the supervisor. */
  attach(pid: number | undefined): void {
    if (pid === undefined) return;
    this.#pgid = pid;
    this.#supervisor.add(this.id, this.cgroup?.dir ?? null, pid);
  }

  /** What the supervisor records if the daemon dies while this runs; null once recorded. */
  note(record: Record<string, unknown> | null): void {
    if (this.#pgid !== undefined && !this.#done) this.#supervisor.note(this.id, record);
  }

  /** True once an explicit stop (terminate/kill) reached the whole container. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Signal every process of the command, setsid'd ones included (cgroup mode). */
  signalAll(signal: NodeJS.Signals): boolean {
    // Released processes are no longer the command's: a late stop must not reach them.
    if (this.#released) return false;
    this.#stopping = true;
    const viaGroup = this.#signalGroup(signal);
    const viaCgroup = this.cgroup?.signal(signal) ?? false;
    return viaGroup || viaCgroup;
  }

  /** SIGKILL everything, at once. */
  killAll(): void {
    if (this.#released) return;
    this.#stopping = true;
    this.cgroup?.kill();
    this.#signalGroup('SIGKILL');
  }

  /** True while anything of the command lives (cgroup), or its process group (fallback). */
  alive(): boolean {
    return this.cgroup ? this.cgroup.populated() : this.groupAlive();
  }

  groupAlive(): boolean {
    return this.#signalGroup(0);
  }

  /**
   * The command is over (its leader exited, its output closed). When it was stopped, wait
   * until all of it is dead, then remove the cgroup. When it exited by itself, its process
   * group has had the hang-up (command-process.ts): what survived it — `nohup` jobs,
   * processes that left the group (setsid), jobs that ignore SIGHUP — is **released**: moved
   * into the daemon's own cgroup and forgotten, so neither a later stop nor the supervisor
   * (when the daemon dies) kills it, as sshd kills nothing a session left behind. Then the
   * cgroup is removed. Without a cgroup, releasing is just forgetting the group.
   */
  finish(): void {
    if (this.#settling || this.#done) return;
    this.#settling = true;
    if (this.#stopping) this.#settle();
    else this.release();
  }

  /** Daemon stop: remove now if possible (after `killAll()`), else leave it to the supervisor. */
  removeNow(): void {
    if (this.#done) return;
    if (!this.cgroup || this.cgroup.remove()) this.#end();
  }

  #settle(): void {
    this.#timer = null;
    if (this.#done) return;
    if (!this.#stopping) {
      this.release();
      return;
    }
    if (this.alive()) {
      this.#timer = setTimeout(() => this.#settle(), SETTLE_POLL_MS);
      this.#timer.unref();
      return;
    }
    if (!this.cgroup || this.cgroup.remove()) this.#end();
    else {
      this.#timer = setTimeout(() => this.#settle(), SETTLE_POLL_MS);
      this.#timer.unref();
    }
  }

  /** Move every process still in the cgroup out (to the daemon's cgroup), remove it. */
  release(): void {
    if (this.#done) return;
    this.#released = true;
    if (!this.cgroup) {
      this.#end();
      return;
    }
    const left = this.#ownDir ? this.cgroup.moveAll(join(this.#ownDir, 'cgroup.procs')) : 0;
    if (left === 0 && this.cgroup.remove()) this.#end();
    else {
      this.#timer = setTimeout(() => this.#settle(), SETTLE_POLL_MS);
      this.#timer.unref();
    }
  }

  #end(): void {
    this.#done = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#pgid !== undefined) this.#supervisor.del(this.id);
    this.#onDone(this);
  }

  #signalGroup(signal: NodeJS.Signals | 0): boolean {
    return signalProcessGroup(this.#pgid, signal);
  }
}
