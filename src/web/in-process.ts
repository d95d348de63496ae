/**
 * A browser login is one more client connection to the gateway, opened inside the gateway
 * process: a duplex pair, the gateway's own `Server.handleConnection` on one end (the same
 * TLS 1.3, HELLO, authenticator and throttle as its TCP port, with the browser's address),
 * `connect()` on the other, pinned to the gateway's own fingerprint. The client side offers
 * ONLY what the browser typed: no environment, ssh-agent, key file or local token of the
 * gateway's own account could ever log a browser in.
 */
import { connect } from '../client/connect.js';
import type { Connection } from '../client/connection.js';
import type { Gateway } from '../gateway/gateway.js';
import { duplexPair } from '../transport/duplex-pair.js';
import type { Target } from '../client/target.js';
import { hostname } from 'node:os';
import { DEFAULT_WEB_HOST } from './web-config.js';

/** Where no credential files exist: `connect()` looks for default keys and tokens under HOME and SHELLWIRE_HOME. */
const NO_HOME = '/nonexistent/shellwire-web-console';
/** Longer than the throttle's largest delay (8 s): a refusal is held back that long before it is told. */
const IN_PROCESS_CONNECT_TIMEOUT_MS = 30_000;

/** The browser, as the gateway's logs, audit trail and throttle name it. */
export interface BrowserPeer {
  /** Its IP address: the unit of login backoff, shared with the TCP port's logins from there. */
  address: string;
  /** `web:IP:PORT`. */
  remote: string;
}

/**
 * How messages name the gateway on a browser's connection ("down01 via 127.0.0.1:38971
 * refused ..."): its TCP address as the CLI would write it (`--via`), this machine's name
 * for a wildcard listen address. Never an invented name: an operator goes looking for it.
 */
export function gatewayLabel(gateway: Gateway): Target {
  let host = DEFAULT_WEB_HOST;
  let port = 0;
  try {
    ({ address: host, port } = gateway.server.address);
  } catch {
    // not listening on TCP (tests that only start the console): the loopback default
  }
  if (host === '0.0.0.0' || host === '::') host = hostname();
  return { host, port };
}

/** What the browser offered: a password, or a one-time login token (`shellwire web-login`). */
export type BrowserCredentials = { user: string; password: string } | { token: string };

/** `web:IP:PORT` (`web:[V6]:PORT`) of a browser's socket. */
export function browserPeer(ip: string | undefined, port: number | undefined): BrowserPeer {
  const address = ip ?? 'unknown';
  return { address, remote: `web:${address.includes(':') ? `[${address}]` : address}:${port ?? 0}` };
}

/**
 * Log in to `gateway` in process as the browser at `peer`.
 * @throws {AuthenticationError} refused (`SW_ERR_AUTH_FAILED`, `SW_ERR_LOCKED_OUT`).
 * @throws {ConnectionError} the gateway is full or stopping (`SW_ERR_TOO_MANY_CONNECTIONS`, `SW_ERR_SERVER_SHUTTING_DOWN`), or closed it.
 */
export async function openInProcessConnection(gateway: Gateway, peer: BrowserPeer, credentials: BrowserCredentials): Promise<Connection> {
  const [serverEnd, clientEnd] = duplexPair();
  // A link exchange ('web-link') takes a one-time token only: never a reusable one.
  const origin = 'password' in credentials ? 'web' : 'web-link';
  gateway.server.handleConnection(serverEnd, { address: peer.address, remote: peer.remote, origin });
  return connect(gatewayLabel(gateway), {
    transport: clientEnd,
    fingerprint: gateway.server.identity.fingerprint,
    env: { HOME: NO_HOME, SHELLWIRE_HOME: NO_HOME },
    home: NO_HOME,
    connectTimeoutMs: IN_PROCESS_CONNECT_TIMEOUT_MS,
    // No keepalive on a pipe inside this process: there is no network to lose, and under a
    // flood a starved event loop made every browser's connection "time out" at once (each
    // end's pings waited behind the flood), ending every user's session.
    keepaliveMs: 0,
    ...('password' in credentials ? { user: credentials.user, password: credentials.password } : { token: credentials.token }),
  });
}
