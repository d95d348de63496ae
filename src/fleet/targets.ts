/**
 * Target expressions, as pssh/clush/Ansible users write them. One grammar, everywhere a
 * command takes TARGETS (run, hosts, the library's runOn):
 *
 *   TARGETS    := ITEM ("," ITEM)*        several arguments are joined with ","
 *   ITEM       := ["!" | "&"] SELECTION ("&" ["!"] SELECTION)*
 *   SELECTION  := web07                   a host name from the inventory (or its address)
 *               | alice@web07:2222        the same host with another user / port
 *               | web[01-12]  web0*       a range of names;  `*` and `?` glob over names
 *               | @web                    a group;  `@all`, `all` or `*` is every host
 *               | role=db  role=d*        hosts whose label matches (the value may use `*`)
 *               | 10.0.0.5:50007          a host outside the inventory: needs a port or an IP literal
 *
 * `,` is union and binds loosest; inside an item `&` is intersection and `&!` removes
 * (`@web&dc=east`, `dc=east&@web`, `role=web&dc=east&!web07`). A whole item may start with
 * `!` (remove it from the result: `@web,!web07`) or `&` (intersect the result with it:
 * `@web,&dc=east`). Like Ansible the result does not depend on the order of the items: the
 * union of the plain items (every host when there are only `!` items), intersected with each
 * `&` item, minus each `!` item. Hosts come out in inventory order.
 *
 * An unknown name is an error — also in an exclusion, where a typo would otherwise run the
 * command on the host meant to be spared — and so is a selection that comes out empty
 * (`NoHostsMatchedError`), unless the caller allows it: "0 hosts, exit 0" is how a typo in
 * a label value goes unnoticed.
 */
import { isIP } from 'node:net';
import { ErrorCode, UsageError } from '../errors.js';
import { formatTarget, parseTarget } from '../client/target.js';
import type { FleetHost, Inventory } from './inventory.js';
import { expandRange } from './ranges.js';
import { findInventoryHost } from './resolve-host.js';

export interface ResolveTargetsOptions {
  /** Return `[]` instead of throwing when the targets match no host. */
  allowEmpty?: boolean;
}

/** Targets that are valid but match no host (`role=web&dc=nowhere`). */
export class NoHostsMatchedError extends UsageError {
  override name = 'NoHostsMatchedError';
  /** The expression as given (arguments joined with spaces). */
  readonly targets: string;

  constructor(targets: string, message: string) {
    super(ErrorCode.NO_HOSTS_MATCHED, message);
    this.targets = targets;
  }
}

/** Split `@web,!web[01,02]` into terms at commas that are not inside brackets. */
export function splitTerms(text: string): string[] {
  return splitOutsideBrackets(text, ',');
}

function splitOutsideBrackets(text: string, separator: string, keepEmpty = false): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    if (ch === separator && depth === 0) {
      if (keepEmpty || current.trim() !== '') terms.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (keepEmpty || current.trim() !== '') terms.push(current.trim());
  return terms;
}

/**
 * Expand target expressions (one or several arguments) to hosts.
 *
 * @throws {NoHostsMatchedError} nothing matched (unless `allowEmpty`).
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a malformed expression, range or address.
 */
