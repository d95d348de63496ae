/**
 * Where a gateway keeps its state and what its users.yaml says per operator (docs/gateway.md).
 * The state dir is a daemon's (TLS identity, users.yaml, audit log) plus the gateway's own SSH
 * key, the known_hosts of the hosts it relays to, and its inventory.
 */
import { join } from 'node:path';
import { shellwireHome } from '../auth/paths.js';

export const DEFAULT_GATEWAY_HOST = '127.0.0.1';
export const DEFAULT_GATEWAY_PORT = 50008;
/** The gateway's SSH key (OpenSSH private key, 0600; the public half beside it as `.pub`). */
export const GATEWAY_KEY_FILE = 'gateway_ed25519';

/** `$SHELLWIRE_HOME/gateway` when `--state-dir` is not given. */
export function defaultGatewayStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(shellwireHome(env), 'gateway');
}

export function gatewayKeyPath(stateDir: string): string {
  return join(stateDir, GATEWAY_KEY_FILE);
}

/** The gateway's inventory when `--inventory` is not given: the only places it connects to. */
export function gatewayInventoryPath(stateDir: string): string {
  return join(stateDir, 'inventory.yaml');
}

// An operator's gateway fields (deny by default): auth/users-config.ts, where the server layer reads them too.
export { gatewayPolicyOf } from '../auth/users-config.js';
