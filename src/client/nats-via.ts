/**
 * `connect(NAME, { via: 'nats://…' })` (docs/nats.md, "Client side"): ask agent NAME for a
 * tunnel (`P.agent.NAME.open`), then run the usual TLS 1.3 + HELLO over it. The agent's key is
 * pinned in known_hosts under `nats:NAME`; the NATS connection is this connection's own (closed
 * with it) unless the caller lends one (`natsConnection`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { ConnectionError, ErrorCode, UsageError } from '../errors.js';
import { connectNats } from '../transport/nats-connect.js';
import { NatsTunnel, TUNNEL_WINDOW } from '../transport/nats-tunnel.js';
import { DEFAULT_NATS_PREFIX, checkNatsPrefix, isAgentName, natsSubjects, newTunnelId, type TunnelOpenReply } from '../protocol/nats-subjects.js';
import { parseErrorCode } from '../errors.js';
import type { Target } from './target.js';

/** How long an agent has to answer an open request. */
export const TUNNEL_OPEN_TIMEOUT_MS = 5_000;

export interface NatsTunnelOpenOptions {
  prefix?: string;
  timeoutMs?: number;
  window?: number;
}

/** The known_hosts key of agent `name`. */
export function natsHostKey(name: string): string {
  return `nats:${name}`;
}

/**
 * `[USER@]NAME` → the agent name and the login.
 * @throws {UsageError} SW_ERR_BAD_TARGET: not an agent name (a port, an address, dots).
 */
export function parseAgentTarget(target: string | Target, via: string): { name: string; user?: string } {
  const text = typeof target === 'string' ? target : target.host;
  const at = text.lastIndexOf('@');
  const user = typeof target === 'string' ? (at >= 0 ? text.slice(0, at) : undefined) : target.user;
  const name = at >= 0 && typeof target === 'string' ? text.slice(at + 1) : text;
  if (!isAgentName(name)) {
    throw new UsageError(ErrorCode.BAD_TARGET, `Bad agent "${name}" for ${via}: through NATS a host is an agent's name (its --name: A-Z a-z 0-9 _ -, no port or address). List them with: shellwire hosts --via ${via}`);
  }
  return user !== undefined && user !== '' ? { name, user } : { name };
}

/**
 * Ask agent `name` for a tunnel over `nc`.
 * @throws {ConnectionError} SW_ERR_CONNECT_FAILED: no such agent on this NATS (no responders),
 *   it did not answer in time, or it refused.
 */
export async function openNatsTunnel(nc: NatsConnection, name: string, options: NatsTunnelOpenOptions = {}): Promise<NatsTunnel> {
  const subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
  const id = newTunnelId();
  const window = options.window ?? TUNNEL_WINDOW;
  // Subscribed before the request goes out (same connection, so in order): the agent's first
  // bytes cannot arrive before we listen.
  const tunnel = new NatsTunnel({ nc, sendSubject: subjects.toAgent(id), receiveSubject: subjects.toClient(id), label: `NATS tunnel to ${name}`, window });
  tunnel.on('error', () => {});
  const where = `agent ${name} on NATS`;
  let reply: TunnelOpenReply;
  try {
    const msg = await nc.request(subjects.open(name), JSON.stringify({ tunnel: id, window }), { timeout: options.timeoutMs ?? TUNNEL_OPEN_TIMEOUT_MS });
    reply = JSON.parse(Buffer.from(msg.data).toString('utf8')) as TunnelOpenReply;
  } catch (err) {
    tunnel.destroy();
    const noResponders = (err as { isNoResponders?: () => boolean }).isNoResponders?.() === true;
    throw new ConnectionError(
      ErrorCode.CONNECT_FAILED,
      noResponders ? `No ${where} (prefix ${subjects.discover.replace(/\.discover$/, '')}): it is not running or not connected.` : `${where} did not answer the tunnel request: ${(err as Error).message}.`,
      { host: natsHostKey(name), cause: err, hint: 'List the live agents with shellwire hosts --via NATS_URL.' },
    );
  }
  if (!reply || reply.ok !== true) {
    tunnel.destroy();
    const code = parseErrorCode((reply as { code?: unknown })?.code) ?? ErrorCode.CONNECT_FAILED;
    throw new ConnectionError(code, `${where} refused the tunnel: ${String((reply as { message?: unknown })?.message ?? 'no reason')}.`, { host: natsHostKey(name) });
  }
  return tunnel;
}

/** Options `connect()` passes on for the NATS path. */
export interface NatsViaConnectOptions {
  natsCreds?: string;
  natsPrefix?: string;
  natsConnection?: NatsConnection;
  connectTimeoutMs?: number;
}

/** Open a tunnel to the agent named by `target` through the NATS servers `via`: the transport and the host key name. */
export async function natsTransportFor(target: string | Target, via: string, options: NatsViaConnectOptions): Promise<{ tunnel: NatsTunnel; name: string; user?: string }> {
  const parsed = parseAgentTarget(target, via);
  const owned = options.natsConnection === undefined;
  const nc = options.natsConnection ?? (await connectNats({ servers: via, ...(options.natsCreds !== undefined ? { credsFile: options.natsCreds } : {}), name: 'shellwire client' }));
  try {
    const tunnel = await openNatsTunnel(nc, parsed.name, {
      ...(options.natsPrefix !== undefined ? { prefix: options.natsPrefix } : {}),
      timeoutMs: Math.min(options.connectTimeoutMs ?? TUNNEL_OPEN_TIMEOUT_MS, TUNNEL_OPEN_TIMEOUT_MS),
    });
    if (owned) tunnel.once('close', () => void nc.close().catch(() => {}));
    return { tunnel, ...parsed };
  } catch (err) {
    if (owned) await nc.close().catch(() => {});
    throw err;
  }
}
