/** The web console's fixed settings (docs/web.md) and its `--web` address syntax. */
import { networkInterfaces, hostname } from 'node:os';
import { isIP } from 'node:net';
import { parseTarget, isLoopback } from '../client/target.js';

/** A session ends after this long without a request (an open WebSocket counts as activity). */
export const WEB_SESSION_IDLE_MS = 30 * 60_000;
/** A session ends this long after its login, however active. */
export const WEB_SESSION_MAX_MS = 12 * 3_600_000;
/** Sessions one user may hold at once; a further login ends her oldest. */
export const WEB_SESSIONS_PER_USER = 16;
/** The session cookie: 32 random bytes, base64url; HttpOnly, Secure, SameSite=Strict, Path=/. */
export const WEB_SESSION_COOKIE = 'sw_session';
/** The header every state-changing /api request carries the session's CSRF token in. */
export const WEB_CSRF_HEADER = 'x-csrf-token';
/** The largest JSON body a route takes (login forms, run requests). */
export const WEB_JSON_BODY_LIMIT = 64 * 1024;
/** WebSockets one login session may hold at once (terminals and runs); the next upgrade is a 429. */
export const WEB_SOCKETS_PER_SESSION = 32;
/** WebSockets one user may hold at once across all her sessions. */
export const WEB_SOCKETS_PER_USER = 64;
/** Terminals one user may hold at once across all her sessions. */
export const WEB_TERMINALS_PER_USER = 32;
/** Terminal opens one user may have in flight (to the gateway and its host); more wait their turn. */
export const WEB_OPENS_PER_USER = 4;
/** Terminal opens in flight across the console. */
export const WEB_OPENS_IN_FLIGHT = 32;
/** How long a terminal open waits for its turn before it is answered 503. */
export const WEB_OPEN_WAIT_MS = 30_000;
/** File descriptors kept free: within this many of the soft RLIMIT_NOFILE, new WebSockets and logins get 503. */
export const WEB_FD_RESERVE = 256;

/**
 * The WebSocket library's own message limit (`ws` maxPayload): above it the socket is closed
 * (1009) before any route sees the message. Kept above the routes' own limits (a terminal's
 * 1 MiB of input, a run's 256 KiB) so those are enforced by the routes, with an answer.
 */
export const WEB_WS_MAX_PAYLOAD = 4 * 1024 * 1024;
/** WebSocket close code when the session it belongs to ended (logout, expiry, revocation). */
export const WS_CLOSE_SESSION_ENDED = 4401;
/** How often expired sessions are swept (they are also checked at each request). */
export const WEB_SWEEP_INTERVAL_MS = 60_000;
/** The default `--web` host (a bare port listens here: loopback unless named otherwise). */
export const DEFAULT_WEB_HOST = '127.0.0.1';

/**
 * Content-Security-Policy of every answer: nothing from elsewhere, no framing, no inline script.
 * 'wasm-unsafe-eval' lets the recordings player (asciinema-player 3) compile its WebAssembly terminal; it allows no JS eval or new Function.
 */
export const WEB_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

/**
 * `--web HOST:PORT`, `[IPv6]:PORT` or `PORT` (on 127.0.0.1).
 * @throws {Error} what is wrong with it.
 */
export function parseWebAddress(text: string): { host: string; port: number } {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const port = Number(t);
    if (port > 65535) throw new Error(`port ${port} is above 65535`);
    return { host: DEFAULT_WEB_HOST, port };
  }
  const target = parseTarget(t, 443, { allowPortZero: true });
  if (target.user !== undefined) throw new Error('a listen address has no user@');
  return { host: target.host, port: target.port };
}

/** `https://HOST:PORT` of an address as browsers write it (IPv6 in brackets). */
export function httpsOrigin(host: string, port: number): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The origins this console answers as (docs/web.md "Origins and names"): its listen address
 * (and `localhost` when that is loopback); for a wildcard listen (0.0.0.0, ::) this machine's
 * name, `localhost` and every interface address; plus every `--web-origin`. The Origin check
 * and the Host check compare against these, never against the Host header a client sent (a
 * DNS-rebound name would otherwise pass both).
 */
export function consoleOrigins(listenHost: string, port: number, extra: readonly string[]): string[] {
  const names = new Set<string>();
  if (listenHost === '0.0.0.0' || listenHost === '::') {
    names.add(hostname());
    names.add('localhost');
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) {
        if (listenHost === '0.0.0.0' && i.family !== 'IPv4') continue;
        if (!i.address.includes('%')) names.add(i.address);
      }
    }
  } else {
    names.add(listenHost);
    if (isLoopback(listenHost)) names.add('localhost');
  }
  const out = new Set([...names].map((n) => httpsOrigin(n, port).toLowerCase()));
  for (const o of extra) out.add(o.toLowerCase());
  return [...out];
}

/** The Host header values `origins` stand for (`name:port`, and `name` alone for port 443). */
export function consoleHosts(origins: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const o of origins) {
    const authority = o.replace(/^https:\/\//, '').replace(/\/$/, '').toLowerCase();
    out.add(authority);
    if (authority.endsWith(':443')) out.add(authority.slice(0, -4));
    else if (!/:\d+$/.test(authority)) out.add(`${authority}:443`);
  }
  return out;
}

/**
 * `--web-trust-proxy ADDR[,ADDR]`: IP addresses or CIDR ranges (`10.0.0.0/8`) of reverse
 * proxies whose X-Forwarded-For is believed.
 * @throws {Error} what is wrong with it.
 */
export function parseTrustProxy(text: string): string[] {
  const out = text.split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (out.length === 0) throw new Error('takes the proxies\' addresses, e.g. 127.0.0.1 or 10.0.0.5,10.0.0.6.');
  for (const a of out) {
    const [ip, bits, more] = a.split('/');
    const family = isIP(ip ?? '');
    const okBits = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (family === 0 || !okBits || more !== undefined) throw new Error(`takes IP addresses or CIDR ranges (a.b.c.d, a.b.c.d/N, IPv6), comma-separated; got ${JSON.stringify(a)}.`);
  }
  return out;
}
