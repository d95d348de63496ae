/**
 * The inventory: `$SHELLWIRE_HOME/inventory.yaml` (or `--inventory FILE`).
 *
 *   defaults: { port: 50007, token-file: ~/.shellwire/fleet-token }
 *   hosts:
 *     web[01-12]:                       # a range: twelve hosts
 *       address: 10.1.0.[11-22]         # zipped with the names (same count)
 *       labels: { role: web, dc: east }
 *       groups: [web, prod]
 *     db03: { address: db03.example, port: 50010, user: ops, identity: ~/.ssh/id_ed25519 }
 *   groups:                             # optional extra membership
 *     prod: [db03, "@web"]
 *   via: alice@bastion:50008            # optional: every host through this gateway (docs/gateway.md);
 *                                       # a host's own "via:" wins, "via: none" means directly
 *
 * `hosts` may also be a list of entries with a `name`. Every schema error names the file
 * and line, because a 500-line inventory with "invalid port" and no line is useless.
 */
import { BoundedFileError, CONFIG_FILE_LIMIT, readBoundedText } from '../auth/bounded-file.js';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Pair } from 'yaml';
import { ErrorCode, UsageError } from '../errors.js';
import { shellwireHome } from '../auth/paths.js';
import { DEFAULT_PORT } from '../client/target.js';
import { parseVia } from '../client/via.js';
import { isNatsUrl, parseNatsServers } from '../transport/nats-connect.js';
import { expandRange } from './ranges.js';

export const INVENTORY_FILE = 'inventory.yaml';

/** One host as the fleet code sees it. */
export interface FleetHost {
  /** The name used in targets and output (`web07`). */
  name: string;
  /** Where to connect: a host name or IP literal (no port). */
  address: string;
  port: number;
  user?: string;
  /** Absolute path of the access token file for this host. */
  tokenFile?: string;
  /** Absolute path of the OpenSSH private key (Ed25519, ECDSA or RSA) to log in with. */
  identity?: string;
  /**
   * The gateway to reach this host through (`[USER@]GW[:PORT]`; inventory `via:`, `--via`):
   * the host is then its name at the gateway, and the login (identity, token file) is the
   * gateway's. Absent: directly.
   */
  via?: string;
  labels: Record<string, string>;
  groups: string[];
  /** `FILE:LINE` where the host was defined, for messages. */
  source?: string;
  /**
   * Selected only by its own name: `all`, groups, labels and globs pass it by (an agent that
   * answered NATS discovery without a known_hosts pin, fleet/nats-discovery.ts: its labels and
   * name are anyone's word).
   */
  nameOnly?: boolean;
}

export interface Inventory {
  /** The file it came from, or null for an empty inventory (no file). */
  file: string | null;
  /** When there is no file: the default path that was looked at (for messages). */
  missing?: string;
  /** In file order; target expansion keeps this order. */
  hosts: FleetHost[];
  byName: Map<string, FleetHost>;
  /** Top-level `groups:` section: group → member terms (names, ranges, `@group`). */
  groupTerms: Map<string, string[]>;
  /**
   * A gateway's hosts (fleet/gateway-hosts.ts): what to say about a name it does not list.
   * One wording for "not in its inventory" and "not permitted", as the gateway itself refuses.
   */
  gatewayHosts?: { where: string; listHint: string };
  /** Told, once per `resolveTargets`, the `nameOnly` hosts a pattern would have selected but did not (for a warning). */
  onNameOnlySkipped?: (hosts: readonly FleetHost[]) => void;
}

/** An inventory that does not follow the schema; `line` is 1-based. */
export class InventoryError extends UsageError {
  override name = 'InventoryError';
  readonly file: string;
  readonly line: number | null;

