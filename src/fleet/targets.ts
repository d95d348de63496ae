/**
 * Target expressions, as pssh/clush/Ansible users write them. Terms are separated by
 * commas (outside `[…]`) or given as several arguments:
 *
 *   web07            a host name from the inventory (or its address)
 *   web[01-12]       a range of names;  `*` and `?` glob over inventory names
 *   @web             a group;  `@all` or `all` is every host
 *   role=db          hosts whose label matches (the value may use `*`)
 *   10.0.0.5:50007   a host outside the inventory: needs an explicit port or an IP literal
 *   !web07           exclusion;  &dc=east  intersection
 *
 * Like Ansible the result does not depend on the order of the terms: the union of the plain
 * terms (every host when there are only exclusions), intersected with each `&` term, minus
 * the `!` terms. Hosts come out in inventory order. An unknown name is an error — also in an
 * exclusion, where a typo would otherwise run the command on the host meant to be spared.
 */
import { isIP } from 'node:net';
import { ErrorCode, UsageError } from '../errors.js';
import { formatTarget, parseTarget } from '../client/target.js';
import type { FleetHost, Inventory } from './inventory.js';
import { expandRange } from './ranges.js';

/** Split `@web,!web[01,02]` into terms at commas that are not inside brackets. */
export function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      if (current.trim() !== '') terms.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') terms.push(current.trim());
  return terms;
}

/** Expand target expressions (one or several arguments) to hosts. Throws `UsageError`. */
export function resolveTargets(expressions: string | readonly string[], inventory: Inventory): FleetHost[] {
  const terms = (typeof expressions === 'string' ? [expressions] : expressions).flatMap(splitTerms);
  if (terms.length === 0) throw new UsageError(ErrorCode.BAD_TARGET, 'No targets given: name hosts, ranges, @groups or label=value.');
  const resolver = new Resolver(inventory);
  const union = new Set<FleetHost>();
  const intersections: Set<FleetHost>[] = [];
  const exclusions = new Set<FleetHost>();
  let plainTerms = 0;
  // Plain terms first, so `!10.0.0.5:50007` can name an ad-hoc host given after it.
  for (const term of terms) {
    if (term.startsWith('!') || term.startsWith('&')) continue;
    plainTerms++;
    for (const h of resolver.term(term, true)) union.add(h);
  }
  for (const term of terms) {
    if (term.startsWith('!')) for (const h of resolver.term(term.slice(1), false)) exclusions.add(h);
    else if (term.startsWith('&')) intersections.push(new Set(resolver.term(term.slice(1), false)));
  }
  const base: Iterable<FleetHost> = plainTerms === 0 ? inventory.hosts : union;
  const result: FleetHost[] = [];
  for (const host of base) {
    if (exclusions.has(host)) continue;
    if (intersections.some((set) => !set.has(host))) continue;
    result.push(host);
  }
  // Inventory order (ad-hoc hosts keep their command-line order, after the inventory's).
  const rank = new Map(inventory.hosts.map((h, i) => [h, i] as const));
  return result
    .map((h, i) => ({ h, key: rank.get(h) ?? inventory.hosts.length + i }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.h);
}

class Resolver {
  #inventory: Inventory;
  #adHoc = new Map<string, FleetHost>();
  #byAddress = new Map<string, FleetHost>();

  constructor(inventory: Inventory) {
    this.#inventory = inventory;
    for (const host of inventory.hosts) {
      const full = formatTarget({ host: host.address, port: host.port });
      if (!this.#byAddress.has(full)) this.#byAddress.set(full, host);
      if (!this.#byAddress.has(host.address)) this.#byAddress.set(host.address, host);
    }
  }

  /** Hosts one term names; `allowAdHoc`: a `HOST:PORT` outside the inventory is a new host. */
  term(term: string, allowAdHoc: boolean, stack: string[] = []): FleetHost[] {
    if (term === '') throw bad(term, 'empty term');
    if (term === 'all' || term === '@all' || term === '*') return this.#inventory.hosts;
    if (term.startsWith('@')) return this.#group(term.slice(1), stack);
    const eq = term.indexOf('=');
    if (eq > 0 && !term.includes('[')) return this.#label(term.slice(0, eq), term.slice(eq + 1));
    const out: FleetHost[] = [];
    for (const name of expandRange(term)) out.push(...this.#name(name, allowAdHoc));
    return out;
  }

  #group(group: string, stack: string[]): FleetHost[] {
    if (stack.includes(group)) throw bad(`@${group}`, `group "${group}" contains itself (${[...stack, group].join(' → ')})`);
    const members = new Set(this.#inventory.hosts.filter((h) => h.groups.includes(group)));
    const terms = this.#inventory.groupTerms.get(group);
    for (const t of terms ?? []) for (const h of this.term(t, false, [...stack, group])) members.add(h);
    if (members.size === 0 && terms === undefined) {
      const known = new Set([...this.#inventory.groupTerms.keys(), ...this.#inventory.hosts.flatMap((h) => h.groups)]);
      throw bad(`@${group}`, `no group "${group}" in the inventory${known.size ? ` (groups: ${[...known].sort().join(', ')})` : ''}`);
    }
    return this.#inventory.hosts.filter((h) => members.has(h));
  }

  #label(key: string, value: string): FleetHost[] {
    const match = globMatcher(value);
    const hosts = this.#inventory.hosts.filter((h) => h.labels[key] !== undefined && match(h.labels[key]!));
    if (!this.#inventory.hosts.some((h) => h.labels[key] !== undefined)) throw bad(`${key}=${value}`, `no host has a label "${key}"`);
    return hosts;
  }

  #name(name: string, allowAdHoc: boolean): FleetHost[] {
    if (/[*?]/.test(name)) {
      const match = globMatcher(name);
      const hosts = this.#inventory.hosts.filter((h) => match(h.name));
      if (hosts.length === 0) throw bad(name, 'matches no host in the inventory');
      return hosts;
    }
    const known = this.#inventory.byName.get(name) ?? this.#byAddress.get(name);
    if (known) return [known];
    let target;
    try {
      target = parseTarget(name);
    } catch (err) {
      throw bad(name, (err as Error).message);
    }
    const explicit = /:\d+$/.test(name) || isIP(target.host) !== 0;
    if (!explicit) {
      const where = this.#inventory.file ? `in ${this.#inventory.file}` : '(there is no inventory file)';
      throw bad(name, `no host "${name}" ${where}; write HOST:PORT to target a host outside the inventory`);
    }
    const label = formatTarget(target);
    const already = this.#byAddress.get(label);
    if (already) return [already];
    let host = this.#adHoc.get(label);
    if (!allowAdHoc) return host ? [host] : []; // excluding a host that is not targeted: nothing to do
    if (!host) {
      host = { name: label, address: target.host, port: target.port, labels: {}, groups: [] };
      if (target.user !== undefined) host.user = target.user;
      this.#adHoc.set(label, host);
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
