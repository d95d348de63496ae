/**
 * The gateway's side of its web console (`shellwire gateway --web`, docs/web.md). The
 * console lives in src/web/, a layer above the gateway, so the gateway cannot import it:
 * src/web/web-console.ts registers its starter here when it is loaded, and a caller may also
 * hand one in (`GatewayOptions.webConsole`). The gateway starts it at `listen()` and stops it
 * at `close()`.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/** `GatewayOptions.web`: where and how the console serves HTTPS. */
export interface GatewayWebOptions {
  /** Listen address (`shellwire gateway --web HOST:PORT`; a bare port is 127.0.0.1). */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM certificate and key files (`--web-cert`, `--web-key`); default the gateway's own TLS identity. */
  cert?: string;
  key?: string;
  /** More origins (`https://name:port`) allowed on state-changing requests and WebSocket upgrades (`--web-origin`). */
  origins?: string[];
  /**
   * Reverse proxies (IP addresses or CIDR ranges, `--web-trust-proxy`) whose X-Forwarded-For
   * names the browser: only a request whose socket comes from one of them is keyed (login
   * throttle, logs, audit) on the address it forwards. Default none: the socket's address.
   */
  trustProxy?: string[];
  /**
   * The console's limits (src/web/web-config.ts, docs/web.md "Limits"); any left out keeps
   * its default. Tests shrink them.
   */
  limits?: {
    socketsPerSession?: number;
    socketsPerUser?: number;
    terminalsPerUser?: number;
    opensPerUser?: number;
    opensInFlight?: number;
    openWaitMs?: number;
    fdReserve?: number;
  };
  /** One-time web login token lifetime (ms); default 60 s (ONE_TIME_LOGIN_TTL_MS). Tests shorten it. */
  linkTtlMs?: number;
  /** Session idle and absolute limits (ms); default 30 min and 12 h (src/web/web-config.ts). Tests shorten them. */
  sessionIdleMs?: number;
  sessionMaxMs?: number;
  /** Where the bundled front end is (default `<package>/dist/ui`). */
  staticDir?: string;
  /** The clock (ms since the epoch) of one-time link and session expiry. Tests move it. */
  clock?: () => number;
}

/** A running console. */
export interface WebConsoleHandle {
  readonly address: AddressInfo;
  /** `https://HOST:PORT/` of the listening address (the banner's). */
  readonly url: string;
  /**
   * Where operators' browsers reach it, the one-time links' base: the first `origins` entry,
   * else `url` with a wildcard listen address (0.0.0.0, ::) replaced by this machine's name.
   */
  readonly publicUrl: string;
  /** Stop serving and end every browser session (their gateway connections close). Never rejects. */
  close(): Promise<void>;
}

/**
 * Starts the console for a gateway. `G` is gateway.ts's `Gateway`: this file cannot import
 * its type back (gateway.ts imports this one; the layers test forbids cycles).
 */
export type WebConsoleStarter<G> = (gateway: G, options: GatewayWebOptions, log: Logger) => Promise<WebConsoleHandle>;

let registered: unknown = null;

/** Called by src/web/web-console.ts when it is loaded. */
export function registerWebConsole<G>(starter: WebConsoleStarter<G>): void {
  registered = starter;
}

/** The registered starter, if the web console was loaded. */
export function registeredWebConsole<G>(): WebConsoleStarter<G> | null {
  return registered as WebConsoleStarter<G> | null;
}
