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
import { ErrorCode } from '../errors.js';
import type { Closable, SessionEnd, WebSession, WebSessionStore } from './web-types.js';
import { WEB_SESSION_IDLE_MS, WEB_SESSION_MAX_MS, WEB_SESSIONS_PER_USER, WEB_SWEEP_INTERVAL_MS, WS_CLOSE_SESSION_ENDED } from './web-config.js';

export type { SessionEnd };

/** Ended sessions remembered (by cookie value) so /api/session can say why one ended. */
const ENDED_REMEMBERED = 4096;

/** What the browser is told when its session has ended, by reason. */
export function sessionEndedMessage(ended: { reason: SessionEnd; detail?: string } | null): string {
  switch (ended?.reason) {
    case 'revoked': return `Your session ended: the gateway revoked your login (${ended.detail ?? 'it is no longer in force'}). Ask the administrator.`;
    case 'connection-lost': return 'Your session ended: its connection to the gateway was lost (overload or an error; the gateway\'s log says which). Log in again.';
    case 'idle': return 'Your session ended: it was unused for too long (30 minutes); log in again.';
    case 'expired': return 'Your session reached its time limit (12 hours); log in again.';
    case 'logout': return 'You logged out; log in again.';
    case 'replaced': return 'Your session was replaced by a newer login of yours (at most 16 at once, or a new login in this browser); log in again.';
    case 'shutdown': return 'Your session ended: the gateway was stopped or restarted; log in again.';
    default: return 'Not logged in, or the session ended; log in again.';
  }
}

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
  endedBecause: { reason: SessionEnd; detail?: string } | null = null;
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
  #ended = new Map<string, { reason: SessionEnd; detail?: string }>();
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
    gateway.once('close', () => this.#gatewayClosed(session));
    if (gateway.closed) this.#gatewayClosed(session);
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

  /** Why the session with this cookie value ended, if it ended lately; else null. */
  endedReason(id: string | undefined): { reason: SessionEnd; detail?: string } | null {
    if (id === undefined || id === '') return null;
    return this.#ended.get(id) ?? null;
  }

  /**
   * Its gateway connection closed without this store closing it: the gateway revoked the
   * login (GOODBYE SW_ERR_DENIED at a users.yaml reload), is stopping, or the connection
   * was lost (keepalive timeout under overload, an error). Each is told apart in the log.
   */
  #gatewayClosed(session: Session): void {
    if (session.ended) return;
    const why = session.gateway.closeReason;
    const reason: SessionEnd = why?.code === ErrorCode.DENIED ? 'revoked' : why?.code === ErrorCode.SERVER_SHUTTING_DOWN ? 'shutdown' : 'connection-lost';
    this.end(session, reason, why?.message);
  }

  /** End `session`: WebSockets closed with 4401, gateway connection closed. Idempotent. */
  end(session: WebSession, reason: SessionEnd, detail?: string): void {
    const s = session as Session;
    if (s.ended) return;
    s.ended = true;
    s.endedBecause = { reason, ...(detail !== undefined ? { detail } : {}) };
    this.#byId.delete(s.id);
    // Remembered (bounded) so /api/session can say why; the oldest memory goes first.
    this.#ended.set(s.id, s.endedBecause);
    if (this.#ended.size > ENDED_REMEMBERED) this.#ended.delete(this.#ended.keys().next().value!);
    for (const socket of s.sockets) {
      try {
        socket.close(WS_CLOSE_SESSION_ENDED, `session ended: ${reason}`);
      } catch {
        // already closing
      }
    }
    s.sockets.clear();
    if (!s.gateway.closed) void s.gateway.close().catch(() => {});
    const level = reason === 'revoked' || reason === 'connection-lost' ? 'warn' : 'info';
    this.#log[level]({ client: s.remote, user: s.user, reason, ...(detail !== undefined ? { detail } : {}), ageMs: this.#now() - s.createdAt }, reason === 'logout' ? 'web logout' : 'web session ended');
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
