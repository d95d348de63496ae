/**
 * A gateway (bastion): a `Server` whose exec, session and file kinds are relays to inventory
 * hosts (relay-channel.ts) and which adds the `gateway` kind (gateway-kind.ts). Everything
 * else is a daemon's: TLS identity, users.yaml logins, throttling, the audit log.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Server, type ServerOptions } from '../server/server.js';
import type { ChannelFactory } from '../server/channel-host.js';
import { emptyInventory, loadInventory, type Inventory } from '../fleet/inventory.js';
import { silentLogger } from '../silent-logger.js';
import { DEFAULT_GATEWAY_HOST, DEFAULT_GATEWAY_PORT, defaultGatewayStateDir, gatewayInventoryPath } from './gateway-config.js';
import { loadOrCreateGatewayKey, type GatewayKey } from './gateway-key.js';
import { HostPool } from './host-pool.js';
import { RelayChannel, type RelayContext } from './relay-channel.js';
import { gatewayChannelFactory, gatewayOps, recordingOps, type GatewayOp } from './gateway-kind.js';

/** How often recordings past their retention are removed. */
export const RECORDING_PRUNE_INTERVAL_MS = 24 * 3_600_000;
import type { RecordingStore } from '../audit/recording.js';
import { FanoutPut } from './fanout-put.js';
import { auditOp } from './audit-op.js';

export interface GatewayOptions extends Omit<ServerOptions, 'channelKinds' | 'gateway'> {
  /** The inventory file (default `<state dir>/inventory.yaml`); the only places the gateway connects to. */
  inventory?: string;
  /**
   * Where terminal sessions (and exec output, per operator) are recorded (src/audit/recording.ts;
   * `shellwire gateway` gives `<state dir>/recordings`); none when absent. With it the `gateway`
   * kind also serves the ops `recordings` and `recording`.
   */
  recordings?: RecordingStore;
  /**
   * Remove recordings older than this many days now and every 24 h (default: never). Needs
   * `recordings`. Each prune is logged.
   */
  recordingRetentionDays?: number;
  /** More `gateway` ops. */
  ops?: Iterable<[string, GatewayOp]>;
  /** Send `onBehalfOf` to the hosts (default true). */
  onBehalfOf?: boolean;
  /** Connect timeout towards hosts (ms). */
  hostConnectTimeoutMs?: number;
  /** A put to many hosts: the largest file spooled (bytes; default 16 GiB) and hosts pushed to at once (default 16). */
  maxSpoolBytes?: number;
  pushParallel?: number;
  /** One operator's channels to one host at once, across her connections (default 256, relay-messages.ts). */
  maxChannelsPerOperatorHost?: number;
  /** Pooled connections to one host at most, opened as they fill up (default 4, host-pool.ts). */
  maxConnectionsPerHost?: number;
}

export class Gateway {
  readonly server: Server;
  readonly key: GatewayKey;
  readonly pool: HostPool;
  readonly inventoryFile: string;
  #inventory: Inventory;
  #named: boolean;
  #pruneTimer: NodeJS.Timeout | null = null;

  private constructor(server: Server, key: GatewayKey, pool: HostPool, inventoryFile: string, inventory: Inventory, named: boolean) {
    this.#named = named;
    this.server = server;
    this.key = key;
    this.pool = pool;
    this.inventoryFile = inventoryFile;
    this.#inventory = inventory;
  }

