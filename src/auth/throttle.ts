/**
 * Brute-force protection. Failed logins back off exponentially per source address (all
 * methods) and per user (passwords only: keys cannot be guessed, and a per-user lockout
 * on keys would let anyone lock a user out). After `lockoutAfter` failures the source or
 * user is locked out for `lockoutMs`. Successful logins are never delayed. The clock is
 * injectable so tests need no sleeps.
 */
export interface ThrottleOptions {
  /** First delay after a failure; doubles with each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  lockoutAfter?: number;
  lockoutMs?: number;
  /** Forget failures older than this. */
  windowMs?: number;
  now?: () => number;
}

interface Record_ {
  failures: number;
  last: number;
  lockedUntil: number;
}

export const DEFAULT_THROTTLE = { baseDelayMs: 250, maxDelayMs: 8_000, lockoutAfter: 10, lockoutMs: 15 * 60_000, windowMs: 15 * 60_000 };

export class AuthThrottle {
  #options: Required<Omit<ThrottleOptions, 'now'>>;
  #now: () => number;
  #byAddress = new Map<string, Record_>();
  #byUser = new Map<string, Record_>();

  constructor(options: ThrottleOptions = {}) {
    this.#options = { ...DEFAULT_THROTTLE, ...options } as Required<Omit<ThrottleOptions, 'now'>>;
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds the address (or, for passwords, the user) stays locked out; 0 if not. */
  lockedFor(address: string, passwordUser?: string): number {
    const now = this.#now();
    const a = this.#live(this.#byAddress, address, now);
    const u = passwordUser === undefined ? undefined : this.#live(this.#byUser, passwordUser, now);
    return Math.max(0, (a?.lockedUntil ?? 0) - now, (u?.lockedUntil ?? 0) - now);
  }

  /** Record a failure; returns how long to hold the refusal back. */
  failure(address: string, passwordUser?: string): number {
    const now = this.#now();
    let delay = this.#bump(this.#byAddress, address, now);
    if (passwordUser !== undefined) delay = Math.max(delay, this.#bump(this.#byUser, passwordUser, now));
    return delay;
  }

  success(address: string, user: string): void {
    this.#byAddress.delete(address);
    this.#byUser.delete(user);
  }

  /** Drop forgotten records (called now and then so memory stays bounded). */
  sweep(): void {
    const now = this.#now();
    for (const map of [this.#byAddress, this.#byUser]) {
      for (const key of map.keys()) if (!this.#live(map, key, now)) map.delete(key);
    }
  }

  #live(map: Map<string, Record_>, key: string, now: number): Record_ | undefined {
    const record = map.get(key);
    if (!record) return undefined;
    if (record.lockedUntil <= now && now - record.last > this.#options.windowMs) {
      map.delete(key);
      return undefined;
    }
    return record;
  }

  #bump(map: Map<string, Record_>, key: string, now: number): number {
    const record = this.#live(map, key, now) ?? { failures: 0, last: now, lockedUntil: 0 };
    record.failures += 1;
    record.last = now;
    if (record.failures >= this.#options.lockoutAfter) record.lockedUntil = now + this.#options.lockoutMs;
    map.set(key, record);
    return Math.min(this.#options.baseDelayMs * 2 ** (record.failures - 1), this.#options.maxDelayMs);
  }
}


