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
import { OneTimeLogins } from '../auth/one-time-logins.js';
import { registeredWebConsole, type GatewayWebOptions, type WebConsoleHandle, type WebConsoleStarter } from './web-hook.js';
import { webLoginOp } from './web-login-op.js';
import { auditOp } from './audit-op.js';

export { registerWebConsole, type GatewayWebOptions, type WebConsoleHandle, type WebConsoleStarter } from './web-hook.js';

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
  /**
   * Serve the web console over HTTPS too (`shellwire gateway --web`, docs/web.md), started by
   * `listen()`. Each browser login is one more client connection to this gateway, in process.
   */
  web?: GatewayWebOptions;
  /** What starts the console (default: src/web/web-console.ts's, registered when it is loaded). */
  webConsole?: WebConsoleStarter<Gateway>;
}

export class Gateway {
  readonly server: Server;
  readonly key: GatewayKey;
  readonly pool: HostPool;
  readonly inventoryFile: string;
  #inventory: Inventory;
  #named: boolean;
  #pruneTimer: NodeJS.Timeout | null = null;
  #webOptions: GatewayWebOptions | null = null;
  #webStarter: WebConsoleStarter<Gateway> | null = null;
  #web: WebConsoleHandle | null = null;
  #log: Logger = silentLogger();
  /** One-time web login tokens (`web-login` op), with `web` only. */
  readonly oneTimeLogins: OneTimeLogins | null = null;

  private constructor(server: Server, key: GatewayKey, pool: HostPool, inventoryFile: string, inventory: Inventory, named: boolean, oneTimeLogins: OneTimeLogins | null) {
    this.#named = named;
    this.oneTimeLogins = oneTimeLogins;
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
    const { inventory: _i, recordings: _r, recordingRetentionDays: retention, ops, onBehalfOf: _b, hostConnectTimeoutMs: _t, maxSpoolBytes: _m, pushParallel: _p, maxChannelsPerOperatorHost: cap, maxConnectionsPerHost: conns, web, webConsole, ...serverOptions } = options;
    const starter = webConsole ?? registeredWebConsole<Gateway>();
    if (web && !starter) throw new TypeError("GatewayOptions.web needs the web console: import 'src/web/web-console.js' (it registers itself) or pass webConsole");
    const oneTimeLogins = web ? new OneTimeLogins({ ...(web.linkTtlMs !== undefined ? { ttlMs: web.linkTtlMs } : {}), ...(web.clock ? { now: web.clock } : {}) }) : null;
    for (const [name, value] of [['maxChannelsPerOperatorHost', cap], ['maxConnectionsPerHost', conns]] as const) {
      if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new RangeError(`${name} must be a whole number of at least 1, got ${value}`);
    }
    if (retention !== undefined && !(retention > 0)) throw new RangeError(`recordingRetentionDays must be a number of days above 0, got ${retention}`);
    const webLogin = webLoginOp(oneTimeLogins, () => holder.gateway?.webPublicUrl ?? null);
    // `audit` reads the server's own log, which exists once the server does (below).
    const allOps: [string, GatewayOp][] = [
      ...(options.recordings ? recordingOps(options.recordings) : []), ['web-login', webLogin], ['audit', auditOp(() => holder.gateway?.server.audit ?? null)], ...(ops ?? []),
    ];
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
      ...(oneTimeLogins ? { oneTimeLogins } : {}),
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
    const gateway = new Gateway(server, key, pool, inventoryFile, inventory, options.inventory !== undefined, oneTimeLogins);
    gateway.#log = log;
    if (web) {
      gateway.#webOptions = web;
      gateway.#webStarter = starter;
    }
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

  /** Listen for operators; with `web`, start the web console too (its address: `webAddress`). */
  async listen(): Promise<AddressInfo> {
    const address = await this.server.listen();
    if (this.#webOptions && this.#webStarter && !this.#web) {
      try {
        this.#web = await this.#webStarter(this, this.#webOptions, this.#log);
      } catch (err) {
        await this.server.close(0);
        throw err;
      }
    }
    return address;
  }

  /** The web console's address once `listen()` started it; null without `web`. */
  get webAddress(): AddressInfo | null {
    return this.#web?.address ?? null;
  }

  /** The web console's `https://HOST:PORT/` (its listening address); null without one. */
  get webUrl(): string | null {
    return this.#web?.url ?? null;
  }

  /** Where browsers reach the console (one-time links point there; see WebConsoleHandle.publicUrl); null without one. */
  get webPublicUrl(): string | null {
    return this.#web?.publicUrl ?? null;
  }

  /** Stop the web console (ending its sessions), then serving operators, then close the pooled host connections. Never rejects. */
  async close(graceMs?: number): Promise<void> {
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#pruneTimer = null;
    const web = this.#web;
    this.#web = null;
    await web?.close().catch(() => {});
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
