/**
 * `run --via GW` and `put/get --via GW`: log in to the gateway (on the pool's shared
 * connection) and ask which hosts it lets us reach, as an inventory for the targets. Failing
 * to connect or being refused exits 255, as for any connection.
 */
import type { Connection } from '../client/connection.js';
import { fetchGatewayHosts, gatewayInventory } from '../fleet/gateway-hosts.js';
import type { FleetHost, Inventory } from '../fleet/inventory.js';
import type { ConnectionPool } from '../fleet/pool.js';
import { reportError } from './common.js';

/** The gateway's list of hosts, as they are (what `run --via` resolves its targets over). */
async function listedHosts(conn: Connection, via: string): Promise<Inventory> {
  return gatewayInventory(via, await fetchGatewayHosts(conn, via));
}

/**
 * The inventory `toInventory` makes from the gateway `probe.via` names (by default its list of
 * hosts). On failure the pool is closed and the error reported (exit 255): never returns then.
 */
export async function askGateway(pool: ConnectionPool, probe: FleetHost, toInventory: (conn: Connection, via: string) => Promise<Inventory> = listedHosts): Promise<Inventory> {
  try {
    return await toInventory(await pool.gateway(probe), probe.via!);
  } catch (err) {
    await pool.close();
    reportError(err);
  }
}