  constructor(file: string, line: number | null, message: string) {
    super(ErrorCode.BAD_INVENTORY, `${file}${line === null ? '' : `:${line}`}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

export function defaultInventoryPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(shellwireHome(env), INVENTORY_FILE);
}

export function emptyInventory(): Inventory {
  return { file: null, hosts: [], byName: new Map(), groupTerms: new Map() };
}

/**
 * Load an inventory. A missing default file is an empty inventory (ad-hoc `HOST:PORT`
 * targets still work); a missing file the user named is an error.
 *
 * @throws {InventoryError} (a `UsageError`, `SW_ERR_BAD_INVENTORY`, with `file` and `line`) the
 *   named file is missing or unreadable, or its YAML or a host entry is invalid.
 */
export function loadInventory(file?: string, env: NodeJS.ProcessEnv = process.env): Inventory {
  const path = file ?? defaultInventoryPath(env);
  let text: string;
  try {
    text = readBoundedText(path, 'The inventory', CONFIG_FILE_LIMIT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file === undefined) return { ...emptyInventory(), missing: path };
    if (err instanceof BoundedFileError) throw err;
    throw new InventoryError(path, null, `cannot read the inventory: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return parseInventory(text, path);
}

const HOST_KEYS = new Set(['name', 'address', 'port', 'user', 'identity', 'token-file', 'via', 'nats', 'labels', 'groups']);
/** `via: none` in a host (or `--via none`): directly, whatever the inventory's default says. */
export const VIA_NONE = 'none';
const NAME_RE = /^[A-Za-z0-9_.-]+$/;

/**
 * Parse inventory text; `file` is used for messages and to resolve relative token files.
 *
 * @throws {InventoryError} the YAML or a host entry is invalid (`file`, `line`).
 */
export function parseInventory(text: string, file: string): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const lineOf = (node: unknown): number | null => {
    const range = (node as Node | null)?.range;
    return range ? lines.linePos(range[0]).line : null;
  };
  const fail = (node: unknown, message: string): never => {
    throw new InventoryError(file, lineOf(node), message);
  };
  const firstError = doc.errors[0];
  if (firstError) throw new InventoryError(file, firstError.linePos?.[0].line ?? null, `not valid YAML: ${firstError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);

  const inventory = emptyInventory();
  inventory.file = file;
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return inventory;
  if (!isMap(root)) fail(root, 'the inventory must be a mapping with "hosts:" (and optional "defaults:", "groups:")');
  const rootMap = root as unknown as { items: Pair[] };
  let defaults: Omit<HostFields, 'name'> = { labels: {}, groups: [] };
  let hostsNode: unknown = null;
  let topVia: string | undefined;
  for (const pair of rootMap.items) {
    const key = scalarKey(pair, fail);
    if (key === 'defaults') defaults = readHostFields(pair.value, fail, file, { labels: {}, groups: [] }, false);
    else if (key === 'hosts') hostsNode = pair.value;
    else if (key === 'groups') readGroupTerms(pair.value, fail, inventory.groupTerms);
    else if (key === 'via') topVia = readVia(pair.value ?? pair.key, fail);
    else fail(pair.key, `unknown top-level key "${key}" (expected hosts, defaults, groups, via)`);
  }
  // The top-level default is the defaults' default: `defaults: { via: }` and a host's own win.
  if (topVia !== undefined && defaults.via === undefined) defaults = { ...defaults, via: topVia };
  const entries: Array<{ node: unknown; nameNode: unknown; fields: HostFields }> = [];
  if (hostsNode === null || (isScalar(hostsNode) && hostsNode.value === null)) {
    // no hosts yet
  } else if (isMap(hostsNode)) {
    for (const pair of hostsNode.items as Pair[]) {
      const name = scalarKey(pair, fail);
      const fields = readHostFields(pair.value, fail, file, defaults, true);
      if (fields.name !== undefined && fields.name !== name) fail(pair.value, `"name: ${fields.name}" disagrees with the key "${name}"`);
      entries.push({ node: pair.value ?? pair.key, nameNode: pair.key, fields: { ...fields, name } });
    }
  } else if (isSeq(hostsNode)) {
    for (const item of hostsNode.items) {
      const fields = readHostFields(item, fail, file, defaults, true);
      if (fields.name === undefined) fail(item, 'a host entry needs a "name"');
      entries.push({ node: item, nameNode: item, fields });
    }
  } else {
    fail(hostsNode, '"hosts" must be a mapping (NAME: {address, port, …}) or a list of entries with "name"');
  }

  for (const { node, nameNode, fields } of entries) {
    let names: string[];
    let addresses: string[];
    try {
      names = expandRange(fields.name!);
      addresses = fields.address === undefined ? names : expandRange(fields.address);
    } catch (err) {
      return fail(nameNode, (err as Error).message);
    }
    if (addresses.length !== names.length) {
      fail(node, `"${fields.name}" is ${names.length} hosts but address "${fields.address}" is ${addresses.length}; use a range of the same size`);
    }
    names.forEach((name, i) => {
      if (!NAME_RE.test(name)) fail(nameNode, `"${name}" is not a valid host name (letters, digits, ".", "_", "-")`);
      const address = addresses[i]!;
      if (address.includes(':') && isIP(address) !== 6) fail(node, `address "${address}" includes a port; write it as "port:"`);
      const previous = inventory.byName.get(name);
      if (previous) fail(nameNode, `host "${name}" is defined twice (first at ${previous.source})`);
      const host: FleetHost = { name, address, port: fields.port ?? DEFAULT_PORT, labels: { ...fields.labels }, groups: [...fields.groups] };
      if (fields.user !== undefined) host.user = fields.user;
      if (fields.tokenFile !== undefined) host.tokenFile = fields.tokenFile;
      if (fields.identity !== undefined) host.identity = fields.identity;
      if (fields.via !== undefined && fields.via !== VIA_NONE) host.via = fields.via;
      host.source = `${file}:${lineOf(nameNode) ?? '?'}`;
      inventory.hosts.push(host);
      inventory.byName.set(name, host);
    });
  }
  return inventory;
}

interface HostFields {
  name?: string;
  address?: string;
  port?: number;
  user?: string;
  identity?: string;
  tokenFile?: string;
  via?: string;
  labels: Record<string, string>;
  groups: string[];
}

type Fail = (node: unknown, message: string) => never;

function scalarKey(pair: Pair, fail: Fail): string {
  if (!isScalar(pair.key) || typeof pair.key.value !== 'string' && typeof pair.key.value !== 'number') fail(pair.key, 'keys must be plain names');
  return String((pair.key as { value: unknown }).value);
}

function readHostFields(node: unknown, fail: Fail, file: string, base: Omit<HostFields, 'name'>, isHost: boolean): HostFields {
  const fields: HostFields = { ...base, labels: { ...base.labels }, groups: [...base.groups] };
  if (node === null || node === undefined || (isScalar(node) && node.value === null)) return fields;
  if (!isMap(node)) fail(node, `a ${isHost ? 'host entry' : '"defaults"'} must be a mapping of ${[...HOST_KEYS].join(', ')}`);
  for (const pair of (node as unknown as { items: Pair[] }).items) {
    const key = scalarKey(pair, fail);
    const value = pair.value;
    const scalar = isScalar(value) ? value.value : undefined;
    if (!HOST_KEYS.has(key) || (!isHost && (key === 'name' || key === 'address'))) fail(pair.key, `unknown key "${key}" (expected ${[...HOST_KEYS].join(', ')})`);
    switch (key) {
      case 'name':
      case 'address':
      case 'user':
        if (typeof scalar !== 'string' && typeof scalar !== 'number') fail(value ?? pair.key, `"${key}" must be a string`);
        fields[key] = String(scalar);
        break;
      case 'port':
        if (typeof scalar !== 'number' || !Number.isInteger(scalar) || scalar < 1 || scalar > 65535) fail(value ?? pair.key, '"port" must be a number from 1 to 65535');
        fields.port = scalar as number;
        break;
      case 'token-file':
        if (typeof scalar !== 'string') fail(value ?? pair.key, '"token-file" must be a path');
        fields.tokenFile = resolvePath(scalar as string, file);
        break;
      case 'identity':
        if (typeof scalar !== 'string') fail(value ?? pair.key, '"identity" must be the path of a private key file');
        fields.identity = resolvePath(scalar as string, file);
        break;
      case 'via':
        fields.via = readVia(value ?? pair.key, fail);
        break;
      case 'nats': {
        // `nats: nats://A,nats://B`: the host is an agent reached through NATS (docs/nats.md), as `via: nats://…`.
        const via = readVia(value ?? pair.key, fail);
        if (!isNatsUrl(via)) fail(value ?? pair.key, '"nats" must be NATS server URLs, nats://HOST[:PORT],…');
        fields.via = via;
        break;
      }
      case 'labels':
        if (!isMap(value)) fail(value ?? pair.key, '"labels" must be a mapping (role: web)');
        for (const label of (value as unknown as { items: Pair[] }).items) {
          const name = scalarKey(label, fail);
          const v = isScalar(label.value) ? label.value.value : undefined;
          if (!NAME_RE.test(name)) fail(label.key, `label name "${name}" may use letters, digits, ".", "_", "-"`);
          if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') fail(label.value ?? label.key, `label "${name}" must have a plain value`);
          fields.labels[name] = String(v);
        }
        break;
      case 'groups': {
        const list = isSeq(value) ? value.items : isScalar(value) ? [value] : fail(value ?? pair.key, '"groups" must be a list of names');
        for (const item of list) {
          const g = isScalar(item) ? item.value : undefined;
          if (typeof g !== 'string' || !NAME_RE.test(g)) fail(item, 'group names may use letters, digits, ".", "_", "-"');
          if (!fields.groups.includes(g as string)) fields.groups.push(g as string);
        }
        break;
      }
    }
  }
  return fields;
}

