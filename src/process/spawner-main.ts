/**
 * The spawner helper's whole program: a small `node` process (`shellwire-spawner <daemon-pid>`
 * in ps) that forks the daemon's commands, so that a fork copies the page tables of a process
 * of a few tens of MB whatever the daemon holds (spawner.ts, docs/processes.md).
 *
 * It runs in its own `node -e` (as the supervisor does), so it may use nothing from this
 * module's scope, only its parameters: the source text is what gets sent. That also makes it
 * run the same from src/ under tsx, from dist/ and from the esbuild bundles.
 *
 * Data never passes through it. It keeps a pool of Unix-socket connections to the daemon,
 * each opened with a 20-byte header (16 bytes of the daemon's token, then a u32 slot number)
 * that is flushed before the socket is pooled, and never read from (paused before connect).
 * A command gets one pooled socket per stdio fd as its stdio (Node dups them into the child);
 * the helper then closes its copies and tells the daemon the pid and which slot is which fd.
 *
 * Control messages travel over the Node IPC channel (advanced serialization: strings, lone
 * surrogates included, arrive exactly):
 *   daemon → helper  {t:'spawn', id, file, args, cwd, env, fds, cgroup?}   fds: stdio count, ≥ 3;
 *                    cgroup: {procs, home}: fork inside that cgroup (see spawnOne)
 *                    {t:'kill', id, signal}                       the leader, while it is ours
 *   helper → daemon  {t:'ready'}
 *                    {t:'spawned', id, pid, slots}                slots[fd] = slot number
 *                    {t:'failed', id, error:{message, errno, code, syscall, path, spawnargs}, slots?}
 *                                                                 slots: pooled connections it used up
 *                    {t:'exit', id, code, signal}                 the leader was reaped
 * When the channel closes (the daemon exited or died), the helper SIGKILLs the process group
 * of every command whose leader still runs — those the supervisor would kill too — and exits.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

export interface SpawnerHelperConfig {
  socketPath: string;
  /** 16 bytes, hex: proves to the daemon that a connection comes from this helper. */
  token: string;
  /** Connections kept ready, so that a spawn does not wait for connects. */
  poolSize: number;
  daemonPid: number;
}

/** A spawn request as the helper receives it. */
export interface SpawnMessage {
  t: 'spawn';
  id: number;
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  fds: number;
  cgroup?: { procs: string; home: string };
}

export type ToHelper = SpawnMessage | { t: 'kill'; id: number; signal: NodeJS.Signals | number };

export interface SpawnFailure {
  message: string;
  errno?: number;
  code?: string;
  syscall?: string;
  path?: string;
  spawnargs?: string[];
}

export type FromHelper =
  | { t: 'ready' }
  | { t: 'spawned'; id: number; pid: number; slots: number[] }
  | { t: 'failed'; id: number; error: SpawnFailure; slots?: number[] }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

