/**
 * One connection per host, opened on first use and reused for every later command (a
 * `ConnectionPool` outlives a run when the caller passes it in); hosts behind a gateway
 * (`host.via`) share one connection to it, each host a relay view on it (docs/gateway.md:
 * `run --via` opens one connection to the gateway and one channel per host); and a token bucket that
 * spreads connection starts so a thousand TLS handshakes do not land in the same
 * millisecond (SYN backlog, the daemons' handshake CPU, our own event loop).
 */
import { checkConnectOptions, connect, type ConnectOptions } from '../client/connect.js';
import { MAX_DELAY_MS, checkInteger, checkOptionsObject } from '../client/option-checks.js';
import type { Connection } from '../client/connection.js';
import { formatTarget, type Target } from '../client/target.js';
import { parseVia } from '../client/via.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import { ConnectionError, ErrorCode, RequestError, ShellwireError } from '../errors.js';
import { asyncDispose } from '../dispose.js';
import type { FleetHost } from './inventory.js';
import { connectArgs } from './resolve-host.js';

/** Connection starts per second when spreading (`connectRate`). */
export const DEFAULT_CONNECT_RATE = 2_000;
/** A host that answers "too many connections" is retried this many times, with backoff. */
export const CONNECT_RETRIES = 2;
const RETRY_BASE_MS = 100;

export interface PoolOptions {
  /** Base options for `connect()`: token, tokenFile, home, hostKeyPolicy, env, keepaliveMs… */
  connect?: ConnectOptions;
  connectTimeoutMs?: number;
  /**
   * An open connection to a gateway that every host with a `via` goes through (each host a
   * relay view on it), instead of a connection the pool opens to `via` itself. The pool never
   * closes it: its owner does (the web console's session connection, already logged in).
   */
  gateway?: Connection;
}

export class ConnectionPool implements AsyncDisposable {
  #options: PoolOptions;
  #connections = new Map<string, Promise<Connection>>();
  /** Gateway connections, by gateway and login; the relay views on them are in `#connections`. */
  #gateways = new Map<string, Promise<Connection>>();

  /** @throws {RequestError} `SW_ERR_BAD_REQUEST` for an invalid option (as `connect()` would give each host). */
  constructor(options: PoolOptions = {}) {
    checkPoolOptions(options);
    this.#options = options;
  }

  /** True when an open (or opening) connection to `host` exists. */
  has(host: FleetHost): boolean {
    return this.#connections.has(poolKey(host));
  }

