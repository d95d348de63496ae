/**
 * A command's process group and how it ends (docs/processes.md), shared by `CommandProcess`
 * (pipes) and `PtyProcess` (terminal): the leader is started with setsid(), so its pid is the
 * group id.
 *
 * - An explicit stop (`terminate`) signals all of the command — its cgroup, setsid'd
 *   processes included, else its group — and SIGKILLs it after the kill grace (`kill`).
 * - When the leader exits by itself (`leaderExited`), the group gets a terminal's hang-up
 *   (SIGHUP, SIGCONT) after HANGUP_DELAY_MS, unless a stop came first.
 * - When the command is over (`ended`: leader gone, output closed), the containment finishes:
 *   what survived the hang-up is released, what was stopped is waited for until it is gone
 *   and its cgroup removed (containment.ts). With the hang-up still pending, that waits for it.
 */

/**
 * What a stop needs of the command's container (containment.ts `Containment`, declared here
 * so that the container can use this module's signalling without an import cycle).
 */
export interface GroupContainer {
  /** Signal every process of the command (cgroup and group); false when none was reached or it was released. */
  signalAll(signal: NodeJS.Signals): boolean;
  killAll(): void;
  /** The command is over: release what survived, or wait for what was stopped to be gone. */
  finish(): void;
}

/**
 * Delay from the leader's exit to the hang-up. The last act of a command line is often
 * `nohup prog … &`: the shell forks and exits at once, and the child has not yet exec'd
 * nohup, which is what ignores SIGHUP. Hanging up at once would kill it in that window (the
 * reason `ssh -t host 'nohup prog &'` needs a `sleep 1` on a terminal).
 */
export const HANGUP_DELAY_MS = 250;

/** How long a command gets between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_GRACE_MS = 2_000;

/** Signal process group `pgid` (0: only look); false when no process of it is left. */
export function signalProcessGroup(pgid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (pgid === undefined) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while any process of the group is alive (the leader or something it started). */
export function processGroupAlive(pgid: number | undefined): boolean {
  return signalProcessGroup(pgid, 0);
}

/**
 * What a terminal's hang-up gives a process group: SIGHUP, then SIGCONT so that stopped
 * members wake up to receive it (the kernel does the same for orphaned groups).
 */
export function hangUpGroup(signalGroup: (signal: NodeJS.Signals) => boolean): void {
  if (signalGroup('SIGHUP')) signalGroup('SIGCONT');
}

export class ProcessGroup {
  readonly pgid: number | undefined;
  readonly containment: GroupContainer | null;
  #killGraceMs: number;
  /** terminate() or kill() was called: the strong kill replaces the hang-up. */
  #stopping = false;
  /** The command is over: the leader is gone and its output closed. */
  #ended = false;
  #killTimer: NodeJS.Timeout | null = null;
  #hangUpTimer: NodeJS.Timeout | null = null;
  /** Ended with the hang-up pending, then stopped: the containment finishes once signaled. */
  #finishPending = false;
  /** The leader's exit was seen: its pid may be reused, so it is never signalled alone again. */
  #leaderGone = false;

  constructor(pgid: number | undefined, containment: GroupContainer | null, killGraceMs: number = DEFAULT_KILL_GRACE_MS) {
    this.pgid = pgid;
    this.containment = containment;
    this.#killGraceMs = killGraceMs;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Signal the process group only (a SIGNAL frame: Ctrl-C reaches the group, as on a
   * terminal) — or the leader alone while it has not made its group yet.
   */
  signal(signal: NodeJS.Signals): boolean {
    return signalProcessGroup(this.pgid, signal) || this.#signalLeaderAlone(signal);
  }

  alive(): boolean {
    return processGroupAlive(this.pgid);
  }

  /** The leader exited: unless it is being stopped, hang up its group after HANGUP_DELAY_MS. */
  leaderExited(): void {
    this.#leaderGone = true;
    if (this.#stopping || this.#hangUpTimer) return;
    this.#hangUpTimer = setTimeout(() => {
      this.#hangUpTimer = null;
      if (!this.#stopping) hangUpGroup((signal) => this.signal(signal));
      if (this.#ended) this.containment?.finish();
    }, HANGUP_DELAY_MS);
    this.#hangUpTimer.unref();
  }

  /** Leader gone and output closed: finish the containment (after the hang-up, if it is pending). */
  end(): void {
    this.#ended = true;
    this.#leaderGone = true;
    if (!this.#hangUpTimer) this.containment?.finish();
  }

  /**
   * Stop all of it: `signals` in order to every process (cgroup, else group), SIGKILL after
   * `graceMs` if any was reached. A released containment refuses (containment.ts).
   */
  terminate(signals: readonly NodeJS.Signals[], graceMs: number = this.#killGraceMs): void {
    this.#stopStrongly();
    let signaled = false;
    for (const signal of signals) signaled = this.#signalAll(signal) || this.#signalLeaderAlone(signal);
    this.#finishOwed();
    if (!signaled || this.#killTimer) return;
    this.#killTimer = setTimeout(() => {
      this.#killTimer = null;
      this.kill();
    }, graceMs);
    this.#killTimer.unref();
  }

  /** SIGKILL all of it at once (the end of a stop's grace; daemon shutdown). */
  kill(): void {
    this.#stopStrongly();
    if (this.containment) {
      this.containment.killAll();
      this.#signalLeaderAlone('SIGKILL');
    } else {
      this.signal('SIGKILL');
    }
    this.#finishOwed();
  }

  #signalAll(signal: NodeJS.Signals): boolean {
    return this.containment ? this.containment.signalAll(signal) : this.signal(signal);
  }

  /**
   * Signal the leader by its pid. A stop can come between the fork and the child's setsid()
   * (node-pty returns from the fork before the child makes its group): no group has that id
   * yet, the stop would reach nothing and arm no SIGKILL, and the command would then run —
   * or stop itself — unowned. Only while the leader's exit is unseen, so the pid is still its.
   */
  #signalLeaderAlone(signal: NodeJS.Signals): boolean {
    if (this.#leaderGone || this.pgid === undefined) return false;
    try {
      process.kill(this.pgid, signal);
      return true;
    } catch {
      return false;
    }
  }

  #stopStrongly(): void {
    this.#stopping = true;
    if (!this.#hangUpTimer) return;
    clearTimeout(this.#hangUpTimer);
    this.#hangUpTimer = null;
    // The hang-up would have finished the containment; the stop does it instead.
    if (this.#ended) this.#finishPending = true;
  }

  #finishOwed(): void {
    if (!this.#finishPending) return;
    this.#finishPending = false;
    this.containment?.finish();
  }
}
