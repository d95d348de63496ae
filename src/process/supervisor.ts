/**
 * The supervisor: a small `node` process the daemon starts (lazily, with the first
 * contained command) and feeds over a pipe. It learns each running command's cgroup and
 * process group. When the pipe reaches EOF — the daemon exited, crashed or was SIGKILLed —
 * it kills every command still on its list (cgroup.kill, else SIGKILL to the process group),
 * removes the cgroups, and writes what the daemon could not record to
 * `<lost-dir>/lost-commands.<daemon-pid>.jsonl`, which the next daemon start turns into
 * audit end rows. Then it exits.
 *
 * Why a separate process and not PR_SET_PDEATHSIG: the death signal reaches only the direct
 * child, is cleared by fork, and Node cannot set it; a pipe's EOF is certain.
 *
 * Wire (daemon → supervisor), one JSON object per line:
 *   {"t":"add","id":N,"cgroup":DIR|null,"pgid":PID}   a command started
 *   {"t":"note","id":N,"note":{…}|null}              what to record if it is lost (null: recorded)
 *   {"t":"del","id":N}                                it is over and its cgroup is gone
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface SupervisorConfig {
  /** The daemon's parent cgroup: every child cgroup under it is killed and removed at EOF. */
  parent: string | null;
  /** Where lost commands are written for the next daemon start; null: nowhere. */
  lostDir: string | null;
  daemonPid: number;
}

/** Prefix of the files the supervisor leaves for the next daemon start. */
export const LOST_COMMANDS_PREFIX = 'lost-commands.';

type SupervisorMessage =
  | { t: 'add'; id: number; cgroup: string | null; pgid: number }
  | { t: 'note'; id: number; note: Record<string, unknown> | null }
  | { t: 'del'; id: number };

/**
 * The supervisor's whole program. It runs in its own `node -e`, so it may use nothing from
 * this module's scope: only its parameters (the source text is what gets sent).
 */
