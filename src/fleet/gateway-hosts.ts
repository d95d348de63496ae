/**
 * A gateway's list of the hosts an operator may reach (its `gateway` channel kind, op
 * `hosts`: `[{ name, labels, groups }]`, no addresses; docs/gateway.md) as an inventory, so
 * target expressions (`@web`, `role=db`, `web[01-03]`, `!web07`) mean through the gateway
 * what they mean on a local inventory: `hosts --via GW TARGETS` and `run --via GW TARGETS`.
 */
import type { Connection } from '../client/connection.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { emptyInventory, type FleetHost, type Inventory } from './inventory.js';
import { expandRange } from './ranges.js';

export interface GatewayHost {
  name: string;
  labels: Record<string, string>;
  groups: string[];
}

/**
 * The `hosts` answer, checked: a JSON array of `{ name, labels?, groups? }`.
 *
 * @throws {ProtocolError} `SW_ERR_BAD_MESSAGE` when it is not such a list.
 */
export function parseGatewayHosts(answer: Buffer, gateway: string): GatewayHost[] {
  const bad = (why: string) => new ProtocolError(ErrorCode.BAD_MESSAGE, `${gateway} answered "hosts" with something that is not a list of hosts: ${why}.`, { host: gateway });
  let value: unknown;
  try {
    value = JSON.parse(answer.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (!Array.isArray(value)) throw bad('not a JSON array');
  return value.map((item: unknown, i) => {
    const o = item as { name?: unknown; labels?: unknown; groups?: unknown } | null;
    if (typeof o !== 'object' || o === null || typeof o.name !== 'string' || o.name === '') throw bad(`entry ${i} has no "name"`);
    const labels: Record<string, string> = {};
    if (typeof o.labels === 'object' && o.labels !== null) for (const [k, v] of Object.entries(o.labels)) labels[k] = String(v);
    const groups = Array.isArray(o.groups) ? o.groups.map(String) : [];
    return { name: o.name, labels, groups };
  });
}

/** The gateway's hosts as an inventory whose every host goes through `via`. */
export function gatewayInventory(via: string, list: readonly GatewayHost[]): Inventory {
  const inventory = emptyInventory();
  inventory.file = `${via} (gateway)`;
  inventory.gatewayHosts = { where: `the gateway ${via}`, listHint: `list them with: shellwire hosts --via ${via}` };
  for (const h of list) {
    if (inventory.byName.has(h.name)) continue;
    const host: FleetHost = { name: h.name, address: h.name, port: 0, labels: { ...h.labels }, groups: [...h.groups], via };
    inventory.hosts.push(host);
    inventory.byName.set(h.name, host);
  }
  return inventory;
}

/**
 * Ask the gateway `conn` is connected to for the hosts the operator may reach.
 *
 * @throws {RequestError} (rejects) the gateway refused (`SW_ERR_DENIED`; a daemon: `SW_ERR_BAD_REQUEST`).
 * @throws {ProtocolError} (rejects) the answer is not a list of hosts.
 * @throws {ConnectionError} (rejects) the connection was lost.
 */
export async function fetchGatewayHosts(conn: Connection, via: string): Promise<GatewayHost[]> {
  return parseGatewayHosts(await conn.gatewayRequest({ op: 'hosts' }), via);
}

/**
 * The gateway's hosts as an inventory for TARGETS, plus a bare entry for each literal name in
 * TARGETS it does not list (the gateway then refuses it by name, without saying whether it exists).
 */
export async function gatewayTargetsInventory(conn: Connection, via: string, targets: string): Promise<Inventory> {
  const inventory = gatewayInventory(via, await fetchGatewayHosts(conn, via));
  for (const item of targets.split(',')) {
    const text = item.trim();
    if (text === '' || /[@!=&*?]/.test(text) || text === 'all') continue;
    let names: string[];
    try {
      names = expandRange(text);
    } catch {
      continue; // resolveTargets reports it
    }
    for (const name of names) {
      if (inventory.byName.has(name) || name.includes(':')) continue;
      const host: FleetHost = { name, address: name, port: 0, labels: {}, groups: [], via };
      inventory.hosts.push(host);
      inventory.byName.set(name, host);
    }
  }
  return inventory;
}
