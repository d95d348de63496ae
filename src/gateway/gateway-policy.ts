/**
 * Which inventory hosts an operator may reach: their users.yaml `hosts` expressions resolved
 * over the gateway's inventory (fleet/targets.ts, the same expressions `run` takes). Only
 * inventory hosts count: an ad-hoc `ADDRESS:PORT` in `hosts` names nothing, so the gateway
 * never becomes a way to any address. Kinds and commands are checked by the daemon's own
 * rules (auth/policy.ts) before a relay is built (server-connection.ts).
 */
import type { UserPolicy } from '../auth/users-config.js';
import type { FleetHost, Inventory } from '../fleet/inventory.js';
import { resolveTargets } from '../fleet/targets.js';
import { gatewayPolicyOf } from './gateway-config.js';

export type HostDecision = { allowed: true; host: FleetHost; as: string } | { allowed: false; reason: string };

/** The inventory hosts `user` may reach, in inventory order; none on a broken expression. */
export function permittedHosts(user: UserPolicy, inventory: Inventory): FleetHost[] {
  const policy = gatewayPolicyOf(user);
  if (policy.hosts.length === 0) return [];
  let hosts: FleetHost[];
  try {
    hosts = resolveTargets(policy.hosts, inventory, { allowEmpty: true });
  } catch {
    // A bad expression or a name that is not in the inventory: deny, never widen.
    return [];
  }
  return hosts.filter((h) => inventory.byName.get(h.name) === h);
}

/**
 * May `user` reach the host named `name`? One refusal for "not in the inventory" and "not
 * permitted", so an operator cannot probe which hosts exist; worded so it is true in both
 * cases (a hosts rule of ["*"] permits every inventory host: the name is then not in it).
 */
export function checkHost(user: UserPolicy, name: string, inventory: Inventory): HostDecision {
  const policy = gatewayPolicyOf(user);
  const host = permittedHosts(user, inventory).find((h) => h.name === name);
  if (host) return { allowed: true, host, as: policy.as };
  const rule = `users.${user.name}.hosts ${JSON.stringify(policy.hosts)}`;
  return {
    allowed: false,
    reason: `host "${name}" is not one ${user.name} may reach through this gateway (not in its inventory, or not in ${rule} of its users.yaml); list the hosts ${user.name} may reach with: shellwire hosts --via GATEWAY`,
  };
}
