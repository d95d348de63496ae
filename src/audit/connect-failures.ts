/**
 * Connections that fail before HELLO (a TLS handshake that fails, times out or is reset;
 * a connection dropped by the startup gate) are audited as `connect` rows with
 * `detail.ok: false`, bounded for floods: the first failure from a source address in a
 * minute is written at once; later ones from that address in the same minute are only
 * counted, and one summary row (`detail.repeated: N`) is written when the minute ends. At most
 * `MAX_SOURCES` addresses are tracked at a time; failures from others while the table is
 * full are counted under `address: null` the same way. So a flood costs at most
 * 2 × (MAX_SOURCES + 1) rows a minute, and a scan from one address two.
 */
import type { AuditEvent } from './audit-event.js';

export const CONNECT_FAILURE_WINDOW_MS = 60_000;
export const MAX_SOURCES = 1024;

interface Window {
  startedAt: number;
  /** Failures after the first in this window. */
  repeated: number;
  lastReason: unknown;
  lastRemote: string | null;
}

export class ConnectFailures {
  #write: (event: AuditEvent) => void;
  #now: () => number;
  #windows = new Map<string | null, Window>();
  #timer: NodeJS.Timeout | null = null;

  constructor(write: (event: AuditEvent) => void, now: () => number = Date.now) {
    this.#write = write;
    this.#now = now;
  }

  /**
   * A `connect` event with `detail.ok: false` (`connectFailedEvent`): `source` is the address
   * (the key), `address` the `ADDRESS:PORT` as accepted, `detail` its stage and reason.
   */
  record(event: AuditEvent): void {
    const { source, ...failure } = event;
    const address = source ?? null;
    const reason = failure.detail?.reason;
    const now = this.#now();
    this.#expire(now);
    const key = this.#windows.has(address) || this.#windows.size < MAX_SOURCES ? address : null;
    const window = this.#windows.get(key);
    if (window) {
      window.repeated += 1;
      window.lastReason = reason;
      window.lastRemote = key === null ? null : failure.address ?? null;
      return;
    }
    this.#windows.set(key, { startedAt: now, repeated: 0, lastReason: reason, lastRemote: failure.address ?? null });
    this.#write(key === null ? { ...failure, address: null, detail: { ...failure.detail, sources: 'many (table full)' } } : failure);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#expire(this.#now()), CONNECT_FAILURE_WINDOW_MS / 4);
      this.#timer.unref();
    }
  }

  /** Write the summaries of every window now (shutdown). */
  close(): void {
    this.#expire(Infinity);
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #expire(now: number): void {
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt < CONNECT_FAILURE_WINDOW_MS) continue;
      this.#windows.delete(key);
      if (window.repeated > 0) {
        this.#write({
          kind: 'connect',
          address: window.lastRemote,
          detail: { ok: false, repeated: window.repeated, since: new Date(window.startedAt).toISOString(), reason: window.lastReason },
        });
      }
    }
    if (this.#windows.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}
