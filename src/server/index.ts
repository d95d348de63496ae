/**
 * `shellwire/server`: the daemon, embeddable. `Server.create(options)` (or `createServer`),
 * then `listen()`, `reloadUsers()`, `handleConnection(duplex)` for any byte stream, and
 * `close(graceMs)`; `ClassicServer` is the line-based classic port (docs/protocol.md).
 *
 *   import { createServer } from 'shellwire/server';
 *   const server = await createServer({ port: 0, stateDir: '/var/lib/shellwire' });
 *   await server.listen();
 */
import { Server, type ServerOptions } from './server.js';

export { Server, DEFAULT_HOST, type ServerOptions } from './server.js';
export { DEFAULT_PORT } from '../transport/address.js';
export { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
// Agent mode (docs/nats.md): serve connections that arrive through NATS.
export { startNatsAgent, type StartNatsAgentOptions } from './nats-agent-start.js';
export { NatsAgent, type NatsAgentOptions, type BroadcastMessage } from './nats-agent.js';
export { ClassicServer, DEFAULT_CLASSIC_HOST, DEFAULT_CLASSIC_LIMITS, type ClassicServerOptions, type ClassicLimits } from './classic-server.js';

/**
 * Create a daemon (its identity, token and users are loaded or made in `stateDir`); call
 * `listen()` to serve. The same as `Server.create(options)`.
 *
 * @throws {UsageError} `SW_ERR_MISSING_DEPENDENCY` when the audit log is on (the default,
 *   `audit` not given) and better-sqlite3 is not installed; `SW_ERR_STATE_DIR` (or another
 *   `UsageError` code) when a file of the state directory (identity, token, users.yaml, the
 *   audit log) cannot be read, created or parsed.
 */
export function createServer(options: ServerOptions = {}): Promise<Server> {
  return Server.create(options);
}