  /**
   * The connection to `host`: the open one, or a new one.
   *
   * @throws {ShellwireError} (rejects) what `connect()` throws: `ConnectionError`,
   *   `HostVerificationError`, `AuthenticationError`, `ProtocolError`.
   */
  get(host: FleetHost, signal?: AbortSignal): Promise<Connection> {
    const key = poolKey(host);
    const existing = this.#connections.get(key);
    if (existing) return existing;
    const opening = this.#open(host, signal);
    this.#connections.set(key, opening);
    opening.then(
      (conn) => conn.once('close', () => {
        if (this.#connections.get(key) === opening) this.#connections.delete(key);
      }),
      () => {
        if (this.#connections.get(key) === opening) this.#connections.delete(key);
      },
    );
    return opening;
  }

  /** Drop the host's connection at once (its commands are killed by the daemon). */
  destroy(host: FleetHost): void {
    const key = poolKey(host);
    const opening = this.#connections.get(key);
    this.#connections.delete(key);
    opening?.then((conn) => conn.destroy(), () => {});
  }

  get size(): number {
    return this.#connections.size;
  }

  /** `await using pool = new ConnectionPool(…)`: every connection closed when the block ends. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Close every connection (running commands are killed by their daemons). */
  async close(): Promise<void> {
    const all = [...this.#connections.values(), ...this.#gateways.values()];
    this.#connections.clear();
    this.#gateways.clear();
    await Promise.all(all.map((p) => p.then((conn) => conn.close(), () => {})));
  }

  /**
   * A view on the shared gateway connection whose channels name `host` (destroying it closes
   * only this host's channels). The gateway connection opens on first use, with the first
   * host's abort signal; a host aborted later does not abort the others' connection.
   */
  async #relay(host: FleetHost, signal?: AbortSignal): Promise<Connection> {
    const conn = await this.gateway(host, signal);
    return conn.relay(host.name);
  }

  /**
   * The connection to `host.via`'s gateway itself, shared by every host behind it that logs
   * in the same way (identity, token file): opened on first use, reopened after it closed.
   * `run --via` asks it for the host list before the hosts' channels use it.
   *
   * @throws {ShellwireError} (rejects) what `connect()` throws for the gateway.
   */
  gateway(host: FleetHost, signal?: AbortSignal): Promise<Connection> {
    if (host.via === undefined) return Promise.reject(new TypeError(`${host.name} has no gateway (via).`));
    const given = this.#options.gateway;
    if (given) return given.closed ? Promise.reject(new ConnectionError(ErrorCode.CONNECTION_CLOSED, `The connection to the gateway ${host.via} is closed.`, { host: host.via })) : Promise.resolve(given);
    const gateway = parseVia(host.via);
    const key = `${gatewayKey(gateway)}|${host.identity ?? ''}|${host.tokenFile ?? ''}`;
    let opening = this.#gateways.get(key);
    if (!opening) {
      // As a direct host, with the host's name for messages: the gateway is where we log in.
      const direct: FleetHost = { ...host, address: gateway.host, port: gateway.port };
      delete direct.via;
      if (gateway.user !== undefined) direct.user = gateway.user;
      else delete direct.user;
      const started = this.#open(direct, signal);
      opening = started;
      this.#gateways.set(key, started);
      const forget = () => {
        if (this.#gateways.get(key) === started) this.#gateways.delete(key);
      };
      started.then((conn) => conn.once('close', forget), forget);
    }
    return opening;
  }

  async #open(host: FleetHost, signal?: AbortSignal): Promise<Connection> {
    // Through NATS each host is its own tunnel (connect() opens it; the NATS connection is shared).
    if (host.via !== undefined && !isNatsUrl(host.via)) return this.#relay(host, signal);
    const base = this.#options.connect ?? {};
    const { target, options } = connectArgs(host, base);
    if (this.#options.connectTimeoutMs !== undefined) options.connectTimeoutMs = this.#options.connectTimeoutMs;
    if (signal) options.signal = signal;
    // Many hosts at once: each debug line says which host it is about.
    if (base.debug) options.debug = (message) => base.debug!(`${host.name}: ${message}`);
    // known_hosts is parsed once and reused while unchanged (auth/known-hosts.ts), so a big
    // fleet does not re-read it per host.
    for (let attempt = 0; ; attempt++) {
      try {
        return await connect(target, options);
      } catch (err) {
        // A daemon at its connection limit asks us to come back later; others are final.
        const busy = err instanceof ShellwireError && err.code === ErrorCode.TOO_MANY_CONNECTIONS;
        if (!busy || attempt >= CONNECT_RETRIES || signal?.aborted) throw err;
        await new Promise((r) => setTimeout(r, RETRY_BASE_MS * 2 ** attempt * (0.5 + Math.random())));
      }
    }
  }
}

/** `PoolOptions` checked at once, so a mistake is one error, not the same failure per host. */
export function checkPoolOptions(options: PoolOptions): void {
  checkOptionsObject(options, 'the connection pool');
  if (options.connect !== undefined) checkConnectOptions(options.connect);
  checkInteger(options.connectTimeoutMs, 'connectTimeoutMs', { min: 1, max: MAX_DELAY_MS, unit: 'milliseconds' });
  if (options.gateway !== undefined && (typeof options.gateway !== 'object' || options.gateway === null || typeof (options.gateway as Connection).relay !== 'function')) {
    throw new RequestError(ErrorCode.BAD_REQUEST, 'The gateway option must be an open Connection to a gateway.');
  }
}

function poolKey(host: FleetHost): string {
  if (host.via !== undefined && isNatsUrl(host.via)) return `${host.user ?? ''}@nats:${host.name} via ${host.via}`;
  if (host.via !== undefined) return `${host.name} via ${gatewayKey(parseVia(host.via))}`;
  return `${host.user ?? ''}@${formatTarget({ host: host.address, port: host.port })}`;
}

function gatewayKey(gateway: Target): string {
  return `${gateway.user ?? ''}@${formatTarget(gateway)}`;
}

/**
 * Token bucket: `wait()` resolves when the caller may start one more connection. `burst`
 * starts go at once, then `ratePerSecond`. Waiters are served in order.
 */
export class StartSpreader {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last = performance.now();
  #tail: Promise<void> = Promise.resolve();

  constructor(ratePerSecond: number, burst: number) {
    this.#rate = ratePerSecond;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
  }

  wait(): Promise<void> {
    if (!Number.isFinite(this.#rate) || this.#rate <= 0) return Promise.resolve();
    const turn = this.#tail.then(() => this.#take());
    this.#tail = turn;
    return turn;
  }

  async #take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, ((1 - this.#tokens) * 1000) / this.#rate)));
    }
  }
}
