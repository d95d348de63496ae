/**
 * One host as the user wrote it → where and how to connect, the way ssh_config's `Host`
 * aliases work: `web01` is looked up in the inventory (its address, port, user, identity and
 * token file), `alice@web01:2222` takes the inventory entry with the user and port written
 * there, and anything else is an ad-hoc `[USER@]HOST[:PORT]`. The command line's flags
 * (`-p`, `-l`, `-i`, `--token-file`) win over both, as ssh's options win over its config.
 *
 * Every command that takes a host uses this (exec, shell, tty, put, get, ls through
 * `connectFromFlags`; run's target expressions through targets.ts; the fan-out pool through
 * `connectArgs`), so a host means the same thing everywhere.
 */
import { isIP } from 'node:net';
import type { ConnectOptions } from '../client/connect.js';
import { formatTarget, parseTarget, type Target } from '../client/target.js';
import type { FleetHost, Inventory } from './inventory.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import { isAgentName } from '../protocol/nats-subjects.js';

/** What the command line says about the connection, above the inventory. */
export interface HostOverrides {
  user?: string;
  port?: number;
  identity?: string;
  tokenFile?: string;
  /** `--via GW`: through this gateway; null (`--via none`): directly, whatever the inventory says. */
  via?: string | null;
}

export interface ResolvedHost {
  /** Where and how to connect. */
  host: FleetHost;
  /** The inventory entry it came from, or null for an ad-hoc host. */
  entry: FleetHost | null;
}

const addressIndex = new WeakMap<Inventory, Map<string, FleetHost>>();

/**
 * `ADDRESS:PORT` → the first inventory host with it; bare `ADDRESS` → the host at that
 * address only when it is the only one there (two hosts on one address, on other ports or
 * with other users, leave a bare address ad-hoc rather than pick one of them silently).
 */
function byAddress(inventory: Inventory): Map<string, FleetHost> {
  let index = addressIndex.get(inventory);
  if (!index) {
    index = new Map();
    const perAddress = new Map<string, number>();
    for (const host of inventory.hosts) perAddress.set(host.address, (perAddress.get(host.address) ?? 0) + 1);
    for (const host of inventory.hosts) {
      const full = formatTarget({ host: host.address, port: host.port });
      if (!index.has(full)) index.set(full, host);
      if (perAddress.get(host.address) === 1) index.set(host.address, host);
    }
    addressIndex.set(inventory, index);
  }
  return index;
}

/**
 * The inventory host `[USER@]NAME[:PORT]` names (by name, else by address), with the user
 * and port written in the text applied; null when it names none.
 */
export function findInventoryHost(text: string, inventory: Inventory): ResolvedHost | null {
  const at = text.lastIndexOf('@');
  // `@web` is a group, not a host; an empty inventory names nothing.
  if (at === 0 || inventory.hosts.length === 0) return null;
  const user = at > 0 ? text.slice(0, at) : undefined;
  const rest = at >= 0 ? text.slice(at + 1) : text;
  let entry = inventory.byName.get(rest);
  let port: number | undefined;
  if (!entry) {
    const m = /^(.+):(\d+)$/.exec(rest);
    const named = m ? inventory.byName.get(m[1]!) : undefined;
    if (named) {
      entry = named;
      port = parseTarget(`${m![1]}:${m![2]}`).port; // validates the range
    }
  }
  if (!entry) {
    let target: Target;
    try {
      target = parseTarget(rest);
    } catch {
      return null;
    }
    const index = byAddress(inventory);
    // A bare address names the host at that address whatever its port (as run always did).
    const explicitPort = rest.startsWith('[') ? /\]:\d+$/.test(rest) : isIP(rest) !== 6 && /:\d+$/.test(rest);
    entry = index.get(formatTarget(target)) ?? (explicitPort ? undefined : index.get(target.host));
    if (!entry) return null;
  }
  if (user === undefined && port === undefined) return { host: entry, entry };
  // A copy with its own name, so output and known_hosts messages say what was written.
  const host: FleetHost = { ...entry, name: text };
  if (user !== undefined) host.user = user;
  if (port !== undefined) host.port = port;
  return { host, entry };
}