export function spawnerMain(
  cp: typeof import('node:child_process'),
  net: typeof import('node:net'),
  fs: typeof import('node:fs'),
  proc: NodeJS.Process,
  config: SpawnerHelperConfig,
): void {
  proc.title = `shellwire-spawner ${config.daemonPid}`;
  // Descriptors the daemon's own parent left open without close-on-exec were inherited by the
  // daemon and by us; libuv does not close them in a child, so every command would get them.
  // Ours are all close-on-exec (libuv opens everything with O_CLOEXEC): close the rest here.
  const channelFd = Number(proc.env.NODE_CHANNEL_FD);
  try {
    for (const name of fs.readdirSync('/proc/self/fd')) {
      const fd = Number(name);
      if (!(fd > 2) || fd === channelFd) continue;
      try {
        const flags = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
        // O_CLOEXEC is 02000000 in fdinfo's octal flags.
        if (flags && (parseInt(flags[1]!, 8) & 0o2000000) === 0) fs.closeSync(fd);
      } catch {
        // gone meanwhile (the directory's own fd)
      }
    }
  } catch {
    // no /proc: nothing we can do
  }
  // In its own session already; a stray hang-up or Ctrl-C must not end it. Only the channel's end does.
  for (const signal of ['SIGINT', 'SIGHUP'] as const) proc.on(signal, () => {});
  const send = (message: FromHelper): void => {
    if (proc.connected) proc.send!(message);
  };
  const token = Buffer.from(config.token, 'hex');
  let nextSlot = 0;
  const pool: { slot: number; socket: Socket }[] = [];
  let filling = 0;
  /** Commands whose leader has not been reaped yet, by request id. */
  const live = new Map<number, ChildProcess>();

  /**
   * A connection to the daemon. Under a burst (hundreds of spawns at once while the daemon's
   * loop is busy) its listen backlog fills and a Unix-socket connect fails with EAGAIN at
   * once, not after a wait as TCP would: try again shortly, for a while.
   */
  const open = async (): Promise<{ slot: number; socket: Socket }> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await openOnce();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt >= 500) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };

  const openOnce = (): Promise<{ slot: number; socket: Socket }> =>
    new Promise((resolve, reject) => {
      const slot = nextSlot++;
      const socket = new net.Socket();
      // Paused before it connects, so it never starts reading: what arrives is the child's stdin.
      socket.pause();
      let settled = false;
      socket.on('error', (err) => {
        if (!settled) reject(err);
        settled = true;
      });
      socket.connect(config.socketPath, () => {
        const header = Buffer.alloc(20);
        token.copy(header, 0);
        header.writeUInt32BE(slot, 16);
        // Flushed before use: the header must reach the daemon before any byte of the child.
        socket.write(header, (err) => {
          if (settled) return;
          settled = true;
          if (err) reject(err);
          else resolve({ slot, socket });
        });
      });
    });

  const refill = (): void => {
    while (pool.length + filling < config.poolSize) {
      filling++;
      open().then(
        (entry) => {
          filling--;
          pool.push(entry);
        },
        () => {
          filling--;
        },
      );
    }
  };

  const take = async (n: number): Promise<{ slot: number; socket: Socket }[]> => {
    const got = pool.splice(0, n);
    if (got.length < n) {
      const more = await Promise.all(Array.from({ length: n - got.length }, open));
      got.push(...more);
    }
    refill();
    return got;
  };

  const enterCgroup = (procs: string): void => {
    try {
      fs.writeFileSync(procs, '0');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // Said like the wrapper's refusal: nothing was started.
      throw Object.assign(new Error(`cannot enter the command's cgroup ${procs}: ${e.code ?? e.message}`), { errno: e.errno ?? -1, code: e.code ?? 'EPERM', syscall: 'spawn' });
    }
  };
  const leaveCgroup = (home: string): void => {
    try {
      fs.writeFileSync(home, '0');
    } catch {
      proc.exit(70);
    }
  };

  const failureOf = (err: unknown): SpawnFailure => {
    const e = err as NodeJS.ErrnoException & { spawnargs?: string[] };
    const failure: SpawnFailure = { message: String(e?.message ?? err) };
    if (typeof e?.errno === 'number') failure.errno = e.errno;
    if (typeof e?.code === 'string') failure.code = e.code;
    if (typeof e?.syscall === 'string') failure.syscall = e.syscall;
    if (typeof e?.path === 'string') failure.path = e.path;
    if (Array.isArray(e?.spawnargs)) failure.spawnargs = e.spawnargs;
    return failure;
  };

  const spawnOne = async (m: SpawnMessage): Promise<void> => {
    let sockets: { slot: number; socket: Socket }[];
    try {
      sockets = await take(m.fds);
    } catch (err) {
      send({ t: 'failed', id: m.id, error: failureOf(err) });
      return;
    }
    let child: ChildProcess;
    try {
      // A child is born in its parent's cgroup. spawn() forks synchronously, so stepping into
      // the command's cgroup for the length of the call puts the command there before it runs
      // a single instruction (cgroup v2 moves the whole process; two small writes, ~30 µs
      // each here, instead of a /bin/sh that moves itself in and execs, ~1.5 ms).
      if (m.cgroup) enterCgroup(m.cgroup.procs);
      try {
        // detached: setsid(), so the pid is also the process group id (as CommandProcess always had).
        child = cp.spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: sockets.map((s) => s.socket) });
      } finally {
        // Back home at once, whatever happened: a helper left in a command's cgroup would be
        // killed with it. If even that fails, the helper exits and the daemon starts a new one.
        if (m.cgroup) leaveCgroup(m.cgroup.home);
      }
    } catch (err) {
      for (const s of sockets) s.socket.destroy();
      send({ t: 'failed', id: m.id, error: failureOf(err), slots: sockets.map((s) => s.slot) });
      return;
    }
    // The child has its copies (or there is no child): ours go, so the daemon sees EOF when the child's do.
    for (const s of sockets) s.socket.destroy();
    if (child.pid === undefined) {
      // EACCES, ENOENT, …: Node emits 'error' on the next tick.
      child.once('error', (err) => send({ t: 'failed', id: m.id, error: failureOf(err), slots: sockets.map((s) => s.slot) }));
      return;
    }
    const pid = child.pid;
    live.set(m.id, child);
    child.on('error', () => {});
    child.once('exit', (code, signal) => {
      live.delete(m.id);
      send({ t: 'exit', id: m.id, code, signal });
    });
    send({ t: 'spawned', id: m.id, pid, slots: sockets.map((s) => s.slot) });
  };

  proc.on('message', (raw) => {
    const m = raw as ToHelper;
    if (m.t === 'spawn') void spawnOne(m);
    else if (m.t === 'kill') {
      // Only while the leader is ours: once reaped (here, on this loop), its pid may be reused.
      const child = live.get(m.id);
      if (child) {
        try {
          child.kill(m.signal);
        } catch {
          // a bad signal name: nothing sent
        }
      }
    }
  });
  proc.on('disconnect', () => {
    for (const child of live.values()) {
      try {
        proc.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    }
    proc.exit(0);
  });
  refill();
  send({ t: 'ready' });
}
