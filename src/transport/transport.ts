/**
 * What the protocol needs from below: a byte duplex with backpressure (in the spirit of
 * nats.js `Transport`). TLS over TCP is one; the gateway relay and the NATS tunnel are others:
 * they hand `connect(target, { transport })` or `Server.handleConnection(transport)` any
 * `stream.Duplex`, and the same TLS 1.3 handshake, HELLO/WELCOME and frames run over it.
 *
 * The contract a transport keeps (Node's `Duplex` already names it):
 * - bytes arrive in order as 'data' chunks of any size (frames may span chunks, or share one);
 * - `write()` returns false once its queue is full and 'drain' follows: `writableLength` is
 *   what `FrameConnection` watches to stop channels producing;
 * - `end()` is a half close (the peer sees 'end'), `destroy()` drops it at once, and 'close'
 *   comes exactly once, whatever the cause; 'error' may come before it.
 * A transport carries no security of its own: TLS runs on top of it, so a relay in between sees
 * only ciphertext, and the host key is pinned end to end as over TCP.
 */
import type { Duplex } from 'node:stream';

/** A byte duplex with backpressure that TLS (and so a shellwire connection) can run over. */
export type Transport = Duplex;

/** Who is at the other end of a transport, as logs, the audit trail and login throttling name it. */
export interface TransportPeer {
  /** The source address, the unit of brute-force backoff and of per-source startup limits (e.g. `10.0.0.7`, or `relay:gw1`). */
  address: string;
  /** How logs name this connection, e.g. `10.0.0.7:50123`; default: `address`. */
  remote?: string;
  /**
   * `'web'`: a browser session's in-process connection (src/web/in-process.ts). Only such a
   * connection may log in with a one-time web login token (src/auth/one-time-logins.ts); the
   * TCP port never accepts one. `'web-link'`: the connection of a one-time link exchange
   * (`POST /api/login/link`): it accepts ONLY a one-time token, never the daemon's token, a
   * users.yaml token, a password or a key (a reusable token must not become a browser session).
   */
  origin?: 'web' | 'web-link';
}
