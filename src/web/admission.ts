/**
 * What the console lets in at once (docs/web.md "Limits"), so one browser session cannot use
 * up the gateway: WebSockets per session and per user (terminals per user apart), counted
 * from the upgrade request until its socket closes; terminal opens in flight per user and
 * across the console (the rest wait their turn, then get an answer: never silence); and a
 * reserve of file descriptors, below which new WebSockets and logins are refused with 503 so
 * the gateway can still accept operators on its TCP port and dial its hosts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { ErrorCode } from '../errors.js';
/** What the ledger counts by: a login session (web-types.ts WebSession; structural, so this module imports no type back). */
type Holder = { readonly user: string };
import {
  WEB_FD_RESERVE, WEB_OPENS_IN_FLIGHT, WEB_OPENS_PER_USER, WEB_OPEN_WAIT_MS,
  WEB_SOCKETS_PER_SESSION, WEB_SOCKETS_PER_USER, WEB_TERMINALS_PER_USER,
} from './web-config.js';

/** The console's limits (GatewayWebOptions.limits overrides any of them; tests shrink them). */
export interface WebLimits {
  socketsPerSession: number;
  socketsPerUser: number;
  terminalsPerUser: number;
  opensPerUser: number;
  opensInFlight: number;
  openWaitMs: number;
  fdReserve: number;
}

export const DEFAULT_WEB_LIMITS: WebLimits = {
  socketsPerSession: WEB_SOCKETS_PER_SESSION,
  socketsPerUser: WEB_SOCKETS_PER_USER,
  terminalsPerUser: WEB_TERMINALS_PER_USER,
  opensPerUser: WEB_OPENS_PER_USER,
  opensInFlight: WEB_OPENS_IN_FLIGHT,
  openWaitMs: WEB_OPEN_WAIT_MS,
  fdReserve: WEB_FD_RESERVE,
};

/** A refusal: the HTTP status and the documented error body. */
export interface Refusal {
  status: number;
  code: ErrorCode;
  message: string;
}

type Kind = 'terminal' | 'socket';

/** WebSockets held (or being opened) per session and per user. */
export class SocketLedger {
  #bySession = new Map<Holder, number>();
  #byUser = new Map<string, { sockets: number; terminals: number }>();

  constructor(private readonly limits: WebLimits) {}

  /**
   * Count one more WebSocket of `kind` for `session`, or say which limit it would pass.
   * The returned release is idempotent.
   */
  reserve(session: Holder, kind: Kind): (() => void) | Refusal {
    const mine = this.#bySession.get(session) ?? 0;
    const user = this.#byUser.get(session.user) ?? { sockets: 0, terminals: 0 };
    const over = (what: string, n: number) => ({
      status: 429, code: ErrorCode.TOO_MANY_CONNECTIONS,
      message: `Too many WebSockets: ${what} is ${n} at once (the console's limit); close some terminals or tabs, then try again.`,
    });
    if (mine >= this.limits.socketsPerSession) return over('one login session\'s', this.limits.socketsPerSession);
    if (user.sockets >= this.limits.socketsPerUser) return over(`${session.user}'s (all her sessions)`, this.limits.socketsPerUser);
    if (kind === 'terminal' && user.terminals >= this.limits.terminalsPerUser) return over(`${session.user}'s terminals`, this.limits.terminalsPerUser);
    this.#bySession.set(session, mine + 1);
    user.sockets += 1;
    if (kind === 'terminal') user.terminals += 1;
    this.#byUser.set(session.user, user);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#bySession.get(session) ?? 1) - 1;
      if (left > 0) this.#bySession.set(session, left);
      else this.#bySession.delete(session);
      user.sockets -= 1;
      if (kind === 'terminal') user.terminals -= 1;
      if (user.sockets <= 0) this.#byUser.delete(session.user);
    };
  }
}

/**
 * Terminal opens in flight: at most `opensPerUser` per user and `opensInFlight` across the
 * console; the rest wait in order. A flood from one user then waits behind her own opens,
 * and never holds more than her share of the gateway's work.
 */
export class OpenGate {
  #total = 0;
  #byUser = new Map<string, number>();
  #waiting: Array<{ user: string; go: () => void }> = [];

  constructor(private readonly limits: WebLimits) {}

  /** A slot for `user` (resolve: its release), or a 503 refusal after `openWaitMs` in line. */
  acquire(user: string): Promise<(() => void) | Refusal> {
    if (this.#fits(user)) return Promise.resolve(this.#take(user));
    return new Promise((resolve) => {
      const entry = { user, go: () => resolve(this.#take(user)) };
      this.#waiting.push(entry);
      setTimeout(() => {
        const i = this.#waiting.indexOf(entry);
        if (i < 0) return;
        this.#waiting.splice(i, 1);
        resolve({ status: 503, code: ErrorCode.TOO_MANY_CONNECTIONS, message: `The console is busy opening terminals (waited ${Math.round(this.limits.openWaitMs / 1000)} s for a turn); try again.` });
      }, this.limits.openWaitMs).unref();
    });
  }

  #fits(user: string): boolean {
    return this.#total < this.limits.opensInFlight && (this.#byUser.get(user) ?? 0) < this.limits.opensPerUser;
  }

  #take(user: string): () => void {
    this.#total += 1;
    this.#byUser.set(user, (this.#byUser.get(user) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total -= 1;
      const n = (this.#byUser.get(user) ?? 1) - 1;
      if (n > 0) this.#byUser.set(user, n);
      else this.#byUser.delete(user);
      // The first waiter that now fits goes (another user's may, while this one's still may not).
      const i = this.#waiting.findIndex((w) => this.#fits(w.user));
      if (i >= 0) this.#waiting.splice(i, 1)[0]!.go();
    };
  }
}

/**
 * Whether this process is within `reserve` descriptors of its soft RLIMIT_NOFILE. Counting
 * /proc/self/fd is a readdir of a few thousand names at most, done only for upgrades and logins.
 */
export function nearFdLimit(reserve: number, limit = softFdLimit()): boolean {
  if (!Number.isFinite(limit)) return false;
  let open: number;
  try {
    open = readdirSync('/proc/self/fd').length;
  } catch {
    return false;
  }
  return open >= limit - reserve;
}

/** Read once: the soft limit is set at start (`ulimit -n`, systemd LimitNOFILE). */
let cachedLimit: number | null = null;

/** The soft RLIMIT_NOFILE of this process (Infinity when unknown or unlimited). */
export function softFdLimit(): number {
  if (cachedLimit !== null) return cachedLimit;
  cachedLimit = Infinity;
  try {
    // /proc/self/limits: "Max open files            1024                 1048576              files".
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') cachedLimit = Number(m[1]);
  } catch {
    // not Linux: no reserve is kept
  }
  return cachedLimit;
}

/** The 503 of a console near its descriptor limit. */
export function fdRefusal(): Refusal {
  return { status: 503, code: ErrorCode.TOO_MANY_CONNECTIONS, message: 'The gateway is near its limit of open files; it keeps the rest for its operators and hosts. Close some terminals, or try again later.' };
}
