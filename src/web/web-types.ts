/**
 * What the web console's routes share (docs/web.md): a browser session, and the
 * dependencies a route module is registered with. Routes act only through
 * `session.gateway`, a real client connection to the gateway (the browser is one more
 * client), never through gateway internals.
 */
import type { Logger } from 'pino';
import type { Connection } from '../client/connection.js';
import type { Gateway } from '../gateway/gateway.js';
import type { OpenGate, SocketLedger, WebLimits } from './admission.js';

/** What a session can close when it ends: a WebSocket (`ws`'s `close(code, reason)`). */
export interface Closable {
  close(code?: number, reason?: string): void;
}

/** One browser login. */
export interface WebSession {
  /** The cookie value (32 random bytes, base64url): used as a map key only, never logged. */
  readonly id: string;
  readonly user: string;
  /** The `x-csrf-token` every state-changing request must carry (32 random bytes, base64url). */
  readonly csrfToken: string;
  /** This session's logged-in connection to the gateway: every action is a channel on it. */
  readonly gateway: Connection;
  /** `web:IP:PORT` of the browser at login (logs, the audit trail). */
  readonly remote: string;
  /** How she logged in. */
  readonly method: 'password' | 'link';
  /** ms since the epoch. */
  readonly createdAt: number;
  lastSeenAt: number;
  /** When the session ends if nothing else ends it first (absolute limit; idle may come sooner). */
  readonly expiresAt: Date;
  /** Whether the session ended (its WebSockets are closed with 4401, its connection is closed). */
  readonly ended: boolean;
  /** Why it ended (null while live). */
  readonly endedBecause: { reason: SessionEnd; detail?: string } | null;
  /**
   * Close `socket` (code 4401) when the session ends; while any is registered the session
   * is not idle. Returns the function that unregisters it (call it when the socket closes).
   */
  track(socket: Closable): () => void;
  /** Mark activity (a WebSocket message): the idle timer starts again. */
  touch(): void;
}

/**
 * Why a session ended (logged, told by /api/session and the 4401 close reason): `revoked`
 * the gateway closed its connection because the login is no longer in force (users.yaml
 * reload); `connection-lost` its gateway connection failed otherwise (keepalive, overload);
 * `replaced` the same user's 17th login or a new login in the same browser.
 */
export type SessionEnd = 'logout' | 'idle' | 'expired' | 'replaced' | 'revoked' | 'connection-lost' | 'shutdown';

/** The session store (sessions.ts `WebSessions`). */
export interface WebSessionStore {
  /** A new session for a connection that just logged in as `user` (a fresh id: no fixation). */
  create(user: string, gateway: Connection, remote: string, method: 'password' | 'link'): WebSession;
  /** The live session with this cookie value (its use is activity), or null. */
  get(id: string | undefined): WebSession | null;
  /** End it: WebSockets closed with 4401, gateway connection closed. Idempotent. */
  end(session: WebSession, reason: SessionEnd): void;
  /** Why the session with this cookie value ended, if it ended lately (a bounded memory); else null. */
  endedReason(id: string | undefined): { reason: SessionEnd; detail?: string } | null;
}

/** What `registerApiRoutes` and the login routes are given. */
export interface WebDeps {
  gateway: Gateway;
  sessions: WebSessionStore;
  log: Logger;
  /**
   * Origins allowed on state-changing requests and WebSocket upgrades (web-config.ts
   * consoleOrigins: its address, the machine's names for a wildcard listen, `--web-origin`),
   * lower case; filled in once the console listens (its port may be 0 until then).
   */
  origins: readonly string[];
  /** The Host header values those origins stand for; any other Host is refused (421). */
  hosts: ReadonlySet<string>;
  /** What the console lets in at once (admission.ts). */
  limits: WebLimits;
  ledger: SocketLedger;
  opens: OpenGate;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireSession` (guards.ts) on every /api route that needs a session. */
    webSession?: WebSession;
    /** Set on an admitted WebSocket upgrade (guards.ts admitUpgrade): terminal opens wait their turn here. */
    webOpens?: OpenGate;
  }
}
