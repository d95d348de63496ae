/**
 * One-time web logins (`shellwire web-login --via GW`, docs/web.md): an operator already
 * logged in to the gateway asks for a link; its token lets a browser log in once, within a
 * minute, as her and under the login she used (her key, token or password: login-in-force
 * keeps judging that one). Tokens live only in this process's memory, are kept as SHA-256
 * digests (the map key; the token itself is never stored), and are accepted by the
 * authenticator only on the web console's in-process connections (TransportPeer.origin).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from './principal.js';

/** How long a one-time login token stays valid. */
export const ONE_TIME_LOGIN_TTL_MS = 60_000;
/** Tokens waiting at once, in all: a bound on memory whatever operators ask for. */
export const MAX_ONE_TIME_LOGINS = 1024;
/** Tokens waiting at once for one user. */
export const MAX_ONE_TIME_LOGINS_PER_USER = 16;

interface Pending {
  login: Principal;
  expiresAt: number;
}

export interface OneTimeLoginsOptions {
  /** Token lifetime (ms); default ONE_TIME_LOGIN_TTL_MS. Tests shorten it. */
  ttlMs?: number;
  /** The clock (ms since the epoch). */
  now?: () => number;
}

/** The in-memory store of one-time web login tokens. */
export class OneTimeLogins {
  readonly ttlMs: number;
  #now: () => number;
  #pending = new Map<string, Pending>();

  constructor(options: OneTimeLoginsOptions = {}) {
    const ttl = options.ttlMs ?? ONE_TIME_LOGIN_TTL_MS;
    if (!(Number.isFinite(ttl) && ttl > 0)) throw new RangeError(`ttlMs must be a number of milliseconds above 0, got ${ttl}`);
    this.ttlMs = ttl;
    this.#now = options.now ?? Date.now;
  }

  /**
   * A new token for `login` (32 random bytes, base64url) and when it expires. The oldest
   * waiting token of the same user (or of anyone, at the global bound) is dropped to make room.
   */
  issue(login: Principal): { token: string; expiresAt: Date } {
    this.#prune();
    const mine = [...this.#pending].filter(([, p]) => p.login.name === login.name);
    if (mine.length >= MAX_ONE_TIME_LOGINS_PER_USER) this.#pending.delete(mine[0]![0]);
    if (this.#pending.size >= MAX_ONE_TIME_LOGINS) this.#pending.delete(this.#pending.keys().next().value!);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = this.#now() + this.ttlMs;
    // A copy: the login is judged later against users.yaml (login-in-force), never mutated here.
    this.#pending.set(digest(token), { login: { ...login }, expiresAt });
    return { token, expiresAt: new Date(expiresAt) };
  }

  /**
   * The login a token was issued for, once: the token is gone after this call whatever the
   * answer. null for an unknown, used or expired token.
   */
  take(token: string): Principal | null {
    const key = digest(token);
    const pending = this.#pending.get(key);
    if (!pending) return null;
    this.#pending.delete(key);
    return pending.expiresAt > this.#now() ? pending.login : null;
  }

  /** Tokens waiting (tests, metrics). */
  get size(): number {
    this.#prune();
    return this.#pending.size;
  }

  #prune(): void {
    const now = this.#now();
    for (const [key, pending] of this.#pending) if (pending.expiresAt <= now) this.#pending.delete(key);
  }
}

/** Map key of a token: its SHA-256 (a lookup by a digest tells no timing about the token). */
function digest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}