/**
 * A `via:` value: `[USER@]GW[:PORT]` (checked as --via checks it, so a typo is named with
 * its line, not found at connect time) or `none`.
 */
function readVia(node: unknown, fail: Fail): string {
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value !== 'string' || value.trim() === '') return fail(node, '"via" must be a gateway, [USER@]GATEWAY[:PORT], NATS servers (nats://HOST[:PORT],…), or "none"');
  if (value === VIA_NONE) return value;
  try {
    if (isNatsUrl(value)) parseNatsServers(value);
    else parseVia(value);
  } catch (err) {
    return fail(node, (err as Error).message);
  }
  return value;
}

function readGroupTerms(node: unknown, fail: Fail, out: Map<string, string[]>): void {
  if (node === null || (isScalar(node) && node.value === null)) return;
  if (!isMap(node)) fail(node, '"groups" must be a mapping of group name to a list of members');
  for (const pair of (node as unknown as { items: Pair[] }).items) {
    const group = scalarKey(pair, fail);
    if (!NAME_RE.test(group)) fail(pair.key, `group name "${group}" may use letters, digits, ".", "_", "-"`);
    if (!isSeq(pair.value)) fail(pair.value ?? pair.key, `group "${group}" must list its members`);
    const terms: string[] = [];
    for (const item of (pair.value as unknown as { items: unknown[] }).items) {
      if (!isScalar(item) || typeof item.value !== 'string') fail(item, `members of "${group}" must be host names, ranges or @groups`);
      terms.push((item as { value: string }).value);
    }
    out.set(group, terms);
  }
}

function resolvePath(path: string, inventoryFile: string): string {
  if (path === '~' || path.startsWith('~/')) return join(homedir(), path.slice(1));
  return isAbsolute(path) ? path : resolve(dirname(inventoryFile), path);
}