  /**
   * Load (or on first start create) the gateway's identity, key and users; read the inventory.
   * @throws {UsageError} a broken users.yaml or inventory (`SW_ERR_BAD_CONFIG`, `SW_ERR_BAD_INVENTORY`), an unusable state dir or key.
   */
  static async create(options: GatewayOptions = {}): Promise<Gateway> {
    const stateDir = options.stateDir ?? defaultGatewayStateDir();
    const log: Logger = options.logger ?? silentLogger();
    const key = loadOrCreateGatewayKey(stateDir);
    const inventoryFile = options.inventory ?? gatewayInventoryPath(stateDir);
    // A missing file is an empty inventory (no host reachable) only for the default path.
    const inventory = readInventory(inventoryFile, options.inventory !== undefined);
    const pool = new HostPool({
      stateDir, keyFile: key.file, log,
      ...(options.hostConnectTimeoutMs !== undefined ? { connectTimeoutMs: options.hostConnectTimeoutMs } : {}),
      ...(options.maxConnectionsPerHost !== undefined ? { maxConnectionsPerHost: options.maxConnectionsPerHost } : {}),
    });
    const holder: { gateway: Gateway | null; inventory: Inventory } = { gateway: null, inventory };
    const finishing = new Set<Promise<void>>();
    const ctx: RelayContext = {
      pool,
      inventory: () => holder.gateway?.inventory ?? holder.inventory,
      log,
      recordings: options.recordings,
      finishing,
      ...(options.onBehalfOf !== undefined ? { onBehalfOf: options.onBehalfOf } : {}),
      ...(options.maxChannelsPerOperatorHost !== undefined ? { maxChannelsPerOperatorHost: options.maxChannelsPerOperatorHost } : {}),
      openChannels: new Map(),
    };
    const relay: ChannelFactory = (id, host, request) => new RelayChannel(id, host, request, ctx);
    // A file put naming `hosts` is one upload pushed to many hosts (fanout-put.ts); it refuses
    // `hosts` on any other kind or op, so no relay ever forwards the field.
    const fanout = { pool, inventory: ctx.inventory, stateDir, maxSpoolBytes: options.maxSpoolBytes, parallel: options.pushParallel, onBehalfOf: options.onBehalfOf };
    const relayed: ChannelFactory = (id, host, request) => (request.hosts !== undefined ? new FanoutPut(host, request, fanout) : relay(id, host, request));
    const { inventory: _i, recordings: _r, recordingRetentionDays: retention, ops, onBehalfOf: _b, hostConnectTimeoutMs: _t, maxSpoolBytes: _m, pushParallel: _p, maxChannelsPerOperatorHost: cap, maxConnectionsPerHost: conns, ...serverOptions } = options;
    for (const [name, value] of [['maxChannelsPerOperatorHost', cap], ['maxConnectionsPerHost', conns]] as const) {
      if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new RangeError(`${name} must be a whole number of at least 1, got ${value}`);
    }
    if (retention !== undefined && !(retention > 0)) throw new RangeError(`recordingRetentionDays must be a number of days above 0, got ${retention}`);
    // `audit` reads the server's own log, which exists once the server does (below).
    const allOps = [...(options.recordings ? recordingOps(options.recordings) : []), ['audit', auditOp(() => holder.gateway?.server.audit ?? null)] as [string, GatewayOp], ...(ops ?? [])];
    const server = await Server.create({
      host: DEFAULT_GATEWAY_HOST,
      port: DEFAULT_GATEWAY_PORT,
      // Nothing runs at the gateway itself: no spawner helper, no cgroups.
      spawner: false,
      containment: 'process-group',
      ...serverOptions,
      stateDir,
      logger: log,
      gateway: true,
      // The end rows of recordings still being flushed go in before the audit log closes.
      beforeAuditClose: async () => {
        while (finishing.size > 0) await Promise.allSettled([...finishing]);
      },
      channelKinds: [
        ['exec', relayed],
        ['session', relayed],
        ['file', relayed],
        ['gateway', gatewayChannelFactory(gatewayOps(ctx.inventory, allOps, (host) => pool.get(host)))],
      ],
    });
    const gateway = new Gateway(server, key, pool, inventoryFile, inventory, options.inventory !== undefined);
    holder.gateway = gateway;
    if (options.recordings && retention !== undefined) gateway.#keepPruning(options.recordings, retention, log);
    return gateway;
  }

  /** Prune now and every 24 h; the timer does not keep the process alive. A failure is logged, not fatal. */
  #keepPruning(store: RecordingStore, days: number, log: Logger): void {
    const prune = () => {
      try {
        const removed = store.prune(days);
        log.info({ removed, retentionDays: days }, `recordings: removed ${removed} older than ${days} days`);
      } catch (err) {
        log.error({ retentionDays: days, err: (err as Error).message }, 'recordings: cannot remove old recordings');
      }
    };
    prune();
    this.#pruneTimer = setInterval(prune, RECORDING_PRUNE_INTERVAL_MS);
    this.#pruneTimer.unref();
  }

  /** The inventory in force. */
  get inventory(): Inventory {
    return this.#inventory;
  }

  /** Re-read the inventory (SIGHUP); a broken file keeps the old one. Never throws. */
  reloadInventory(): { ok: true; hosts: number } | { ok: false; error: string } {
    try {
      this.#inventory = readInventory(this.inventoryFile, this.#named);
      return { ok: true, hosts: this.#inventory.hosts.length };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  listen(): Promise<AddressInfo> {
    return this.server.listen();
  }

  /** Stop serving operators, then close the pooled host connections. Never rejects. */
  async close(graceMs?: number): Promise<void> {
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#pruneTimer = null;
    await this.server.close(graceMs);
    await this.pool.close();
  }
}

/** The named inventory must exist; the default one may be missing (then no host is reachable). */
function readInventory(file: string, named: boolean): Inventory {
  try {
    return loadInventory(file);
  } catch (err) {
    if (!named && (err as { message?: string }).message?.includes('ENOENT')) return emptyInventory();
    throw err;
  }
}
