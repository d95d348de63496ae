/**
 * Brute-force protection. Failed logins back off exponentially per source address (all
 * methods) and per user (passwords only: keys cannot be guessed, and a per-user lockout
 * on keys would let anyone lock a user out). After `lockoutAfter` failures the source or
 * user is locked out for `lockoutMs` — for passwords only: a key or token cannot be
 * guessed, and many people share one address (NAT, a bastion), so others' failures must
 * not lock out someone holding a strong credential (docs/policy.md#lock-out). Successful
 * logins are never delayed. Locks can be listed and lifted. The clock is injectable so
 * tests need no sleeps.
 */
export interface ThrottleOptions {
  /** First delay after a failure; doubles with each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  lockoutAfter?: number;
  lockoutMs?: number;
  /** Forget failures older than this. */
  windowMs?: number;
  /**
   * Most records kept per map (addresses, user names). Past it the least recently failed
   * unlocked record goes first, then the least recently failed lock: a source with many
   * addresses (an IPv6 /64, 127.0.0.0/8) must not grow the daemon without bound.
   */
  maxRecords?: number;
  now?: () => number;
}

interface Record_ {
  failures: number;
  last: number;
  lockedUntil: number;
}

/** A lock in force: on a source address or (passwords) a user name. */
export interface LockInfo {
  kind: 'address' | 'user';
  key: string;
  failures: number;
  until: Date;
}

export const DEFAULT_THROTTLE = { baseDelayMs: 250, maxDelayMs: 8_000, lockoutAfter: 10, lockoutMs: 15 * 60_000, windowMs: 15 * 60_000, maxRecords: 10_000 };

export class AuthThrottle {
  #options: Required<Omit<ThrottleOptions, 'now'>>;
  #now: () => number;
  #byAddress = new Map<string, Record_>();
  #byUser = new Map<string, Record_>();
  #lastSweep: number;

  constructor(options: ThrottleOptions = {}) {
    this.#options = { ...DEFAULT_THROTTLE, ...options } as Required<Omit<ThrottleOptions, 'now'>>;
    this.#now = options.now ?? Date.now;
    this.#lastSweep = this.#now();
  }

  /** Records held (failures remembered or locks in force), per map. */
  get size(): { addresses: number; users: number } {
    return { addresses: this.#byAddress.size, users: this.#byUser.size };
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
    // Records are only added here, so this is where expired ones are dropped: a record is
    // otherwise only forgotten when its own address or user comes back.
    if (now - this.#lastSweep >= Math.min(this.#options.windowMs, this.#options.lockoutMs)) this.sweep();
    let delay = this.#bump(this.#byAddress, address, now);
    if (passwordUser !== undefined) delay = Math.max(delay, this.#bump(this.#byUser, passwordUser, now));
    return delay;
  }

  /**
   * A login worked: forget the user's failures, and the address's unless it is locked — one
   * person's success behind a shared address must not reopen it to another's guessing. Only
   * a password login counts: the failures are password guesses, and the owner logging in
   * with a key must not reset a guesser's count (or lift the user's lock) for another try.
   */
  success(address: string, user: string, method: string = 'password'): void {
    if (method !== 'password') return;
    const changed = this.#isLocked(this.#byUser.get(user));
    if (!this.#isLocked(this.#byAddress.get(address))) this.#byAddress.delete(address);
    this.#byUser.delete(user);
    if (changed) this.onLocksChanged?.();
  }

  /** Called when a lock is set or lifted (the daemon keeps `locks.json` up to date). */
  onLocksChanged: (() => void) | null = null;

  /** The locks in force now, addresses first. */
  locks(): LockInfo[] {
    const now = this.#now();
    const out: LockInfo[] = [];
    for (const [kind, map] of [['address', this.#byAddress], ['user', this.#byUser]] as const) {
      for (const [key, record] of map) {
        if (record.lockedUntil > now) out.push({ kind, key, failures: record.failures, until: new Date(record.lockedUntil) });
      }
    }
    return out;
  }

  /**
   * Lift locks and forget failures: of one address or user name (`key`), of every address
   * (`'addresses'`), or all (`'*'`). Returns how many locks were lifted.
   */
  clear(which: string): number {
    const before = this.locks().length;
    if (which === '*' || which === 'addresses') this.#byAddress.clear();
    if (which === '*') this.#byUser.clear();
    if (which !== '*' && which !== 'addresses') {
      this.#byAddress.delete(which);
      this.#byUser.delete(which);
    }
    const lifted = before - this.locks().length;
    if (lifted > 0) this.onLocksChanged?.();
    return lifted;
  }

  #isLocked(record: Record_ | undefined): boolean {
    return record !== undefined && record.lockedUntil > this.#now();
  }

  /** Drop forgotten records (called now and then so memory stays bounded). */
  sweep(): void {
    const now = this.#now();
    this.#lastSweep = now;
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

  /** Keep `map` within maxRecords; true if a lock in force had to go. */
  #trim(map: Map<string, Record_>, now: number): boolean {
    let evictedLock = false;
    while (map.size > this.#options.maxRecords) {
      let victim: string | undefined;
      for (const [key, record] of map) {
        if (record.lockedUntil <= now) {
          victim = key;
          break;
        }
      }
      if (victim === undefined) {
        victim = map.keys().next().value as string;
        evictedLock = true;
      }
      map.delete(victim);
    }
    return evictedLock;
  }

  #bump(map: Map<string, Record_>, key: string, now: number): number {
    const record = this.#live(map, key, now) ?? { failures: 0, last: now, lockedUntil: 0 };
    record.failures += 1;
    record.last = now;
    const wasLocked = record.lockedUntil > now;
    if (record.failures >= this.#options.lockoutAfter) record.lockedUntil = now + this.#options.lockoutMs;
    // Re-inserted, so the map's order is the order of last failure (oldest first).
    map.delete(key);
    map.set(key, record);
    const evictedLock = this.#trim(map, now);
    if ((!wasLocked && record.lockedUntil > now) || evictedLock) this.onLocksChanged?.();
    return Math.min(this.#options.baseDelayMs * 2 ** (record.failures - 1), this.#options.maxDelayMs);
  }
}


