/**
 * Admission of connections that have not authenticated yet ("startups", as sshd calls
 * them), counted from TCP accept, before TLS, until a successful HELLO or close. It is
 * sshd's `MaxStartups start:rate:full` with two changes that keep legitimate users in
 * while silent clients fill the table:
 *
 * - past `start`, the early drop (probability `rate`% at `start`, rising linearly to 100%
 *   at `full`) falls on the OLDEST silent startup, not on the newcomer: a real client
 *   authenticates within milliseconds of connecting, so the oldest silent connection is
 *   almost never one; at `full` one is always evicted, so the table never refuses;
 * - past `start`, a newcomer's handshake deadline shrinks linearly from the normal one to
 *   `minHandshakeTimeoutMs` at `full`, so a flood cycles faster the harder it pushes;
 * - each source address may hold at most `perSource` startups (the newcomer beyond that is
 *   dropped at once, before any TLS work), so one address cannot fill the table and
 *   evict the others' handshakes.
 */
import type { Socket } from 'node:net';

export interface StartupLimits {
  /** sshd's `start`: startups beyond this are subject to early drop. */
  start: number;
  /** sshd's `rate`: percent chance of an early drop at `start`. */
  rate: number;
  /** sshd's `full`: most startups at once; at `full` the oldest silent one is always evicted. */
  full: number;
  /** Most startups from one source address. */
  perSource: number;
  /** The handshake deadline while at most `start` connections are starting. */
  handshakeTimeoutMs: number;
  /** The deadline a newcomer gets when the table is full. */
  minHandshakeTimeoutMs: number;
}

/** One connection between TCP accept and authentication. */
export interface Startup {
  readonly address: string;
  readonly acceptedAt: number;
  /** Time from accept to the handshake deadline. */
  readonly deadlineMs: number;
  /** False once the client sent its HELLO (it is authenticating, not silent). */
  silent: boolean;
  /** Drop the connection: set by the owner once TLS is up (a coded GOODBYE then). */
  evict: (reason: 'evicted' | 'timeout') => void;
}

export class StartupGate {
  #limits: StartupLimits;
  /** Insertion order is age: the first entry is the oldest. */
  #startups = new Set<Startup & { timer: NodeJS.Timeout }>();
  #perSource = new Map<string, number>();
  #random: () => number;

  constructor(limits: StartupLimits, random: () => number = Math.random) {
    this.#limits = limits;
    this.#random = random;
  }

  get size(): number {
    return this.#startups.size;
  }

  fromAddress(address: string): number {
    return this.#perSource.get(address) ?? 0;
  }

  /**
   * A TCP connection was accepted. Returns its startup (released automatically when the
   * socket closes), or null when its source already holds `perSource` startups: the
   * caller drops it. May evict an older silent startup to make room.
   */
  admit(socket: Socket, address: string = socket.remoteAddress ?? 'unknown'): Startup | null {
    const l = this.#limits;
    if (this.fromAddress(address) >= l.perSource) return null;
    const n = this.#startups.size;
    if (n >= l.start) {
      const over = Math.min(1, (n - l.start) / Math.max(1, l.full - l.start));
      const chance = n >= l.full ? 1 : (l.rate + (100 - l.rate) * over) / 100;
      if (this.#random() < chance) this.#evictOldest();
    }
    const pressure = n < l.start ? 0 : Math.min(1, (n - l.start) / Math.max(1, l.full - l.start));
    const deadlineMs = Math.round(l.handshakeTimeoutMs - (l.handshakeTimeoutMs - Math.min(l.minHandshakeTimeoutMs, l.handshakeTimeoutMs)) * pressure);
    const startup = {
      address,
      acceptedAt: Date.now(),
      deadlineMs,
      silent: true,
      evict: (_reason: 'evicted' | 'timeout') => {
        socket.destroy();
      },
      timer: setTimeout(() => {
        this.release(startup);
        startup.evict('timeout');
      }, deadlineMs),
    };
    startup.timer.unref();
    this.#startups.add(startup);
    this.#perSource.set(address, this.fromAddress(address) + 1);
    socket.once('close', () => this.release(startup));
    return startup;
  }

  /** The startup authenticated or closed: it no longer counts. Idempotent. */
  release(startup: Startup): void {
    const entry = startup as Startup & { timer: NodeJS.Timeout };
    if (!this.#startups.delete(entry)) return;
    clearTimeout(entry.timer);
    const left = this.fromAddress(startup.address) - 1;
    if (left > 0) this.#perSource.set(startup.address, left);
    else this.#perSource.delete(startup.address);
  }

  /** Drop the oldest silent startup (else the oldest of all, e.g. a client stuck in auth backoff). */
  #evictOldest(): void {
    let victim: Startup | null = null;
    for (const s of this.#startups) {
      if (s.silent) {
        victim = s;
        break;
      }
      victim ??= s;
    }
    if (!victim) return;
    this.release(victim);
    victim.evict('evicted');
  }
}
