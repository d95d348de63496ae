/** Named limits of the daemon, each overridable (ServerOptions.limits / CLI flags). */
import { PREAUTH_MAX_PAYLOAD } from '../protocol/frame.js';
import { DEFAULT_KILL_GRACE_MS, DEFAULT_OUTPUT_GRACE_MS } from '../process/command-process.js';
import { DEFAULT_KEEPALIVE_MS } from '../transport/frame-connection.js';
import { DEFAULT_WINDOW } from '../channel/window.js';

export interface ServerLimits {
  /** Concurrent connections; more are refused with SW_ERR_TOO_MANY_CONNECTIONS. */
  maxConnections: number;
  /**
   * Connections not yet authenticated (from TCP accept, TLS included), like sshd's
   * `MaxStartups start:rate:full` (see startup-gate.ts): past `start`, the oldest silent one
   * is dropped with `rate`% chance rising to 100% at `full`, and newcomers get shorter
   * handshake deadlines; at `full` the oldest silent one always makes room.
   */
  maxStartups: { start: number; rate: number; full: number };
  /**
   * Connections not yet authenticated from one source address; more are dropped at accept.
   * Default: no limit, as sshd's PerSourceMaxStartups: one address is often many users (NAT,
   * a bastion, localhost), and a per-source cap lets one of them lock out the others'
   * key and token logins. `maxStartups` bounds the total either way.
   */
  maxStartupsPerSource: number;
  /** The handshake deadline a newcomer gets when `maxStartups.full` are starting. */
  minHandshakeTimeoutMs: number;
  /**
   * Of `maxConnections`, places password logins cannot take (keys and tokens can), so an
   * administrator with a key gets in when the daemon is full; at most a quarter of it.
   */
  reservedForStrongAuth: number;
  /** Concurrent channels per connection. */
  maxChannels: number;
  /** Largest frame payload accepted after authentication. */
  maxPayload: number;
  /** Largest frame payload accepted before authentication. */
  preauthMaxPayload: number;
  /** Time a client has from TCP accept to a successful HELLO. */
  handshakeTimeoutMs: number;
  /** Ping interval; a peer silent for 3 intervals is dropped. */
  keepaliveMs: number;
  /** SIGTERM → SIGKILL delay for commands that are closed, disconnected or timed out. */
  killGraceMs: number;
  /** After a command exits by itself, how long what it left behind may hold its output open. */
  outputGraceMs: number;
  /** On daemon SIGTERM: how long running commands may finish before they are killed. */
  shutdownGraceMs: number;
  /** STDIN credit the daemon grants each channel. */
  stdinWindow: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 1024,
  maxStartups: { start: 10, rate: 30, full: 100 },
  maxStartupsPerSource: Number.POSITIVE_INFINITY,
  minHandshakeTimeoutMs: 2_000,
  reservedForStrongAuth: 32,
  maxChannels: 1024,
  maxPayload: 256 * 1024,
  preauthMaxPayload: PREAUTH_MAX_PAYLOAD,
  handshakeTimeoutMs: 10_000,
  keepaliveMs: DEFAULT_KEEPALIVE_MS,
  killGraceMs: DEFAULT_KILL_GRACE_MS,
  outputGraceMs: DEFAULT_OUTPUT_GRACE_MS,
  shutdownGraceMs: 10_000,
  stdinWindow: DEFAULT_WINDOW,
};
