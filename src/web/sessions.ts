/**
 * The web console's server-side sessions. A session is a cookie id and the gateway
 * connection its login opened; it ends on logout, after WEB_SESSION_IDLE_MS without use or
 * WEB_SESSION_MAX_MS after login, when the same user's 17th login makes room, or when its
 * gateway connection closes (a reload that revoked her closes it: the gateway's
 * login-in-force). Ending closes its WebSockets with 4401 and its gateway connection.
 * Ids are looked up as map keys only (never compared char by char), and never logged.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Connection } from '../client/connection.js';
import type { Closable, SessionEnd, WebSession, WebSessionStore } from './web-types.js';
import { WEB_SESSION_IDLE_MS, WEB_SESSION_MAX_MS, WEB_SESSIONS_PER_USER, WEB_SWEEP_INTERVAL_MS, WS_CLOSE_SESSION_ENDED } from './web-config.js';

export type { SessionEnd };

export interface WebSessionsOptions {
  log: Logger;
  idleMs?: number;
  maxMs?: number;
  perUser?: number;
  now?: () => number;
}

class Session implements WebSession {
  readonly id = randomBytes(32).toString('base64url');
  readonly csrfToken = randomBytes(32).toString('base64url');
  readonly createdAt: number;
  lastSeenAt: number;
  readonly expiresAt: Date;
  ended = false;
  readonly sockets = new Set<Closable>();

  constructor(
    readonly user: string,
    readonly gateway: Connection,
    readonly remote: string,
    readonly method: 'password' | 'link',
    now: number,
    maxMs: number,
    private readonly clock: () => number,
  ) {
    this.createdAt = now;
    this.lastSeenAt = now;
    this.expiresAt = new Date(now + maxMs);
  }

  track(socket: Closable): () => void {
    if (this.ended) {
      socket.close(WS_CLOSE_SESSION_ENDED, 'session ended');
      return () => {};
    }
    this.sockets.add(socket);
    return () => {
      this.sockets.delete(socket);
      this.lastSeenAt = this.clock();
    };
  }

  touch(): void {
    this.lastSeenAt = this.clock();
  }
}

export class WebSessions implements WebSessionStore {
  readonly idleMs: number;
  readonly maxMs: number;
  readonly perUser: number;
  #log: Logger;
  #now: () => number;
  #byId = new Map<string, Session>();
  #sweep: NodeJS.Timeout;

  constructor(options: WebSessionsOptions) {
    this.#log = options.log;
    this.idleMs = options.idleMs ?? WEB_SESSION_IDLE_MS;
    this.maxMs = options.maxMs ?? WEB_SESSION_MAX_MS;
    this.perUser = options.perUser ?? WEB_SESSIONS_PER_USER;
    this.#now = options.now ?? Date.now;
    this.#sweep = setInterval(() => this.sweep(), Math.min(WEB_SWEEP_INTERVAL_MS, this.idleMs));
    this.#sweep.unref();
  }

  /** Sessions open now. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * A new session (a fresh id at every login: no fixation) for `gateway`, a connection that
   * just logged in as `user`. Her oldest session ends if she already holds `perUser`.
   */
  create(user: string, gateway: Connection, remote: string, method: 'password' | 'link'): WebSession {
    const session = new Session(user, gateway, remote, method, this.#now(), this.maxMs, this.#now);
    const mine = [...this.#byId.values()].filter((s) => s.user === user);
    for (const old of mine.slice(0, Math.max(0, mine.length - this.perUser + 1))) this.end(old, 'replaced');
    this.#byId.set(session.id, session);
    // Closed from the gateway's side (revoked at reload, gateway stopping) or lost: the session goes with it.
    gateway.once('close', () => this.end(session, 'gateway-closed'));
    if (gateway.closed) this.end(session, 'gateway-closed');
    this.#log.info({ client: remote, user, method }, 'web login');
    return session;
  }

  /** The live session with this cookie value (its use is activity), or null. */
  get(id: string | undefined): WebSession | null {
    if (id === undefined || id === '') return null;
    const session = this.#byId.get(id);
    if (!session) return null;
    const why = this.#expired(session, this.#now());
    if (why) {
      this.end(session, why);
      return null;
    }
    session.lastSeenAt = this.#now();
    return session;
  }

  /** End `session`: WebSockets closed with 4401, gateway connection closed. Idempotent. */
  end(session: WebSession, reason: SessionEnd): void {
    const s = session as Session;
    if (s.ended) return;
    s.ended = true;
    this.#byId.delete(s.id);
    for (const socket of s.sockets) {
      try {
        socket.close(WS_CLOSE_SESSION_ENDED, 'session ended');
      } catch {
        // already closing
      }
    }
    s.sockets.clear();
    if (!s.gateway.closed) void s.gateway.close().catch(() => {});
    const level = reason === 'gateway-closed' ? 'warn' : 'info';
    this.#log[level]({ client: s.remote, user: s.user, reason, ageMs: this.#now() - s.createdAt }, reason === 'logout' ? 'web logout' : 'web session ended');
  }

  /** End the sessions past their idle or absolute limit. */
  sweep(): void {
    const now = this.#now();
    for (const session of [...this.#byId.values()]) {
      const why = this.#expired(session, now);
      if (why) this.end(session, why);
    }
  }

  /** End every session and stop sweeping (the console stops). */
  endAll(reason: SessionEnd = 'shutdown'): void {
    clearInterval(this.#sweep);
    for (const session of [...this.#byId.values()]) this.end(session, reason);
  }

  #expired(session: Session, now: number): SessionEnd | null {
    if (now >= session.expiresAt.getTime()) return 'expired';
    // An open WebSocket (a terminal) is use: only a session with none can go idle.
    if (session.sockets.size > 0) {
      session.lastSeenAt = now;
      return null;
    }
    return now - session.lastSeenAt >= this.idleMs ? 'idle' : null;
  }
}