/**
 * Whether `text` is a target expression (`@web`, `role=web`, `a&b`, `!x`, `a,b`, `web[01-03]`,
 * globs) rather than one host: the single-host commands point those at `run`.
 */
export function isTargetExpression(text: string): boolean {
  return text.startsWith('@') || text.startsWith('!') || /[=&,*?]/.test(text) || /\[\d+-\d+\]/.test(text);
}

/**
 * `text` as an inventory host, else as an ad-hoc `[USER@]HOST[:PORT]`; then the command
 * line's overrides.
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` when `text` is neither an inventory host nor a
 *   valid `[USER@]HOST[:PORT]`.
 */
export function resolveHost(text: string, inventory: Inventory, overrides: HostOverrides = {}): ResolvedHost {
  const found = findInventoryHost(text, inventory);
  if (found) return { host: withOverrides(found.host, overrides), entry: found.entry };
  const target = parseTarget(text);
  const host: FleetHost = { name: text, address: target.host, port: target.port, labels: {}, groups: [] };
  if (target.user !== undefined) host.user = target.user;
  return { host: withOverrides(host, overrides), entry: null };
}

/** `host` with the command line's settings in place of its own (the host itself is not changed). */
export function withOverrides(host: FleetHost, overrides: HostOverrides): FleetHost {
  const { user, port, identity, tokenFile, via } = overrides;
  if (user === undefined && port === undefined && identity === undefined && tokenFile === undefined && via === undefined) return host;
  const copy: FleetHost = { ...host };
  if (via === null) delete copy.via;
  else if (via !== undefined) copy.via = via;
  if (user !== undefined) copy.user = user;
  if (port !== undefined) copy.port = port;
  if (identity !== undefined) copy.identity = identity;
  if (tokenFile !== undefined) copy.tokenFile = tokenFile;
  return copy;
}

/**
 * The target and options `connect()` takes for `host`: its user, key and token file over
 * `base`. Through a gateway (`host.via`) the target is the host's name at the gateway and
 * the key and token file log in to the gateway; the host's `user` is not sent (the
 * gateway's users.yaml `as:` picks the account on the host).
 */
export function connectArgs(host: FleetHost, base: ConnectOptions = {}): { target: Target | string; options: ConnectOptions } {
  const options: ConnectOptions = { ...base };
  if (host.tokenFile !== undefined) {
    options.tokenFile = host.tokenFile;
    delete options.token;
  }
  if (host.identity !== undefined) options.identity = host.identity;
  if (host.via !== undefined && isNatsUrl(host.via)) {
    // Through NATS the host is an agent, named by its inventory name (or, ad hoc, the name
    // written: `alice@web1`); the login is end to end, so its user goes with it.
    options.via = host.via;
    const name = isAgentName(host.name) ? host.name : host.address;
    return { target: host.user === undefined ? { host: name, port: 0 } : { user: host.user, host: name, port: 0 }, options };
  }
  if (host.via !== undefined) {
    options.via = host.via;
    return { target: host.name, options };
  }
  const target: Target = host.user === undefined ? { host: host.address, port: host.port } : { user: host.user, host: host.address, port: host.port };
  return { target, options };
}

/** One line for `-v`: where a host came from and what it says. */
export function describeHost(resolved: ResolvedHost): string {
  const { host, entry } = resolved;
  const where = host.via === undefined ? formatTarget({ host: host.address, port: host.port }) : isNatsUrl(host.via) ? `agent ${isAgentName(host.name) ? host.name : host.address} through NATS ${host.via}` : `${host.name} through the gateway ${host.via}`;
  const details = [
    host.user !== undefined ? `user ${host.user}` : null,
    host.identity !== undefined ? `identity ${host.identity}` : null,
    host.tokenFile !== undefined ? `token-file ${host.tokenFile}` : null,
  ].filter((x) => x !== null);
  const origin = entry ? `inventory entry "${entry.name}" (${entry.source ?? 'inventory'})` : 'not in the inventory (ad-hoc)';
  return `${host.name} → ${where}: ${origin}${details.length ? `; ${details.join(', ')}` : ''}`;
}
