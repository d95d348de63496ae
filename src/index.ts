/**
 * shellwire: run commands on remote hosts over TLS. The `shellwire` entry: the client
 * (connect, Connection, RemoteProcess, ShellSession, files), the fleet runner (runOn,
 * inventory, targets, discovery) and the typed errors. The daemon is `shellwire/server`
 * (src/server/index.ts), the audit log `shellwire/audit` (src/audit/index.ts). Formatters,
 * line splitters and the channel machinery are internals: not exported.
 *
 *   import { connect } from 'shellwire';
 *   const conn = await connect('web1:50007', { tokenFile: 'token' });
 *   const { stdout } = await conn.exec('uname -a');
 */
export { connect, type ConnectOptions } from './client/connect.js';
export {
  Connection, DEFAULT_CLIENT_KEEPALIVE_MS, DEFAULT_CLOSE_TIMEOUT_MS, type ConnectionOptions, type SpawnOptions, type ExecOptions,
} from './client/connection.js';
export { RemoteProcess, type ExitInfo } from './client/remote-process.js';
export { CHANNEL_CLOSE_GRACE_MS } from './client/client-channel.js';
export { ShellSession } from './client/shell-session.js';
export type { OsText } from './client/spawn-options.js';
/** OS byte strings (command text, argv, cwd, env, file names) ↔ exact bytes: docs/protocol.md §4.11. */
export { decodeOsBytes, encodeOsBytes, isOsString, OsBytesError } from './protocol/os-bytes.js';
export { DEFAULT_MAX_BUFFER } from './client/run-command.js';
export { parseTarget, formatTarget, DEFAULT_PORT, type Target } from './transport/address.js';
/** Through a gateway (docs/gateway.md): `connect(host, { via })`, `conn.relay(host)`, `conn.gatewayRequest()`. */
export { DEFAULT_GATEWAY_PORT, parseVia } from './client/via.js';
export { MAX_GATEWAY_ANSWER_BYTES, type GatewayRequestOptions } from './client/gateway-request.js';
export type { HostKeyPolicy } from './auth/known-hosts.js';
export type {
  RemoteEntry, TransferProgress, TransferOptions, PutOptions, GetOptions, TransferResult, TreeOptions, TreeResult,
} from './client/files/common.js';
export {
  ShellwireError, ProtocolError, ConnectionError, HostVerificationError, AuthenticationError,
  RequestError, UsageError, LocalIoError, CommandError, FileTransferError, ErrorCode, type CommandResult,
} from './errors.js';

// The fleet runner: fan-out, inventory, target expressions, discovery.
export { runOn, FleetRun, DEFAULT_FANOUT, DEFAULT_MAX_OUTPUT, TIMEOUT_GRACE_MS, type RunOnOptions } from './fleet/run-on.js';
export type { FleetEvent, FleetSummary, HostResult, HostStatus } from './fleet/results.js';
// `run` over NATS as one signed broadcast (docs/nats.md, "Broadcast"); nats.js is not loaded by it (bring a connection).
export { runBroadcast, BroadcastRun, DEFAULT_BROADCAST_TIMEOUT_MS, type BroadcastOptions, type BroadcastConnection } from './fleet/nats-run.js';
export { keySigner, type RequestSigner } from './auth/broadcast-auth.js';
export { ConnectionPool, DEFAULT_CONNECT_RATE, type PoolOptions } from './fleet/pool.js';
export { gatewayInventory, parseGatewayHosts, type GatewayHost } from './fleet/gateway-hosts.js';
// Agents through NATS (docs/nats.md): connect(NAME, { via: 'nats://…' }) opens the tunnel; these
// list the live agents. nats.js is loaded only by connectNats (and connect() through NATS).
export { connectNats, parseNatsServers, type NatsConnectOptions } from './transport/nats-connect.js';
export { discoverAgents, natsInventory, judgeAgents, readAgentPins, PresenceWatcher, DISCOVERY_MAX_MS, DISCOVERY_STALL_MS, type DiscoverOptions as NatsDiscoverOptions, type Discovery as NatsDiscovery, type DiscoveredAgent, type AgentTrust } from './fleet/nats-discovery.js';
export { PRESENCE_INTERVAL_MS, PRESENCE_TTL_MS, DEFAULT_NATS_PREFIX, type PresenceRecord } from './protocol/nats-subjects.js';
export { NatsTunnel, TUNNEL_WINDOW } from './transport/nats-tunnel.js';
export { loadInventory, parseInventory, defaultInventoryPath, InventoryError, type FleetHost, type Inventory } from './fleet/inventory.js';
export { addHostsToInventory } from './fleet/inventory-write.js';
export { resolveTargets, NoHostsMatchedError, type ResolveTargetsOptions } from './fleet/targets.js';
export { resolveHost, type HostOverrides, type ResolvedHost } from './fleet/resolve-host.js';
export { expandRange } from './fleet/ranges.js';
export { discover, type DiscoveredHost, type DiscoverOptions } from './fleet/discovery.js';