export function resolveTargets(expressions: string | readonly string[], inventory: Inventory, options: ResolveTargetsOptions = {}): FleetHost[] {
  const given = typeof expressions === 'string' ? [expressions] : [...expressions];
  const items = given.flatMap(splitTerms);
  if (items.length === 0) throw new UsageError(ErrorCode.BAD_TARGET, 'No targets given: name hosts, ranges, @groups or label=value.');
  const { result, resolver } = resolveItems(items, inventory, true);
  // `nameOnly` hosts (unverified NATS agents) that a pattern would have selected: said, not silently dropped.
  if (inventory.onNameOnlySkipped && inventory.hosts.some((h) => h.nameOnly)) {
    let unrestricted: FleetHost[] = [];
    try {
      unrestricted = resolveItems(items, inventory, false).result;
    } catch {
      // The same expression failed the first pass too, or will: nothing more to say.
    }
    const selected = new Set(result.map((h) => h.name));
    const skipped = unrestricted.filter((h) => h.nameOnly && !selected.has(h.name));
    if (skipped.length > 0) inventory.onNameOnlySkipped(skipped);
  }
  if (result.length === 0 && !options.allowEmpty) throw resolver.nothingMatched(given.join(' '));
  // Inventory order (ad-hoc hosts keep their command-line order, after the inventory's).
  const rank = new Map(inventory.hosts.map((h, i) => [h, i] as const));
  return result
    .map((h, i) => ({ h, key: rank.get(resolver.key(h)) ?? inventory.hosts.length + i }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.h);
}

/** The hosts `items` select; `honorNameOnly`: `nameOnly` hosts only by their name (false: as any host). */
function resolveItems(items: readonly string[], inventory: Inventory, honorNameOnly: boolean): { result: FleetHost[]; resolver: Resolver } {
  const resolver = new Resolver(inventory, honorNameOnly);
  const union: FleetHost[] = [];
  const inUnion = new Set<FleetHost>();
  const intersections: Set<FleetHost>[] = [];
  const exclusions = new Set<FleetHost>();
  let plainItems = 0;
  // Plain items first, so `!10.0.0.5:50007` can name an ad-hoc host given after it.
  for (const item of items) {
    if (item.startsWith('!') || item.startsWith('&')) continue;
    plainItems++;
    for (const h of resolver.item(item, true)) {
      if (inUnion.has(h)) continue;
      inUnion.add(h);
      union.push(h);
    }
  }
  for (const item of items) {
    if (item.startsWith('!')) for (const h of resolver.item(item.slice(1), false)) exclusions.add(resolver.key(h));
    else if (item.startsWith('&')) intersections.push(new Set(resolver.item(item.slice(1), false).map((h) => resolver.key(h))));
  }
  const base: readonly FleetHost[] = plainItems === 0 ? resolver.patternHosts : union;
  const result: FleetHost[] = [];
  for (const host of base) {
    const key = resolver.key(host);
    if (exclusions.has(key)) continue;
    if (intersections.some((set) => !set.has(key))) continue;
    result.push(host);
  }
  return { result, resolver };
}

class Resolver {
  #inventory: Inventory;
  /** Hosts made from text (ad-hoc, or an inventory host with another user/port), by text. */
  #made = new Map<string, FleetHost>();
  /** A host with another user/port → its inventory entry, which set operations compare. */
  #origin = new Map<FleetHost, FleetHost>();
  /** What each selection matched, for the message when nothing is left. */
  #counts: Array<{ text: string; count: number; hint: string }> = [];

  /** The hosts a pattern (`all`, a group, a label, a glob) may select: not the `nameOnly` ones, unless told otherwise. */
  readonly patternHosts: readonly FleetHost[];

  constructor(inventory: Inventory, honorNameOnly = true) {
    this.#inventory = inventory;
    this.patternHosts = honorNameOnly && inventory.hosts.some((h) => h.nameOnly) ? inventory.hosts.filter((h) => !h.nameOnly) : inventory.hosts;
  }

  /** The inventory host `host` stands for (itself unless it carries another user/port). */
  key(host: FleetHost): FleetHost {
    return this.#origin.get(host) ?? host;
  }

  /** Hosts one item names: selections joined by `&` (intersection) and `&!` (removal). */
  item(item: string, allowAdHoc: boolean): FleetHost[] {
    const parts = splitOutsideBrackets(item, '&', true);
    let hosts: FleetHost[] | null = null;
    for (const [i, raw] of parts.entries()) {
      const negate = raw.startsWith('!');
      const text = negate ? raw.slice(1).trim() : raw;
      if (text === '') throw bad(item, parts.length > 1 ? 'a selection before or after "&" is empty' : 'empty term');
      const selected = this.selection(text, allowAdHoc && i === 0 && !negate);
      if (hosts === null) {
        const keys = new Set(selected.map((h) => this.key(h)));
        hosts = negate ? this.patternHosts.filter((h) => !keys.has(h)) : selected;
        continue;
      }
      const keys = new Set(selected.map((h) => this.key(h)));
      hosts = hosts.filter((h) => keys.has(this.key(h)) !== negate);
    }
    return hosts ?? [];
  }

  /** Hosts one selection names; `allowAdHoc`: a `HOST:PORT` outside the inventory is a new host. */
  selection(term: string, allowAdHoc: boolean): FleetHost[] {
    const hosts = this.term(term, allowAdHoc);
    this.#counts.push({ text: term, count: hosts.length, hint: hosts.length === 0 ? this.#hint(term) : '' });
    return hosts;
  }

  term(term: string, allowAdHoc: boolean, stack: string[] = []): FleetHost[] {
    if (term === '') throw bad(term, 'empty term');
    if (term === 'all' || term === '@all' || term === '*') return [...this.patternHosts];
    if (term.startsWith('@')) return this.#group(term.slice(1), stack);
    const eq = term.indexOf('=');
    if (eq > 0 && !term.includes('[')) return this.#label(term.slice(0, eq), term.slice(eq + 1));
    const out: FleetHost[] = [];
    for (const name of expandRange(term)) out.push(...this.#name(name, allowAdHoc));
    return out;
  }

  /** Why nothing is left: what each selection matched, and what the inventory has. */
  nothingMatched(targets: string): NoHostsMatchedError {
    const inv = this.#inventory;
    const counts = this.#counts.map((c) => `${c.text} → ${c.count}${c.hint}`).join(', ');
    // Each part matched something: it is the combination (& or !) that leaves nothing.
    const parts = this.#counts.every((c) => c.count > 0) ? `${counts}, but none is left after & and !` : counts;
    const where = inv.file
      ? `The inventory ${inv.file} has ${inv.hosts.length} host${inv.hosts.length === 1 ? '' : 's'}`
      : `There is no inventory${inv.missing ? ` (looked for ${inv.missing})` : ''}`;
    const nameOnly = inv.hosts.length - this.patternHosts.length;
    // Said, or "role is db" above would contradict "match no host".
    const unpinned = nameOnly > 0 ? ` ${nameOnly} of them ${nameOnly === 1 ? 'is' : 'are'} selected by name only (NATS agents not pinned in known_hosts, or in conflict: --accept-new-host lets patterns select unpinned ones).` : '';
    return new NoHostsMatchedError(targets, `Targets "${targets}" match no host: ${parts}. ${where}.${unpinned}`);
  }

  #hint(term: string): string {
    const eq = term.indexOf('=');
    if (eq <= 0 || term.includes('[')) return '';
    const key = term.slice(0, eq);
    const values = [...new Set(this.#inventory.hosts.map((h) => h.labels[key]).filter((v) => v !== undefined))].sort();
    return values.length ? ` (${key} is ${values.slice(0, 10).join(', ')}${values.length > 10 ? ', …' : ''})` : '';
  }

  #group(group: string, stack: string[]): FleetHost[] {
    if (stack.includes(group)) throw bad(`@${group}`, `group "${group}" contains itself (${[...stack, group].join(' → ')})`);
    const members = new Set(this.patternHosts.filter((h) => h.groups.includes(group)));
    const terms = this.#inventory.groupTerms.get(group);
    for (const t of terms ?? []) for (const h of this.term(t, false, [...stack, group])) members.add(this.key(h));
    // A group whose only members are `nameOnly` exists: it selects nothing (said by onNameOnlySkipped), not "no group".
    if (members.size === 0 && terms === undefined && !this.#inventory.hosts.some((h) => h.groups.includes(group))) {
      const known = new Set([...this.#inventory.groupTerms.keys(), ...this.#inventory.hosts.flatMap((h) => h.groups)]);
      throw bad(`@${group}`, `no group "${group}" in the inventory${known.size ? ` (groups: ${[...known].sort().join(', ')})` : ''}`);
    }
    return this.#inventory.hosts.filter((h) => members.has(h));
  }

  #label(key: string, value: string): FleetHost[] {
    const match = globMatcher(value);
    const hosts = this.patternHosts.filter((h) => h.labels[key] !== undefined && match(h.labels[key]!));
    if (!this.#inventory.hosts.some((h) => h.labels[key] !== undefined)) throw bad(`${key}=${value}`, `no host has a label "${key}"`);
    return hosts;
  }

  #name(name: string, allowAdHoc: boolean): FleetHost[] {
    if (/[*?]/.test(name)) {
      const match = globMatcher(name);
      const hosts = this.patternHosts.filter((h) => match(h.name));
      if (hosts.length === 0 && !this.#inventory.hosts.some((h) => match(h.name))) throw bad(name, 'matches no host in the inventory');
      return hosts;
    }
    const made = this.#made.get(name);
    if (made) return [made];
    const found = findInventoryHost(name, this.#inventory);
    if (found) {
      if (found.host !== found.entry) {
        this.#made.set(name, found.host);
        this.#origin.set(found.host, found.entry!);
      }
      return [found.host];
    }
    let target;
    try {
      target = parseTarget(name);
    } catch (err) {
      // parseTarget's own message already says `Bad target "…": …, Write HOST…`: not said twice.
      if (err instanceof UsageError) throw err;
      throw bad(name, (err as Error).message);
    }
    const explicit = /:\d+$/.test(name) || isIP(target.host) !== 0;
    if (!explicit && this.#inventory.gatewayHosts) {
      const { where, listHint } = this.#inventory.gatewayHosts;
      throw bad(name, `host "${name}" is not one you may reach through ${where} (it is not in the gateway's inventory, or your users.yaml hosts there do not include it); ${listHint}`);
    }
    if (!explicit) {
      const where = this.#inventory.file ? `in ${this.#inventory.file}` : '(there is no inventory file)';
      throw bad(name, `no host "${name}" ${where}; write HOST:PORT to target a host outside the inventory`);
    }
    const label = formatTarget(target);
    let host = this.#made.get(label);
    if (!allowAdHoc) return host ? [host] : []; // excluding a host that is not targeted: nothing to do
    if (!host) {
      host = { name: label, address: target.host, port: target.port, labels: {}, groups: [] };
      if (target.user !== undefined) host.user = target.user;
      this.#made.set(label, host);
    }
    return [host];
  }
}

/** `*` any run, `?` one character; everything else literal. */
export function globMatcher(pattern: string): (text: string) => boolean {
  if (!/[*?]/.test(pattern)) return (text) => text === pattern;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return (text) => re.test(text);
}

function bad(term: string, why: string): UsageError {
  return new UsageError(ErrorCode.BAD_TARGET, `Bad target "${term}": ${why}.`);
}
