/**
 * A token bucket checked synchronously (fleet/discovery.ts's UDP answers, server/nats-agent.ts's
 * NATS discovery answers): `ratePerSecond` tokens a second, at most `burst` held; time in
 * milliseconds of `performance.now()` unless given.
 */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  constructor(ratePerSecond: number, burst: number, now = performance.now()) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /** Whether one more event fits now, without spending it (see `take`). */
  has(now = performance.now()): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    return this.#tokens >= 1;
  }

  /** Whether one more event fits; if it does, it is spent. */
  take(now = performance.now()): boolean {
    if (!this.has(now)) return false;
    this.#tokens -= 1;
    return true;
  }
}