function supervisorProgram(fs: typeof import('node:fs'), config: SupervisorConfig, proc: NodeJS.Process): void {
  // A readable name in ps instead of this program's source text.
  proc.title = `shellwire-supervisor ${config.daemonPid}`;
  const live = new Map<number, { cgroup: string | null; pgid: number; note: Record<string, unknown> | null }>();
  // Started detached (own session), but a stray SIGTERM/SIGINT/SIGHUP must not make it
  // leave before the daemon does: only EOF ends it.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) proc.on(signal, () => {});
  let buffered = '';
  let done = false;
  proc.stdin.setEncoding('utf8');
  proc.stdin.on('data', (chunk: string) => {
    buffered += chunk;
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      let message: SupervisorMessage;
      try {
        message = JSON.parse(line) as SupervisorMessage;
      } catch {
        continue;
      }
      if (message.t === 'add') live.set(message.id, { cgroup: message.cgroup, pgid: message.pgid, note: null });
      else if (message.t === 'note') {
        const entry = live.get(message.id);
        if (entry) entry.note = message.note;
      } else if (message.t === 'del') live.delete(message.id);
    }
  });
  const cleanUp = (): void => {
    if (done) return;
    done = true;
    const lostAt = new Date();
    const cgroups = new Set<string>();
    for (const entry of live.values()) if (entry.cgroup) cgroups.add(entry.cgroup);
    if (config.parent) {
      try {
        // Also cgroups made just before the daemon died, before it could tell us.
        for (const entry of fs.readdirSync(config.parent, { withFileTypes: true })) if (entry.isDirectory()) cgroups.add(`${config.parent}/${entry.name}`);
      } catch {
        // no parent: nothing was ever started in it
      }
    }
    const killCgroup = (dir: string): void => {
      try {
        fs.writeFileSync(`${dir}/cgroup.kill`, '1');
        return;
      } catch {
        // kernel < 5.14: signal what is listed
      }
      try {
        for (const pid of fs.readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
          try { proc.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
        }
      } catch {
        // already removed
      }
    };
    for (const dir of cgroups) killCgroup(dir);
    for (const entry of live.values()) {
      if (entry.cgroup || !(entry.pgid > 0)) continue;
      try { proc.kill(-entry.pgid, 'SIGKILL'); } catch { /* gone */ }
    }
    const lost = [...live.values()].filter((entry) => entry.note).map((entry) => JSON.stringify({ ...entry.note, lostAt: lostAt.toISOString() }));
    if (config.lostDir && lost.length > 0) {
      // Written under a temporary name and renamed: a daemon starting meanwhile sees all or nothing.
      const file = `${config.lostDir}/lost-commands.${config.daemonPid}.jsonl`;
      try {
        fs.writeFileSync(`${file}.tmp`, `${lost.join('\n')}\n`, { mode: 0o600 });
        fs.renameSync(`${file}.tmp`, file);
      } catch (err) {
        proc.stderr.write(`shellwire supervisor: cannot keep ${lost.length} lost command(s) for the audit: ${String(err)}\n`);
      }
    }
    // Killed processes leave their cgroup a moment later (exit is asynchronous): retry rmdir.
    const deadline = Date.now() + 5_000;
    const removeAll = (): void => {
      for (const dir of cgroups) {
        try {
          fs.rmdirSync(dir);
          cgroups.delete(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') cgroups.delete(dir);
          else killCgroup(dir);
        }
      }
      if (cgroups.size > 0 && Date.now() < deadline) {
        setTimeout(removeAll, 20);
        return;
      }
      if (config.parent) {
        try { fs.rmdirSync(config.parent); } catch { /* gone, or a straggler: reported below */ }
      }
      if (cgroups.size > 0) proc.stderr.write(`shellwire supervisor: cgroups not removed: ${[...cgroups].join(' ')}\n`);
      proc.exit(0);
    };
    removeAll();
  };
  proc.stdin.on('end', cleanUp);
  proc.stdin.on('error', cleanUp);
}

/**
 * The daemon's end of the supervisor. Messages are queued in the pipe; the supervisor is
 * started with the first one and started again (with the live list) if it ever dies.
 */
export class Supervisor {
  #config: SupervisorConfig;
  #child: ChildProcess | null = null;
  #closing = false;
  #onError: (message: string) => void;
  /** The latest add/note per live command, to replay to a restarted supervisor. */
  #live = new Map<number, SupervisorMessage[]>();
  /**
   * Lines not yet written: sent together once per event-loop turn. Each write to the pipe
   * wakes the supervisor, and a burst of commands (a broadcast reaching 250 agents of one
   * process) wrote four lines per command: 0.75 ms of the daemon's CPU per command, measured.
   */
  #unsent: string[] = [];
  #flushQueued = false;

  constructor(config: SupervisorConfig, onError: (message: string) => void = () => {}) {
    this.#config = config;
    this.#onError = onError;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  add(id: number, cgroup: string | null, pgid: number): void {
    this.#send({ t: 'add', id, cgroup, pgid });
  }

  note(id: number, note: Record<string, unknown> | null): void {
    this.#send({ t: 'note', id, note });
  }

  del(id: number): void {
    this.#send({ t: 'del', id });
  }

  /** Clean stop: EOF, so the supervisor cleans what is left (nothing, normally) and exits. */
  close(): void {
    this.#flush();
    this.#closing = true;
    this.#child?.stdin?.end();
    this.#child = null;
  }

  #send(message: SupervisorMessage): void {
    if (this.#closing) return;
    if (message.t === 'del') this.#live.delete(message.id);
    else {
      const kept = this.#live.get(message.id) ?? [];
      if (message.t === 'note') kept.splice(1);
      kept.push(message);
      this.#live.set(message.id, kept);
    }
    this.#unsent.push(`${JSON.stringify(message)}\n`);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#closing || this.#unsent.length === 0) return;
    const lines = this.#unsent.join('');
    this.#unsent = [];
    const child = this.#child ?? this.#start();
    child.stdin?.write(lines);
  }

  #start(): ChildProcess {
    // `var __name`: tools that keep function names (tsx) may call it inside the source.
    const program = `var __name = (f) => f;\n(${supervisorProgram.toString()})(require('node:fs'), JSON.parse(process.argv[1]), process);`;
    const child = spawn(process.execPath, ['-e', program, JSON.stringify(this.#config)], {
      // Its own session: a terminal's Ctrl-C (to the daemon's group) must not reach it.
      detached: true,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    // Not counted as keeping the daemon alive: the daemon decides when to exit.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    child.stdin?.on('error', () => {});
    child.on('error', (err) => this.#onError(`cannot start the supervisor: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.#child !== child || this.#closing) return;
      this.#child = null;
      this.#onError(`the supervisor exited (${signal ?? code}); starting another for the ${this.#live.size} running command(s)`);
      if (this.#live.size > 0) {
        const replacement = this.#start();
        for (const messages of this.#live.values()) for (const m of messages) replacement.stdin?.write(`${JSON.stringify(m)}\n`);
      }
    });
    this.#child = child;
    return child;
  }
}
