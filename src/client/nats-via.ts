/**
 * `connect(NAME, { via: 'nats://…' })` (docs/nats.md, "Client side"): ask agent NAME for a
 * tunnel (`P.agent.NAME.open`), then run the usual TLS 1.3 + HELLO over it. The agent's key is
 * pinned in known_hosts under `nats:NAME`; the NATS connection is this connection's own (closed
 * with it) unless the caller lends one (`natsConnection`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { ConnectionError, ErrorCode } from '../errors.js';
import { connectNats } from '../transport/nats-connect.js';
import { NatsTunnel, TUNNEL_WINDOW } from '../transport/nats-tunnel.js';
import { DEFAULT_NATS_PREFIX, checkNatsPrefix, natsSubjects, newTunnelId, type TunnelOpenReply } from '../protocol/nats-subjects.js';
import { parseErrorCode } from '../errors.js';
import { natsHostKey, parseAgentTarget } from './nats-agent-target.js';
import { peerText } from '../terminal-text.js';

export { natsHostKey, parseAgentTarget };

/** How long an agent has to answer an open request. */
export const TUNNEL_OPEN_TIMEOUT_MS = 5_000;

export interface NatsTunnelOpenOptions {
  prefix?: string;
  timeoutMs?: number;
  window?: number;
  /** The servers as the user wrote them, for the hint (`shellwire hosts --via …`). */
  via?: string;
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
  const tunnel = new NatsTunnel({ nc, sendSubject: subjects.toAgent(name, id), receiveSubject: subjects.toClient(name, id), label: `NATS tunnel to ${name}`, window });
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
      noResponders ? `No ${where} (prefix ${subjects.discover.replace(/\.discover$/, '')}): it is not running or not connected, or its NATS user may not subscribe to ${subjects.open(name)} (the agent then reports a Permissions Violation on its stderr).` : `${where} did not answer the tunnel request: ${(err as Error).message}.`,
      { host: natsHostKey(name), cause: err, hint: `List the live agents with shellwire hosts --via ${options.via ?? 'nats://SERVER'}.` },
    );
  }
  if (!reply || reply.ok !== true) {
    tunnel.destroy();
    const code = parseErrorCode((reply as { code?: unknown })?.code) ?? ErrorCode.CONNECT_FAILED;
    // The agent's words (or whoever answered on its subject): quoted, escaped, capped.
    const said = (reply as { message?: unknown })?.message;
    throw new ConnectionError(code, `${where} refused the tunnel: ${said === undefined ? 'no reason given' : peerText(String(said))}.`, { host: natsHostKey(name) });
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

/**
 * NATS connections shared by the tunnels of one process (a fan-out opens hundreds of tunnels on
 * one connection, not one connection each), by servers and credentials; closed when its last
 * tunnel closes.
 */
const shared = new Map<string, { nc: Promise<NatsConnection>; users: number }>();

async function acquireShared(via: string, credsFile: string | undefined): Promise<{ nc: NatsConnection; release: () => void }> {
  const key = `${via}\0${credsFile ?? ''}`;
  let entry = shared.get(key);
  if (!entry) {
    const opening = connectNats({ servers: via, ...(credsFile !== undefined ? { credsFile } : {}), name: 'shellwire client' });
    const created = { nc: opening, users: 0 };
    entry = created;
    shared.set(key, created);
    opening.then(
      (nc) => void nc.closed().then(() => shared.get(key) === created && shared.delete(key)),
      () => shared.get(key) === created && shared.delete(key),
    );
  }
  entry.users++;
  const held = entry;
  let nc: NatsConnection;
  try {
    nc = await held.nc;
  } catch (err) {
    held.users--;
    throw err;
  }
  let released = false;
  return {
    nc,
    release: () => {
      if (released) return;
      released = true;
      if (--held.users === 0) {
        if (shared.get(key) === held) shared.delete(key);
        void nc.close().catch(() => {});
      }
    },
  };
}

/** Open a tunnel to the agent named by `target` through the NATS servers `via`: the transport and the host key name. */
export async function natsTransportFor(target: Parameters<typeof parseAgentTarget>[0], via: string, options: NatsViaConnectOptions): Promise<{ tunnel: NatsTunnel; name: string; user?: string }> {
  const parsed = parseAgentTarget(target, via);
  const lease = options.natsConnection === undefined ? await acquireShared(via, options.natsCreds) : null;
  const nc = options.natsConnection ?? lease!.nc;
  try {
    const tunnel = await openNatsTunnel(nc, parsed.name, {
      ...(options.natsPrefix !== undefined ? { prefix: options.natsPrefix } : {}),
      via,
      timeoutMs: Math.min(options.connectTimeoutMs ?? TUNNEL_OPEN_TIMEOUT_MS, TUNNEL_OPEN_TIMEOUT_MS),
    });
    if (lease) tunnel.once('close', lease.release);
    return { tunnel, ...parsed };
  } catch (err) {
    lease?.release();
    throw err;
  }
}
