/**
 * One pooled connection per inventory host, shared by every operator's channels: opened on
 * first use with the gateway's own key, logging in as the host's inventory `user:` (default
 * `gateway`), host keys pinned in the gateway's known_hosts (trust on first use; a changed
 * key is refused). A connection that died is replaced on the next use. When every connection
 * to a host holds as many channels as the host allows (its --max-channels), another is
 * opened, up to `maxConnectionsPerHost`: operators are not locked out of a host because
 * others keep it busy (each operator's own share is capped by the relay).
 */
import type { Logger } from 'pino';
import { connect } from '../client/connect.js';
import type { Connection } from '../client/connection.js';
import type { FleetHost } from '../fleet/inventory.js';
import { ErrorCode, RequestError } from '../errors.js';
import { isNatsUrl } from '../transport/nats-connect.js';

/** Pooled connections to one host at most (each takes the host's --max-channels channels). */
export const DEFAULT_MAX_CONNECTIONS_PER_HOST = 4;

/** The host user the gateway logs in as when the inventory names none. */
export const DEFAULT_GATEWAY_LOGIN = 'gateway';

export interface HostPoolOptions {
  /** The gateway's state dir: known_hosts lives here. */
  stateDir: string;
  /** The gateway's private key file. */
  keyFile: string;
  log: Logger;
  connectTimeoutMs?: number;
  /** Keepalive of the pooled connections (default the client's). */
  keepaliveMs?: number;
  /** Connections to one host at most (default DEFAULT_MAX_CONNECTIONS_PER_HOST). */
  maxConnectionsPerHost?: number;
  /** NATS credentials for hosts with `via: nats://…`. */
  natsCreds?: string;
}

export class HostPool {
  #options: HostPoolOptions;
  /** By host (name, address, port, login): the live connections. */
  #live = new Map<string, Connection[]>();
  /** Attempts in flight, shared by channels that open meanwhile (one dial per host). */
  #pending = new Map<string, Promise<Connection>>();
  #closed = false;

  constructor(options: HostPoolOptions) {
    this.#options = options;
  }

  /** Pooled connections that are up. */
  get size(): number {
    let n = 0;
    for (const conns of this.#live.values()) n += conns.length;
    return n;
  }

  /**
   * A live connection to `host` with room for a channel, connecting when there is none (or
   * they died, or all are full and the pool may grow).
   * @throws what `connect()` throws (rejects): unreachable, host key changed, login refused;
   *   SW_ERR_TOO_MANY_CHANNELS when every connection the pool may open is full.
   */
  get(host: FleetHost): Promise<Connection> {
    if (this.#closed) return Promise.reject(new Error('the gateway is shutting down'));
    const key = `${host.name}\0${host.address}\0${host.port}\0${host.user ?? ''}\0${host.via ?? ''}`;
    const live = (this.#live.get(key) ?? []).filter((c) => !c.closed);
    const roomy = live.find((c) => c.channelCount < c.server.maxChannels);
    if (roomy) return Promise.resolve(roomy);
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const most = this.#options.maxConnectionsPerHost ?? DEFAULT_MAX_CONNECTIONS_PER_HOST;
    if (live.length >= most) {
      return Promise.reject(new RequestError(ErrorCode.TOO_MANY_CHANNELS, `all ${live.length} connections to host ${host.name} are full`));
    }
    // An inventory host with `via: nats://…` is an agent behind NATS: a tunnel to it (its key
    // pinned under nats:NAME), the same TLS, key login and policy as over TCP (docs/nats.md).
    const viaNats = host.via !== undefined && isNatsUrl(host.via) ? host.via : undefined;
    const attempt = connect(
      { user: host.user ?? DEFAULT_GATEWAY_LOGIN, host: viaNats !== undefined ? host.name : host.address, port: host.port },
      {
        ...(viaNats !== undefined ? { via: viaNats, ...(this.#options.natsCreds !== undefined ? { natsCreds: this.#options.natsCreds } : {}) } : {}),
        identity: this.#options.keyFile,
        home: this.#options.stateDir,
        // Nothing from the gateway's environment (no agent, no SHELLWIRE_TOKEN): only its key.
        env: {},
        hostKeyPolicy: 'accept-new',
        ...(this.#options.connectTimeoutMs !== undefined ? { connectTimeoutMs: this.#options.connectTimeoutMs } : {}),
        ...(this.#options.keepaliveMs !== undefined ? { keepaliveMs: this.#options.keepaliveMs } : {}),
        onHostKeyAdded: (name, fingerprint, file) => this.#options.log.warn({ host: name, fingerprint, knownHosts: file }, 'gateway: new host key pinned (trust on first use)'),
      },
    );
    this.#pending.set(key, attempt);
    attempt.then(
      (conn) => {
        this.#pending.delete(key);
        if (this.#closed) return conn.destroy();
        this.#live.set(key, [...(this.#live.get(key) ?? []).filter((c) => !c.closed), conn]);
        conn.on('close', () => {
          const rest = (this.#live.get(key) ?? []).filter((c) => c !== conn);
          if (rest.length > 0) this.#live.set(key, rest);
          else this.#live.delete(key);
          this.#options.log.info({ host: host.name }, 'gateway: connection to host closed');
        });
      },
      () => this.#pending.delete(key),
    );
    return attempt;
  }

  /** Close every pooled connection (the hosts then stop what still runs on them). */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#live.values()].flat();
    this.#live.clear();
    await Promise.allSettled(all.map((c) => c.close({ timeoutMs: 1_000 })));
  }
}
