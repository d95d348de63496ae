/**
 * The live agents on a NATS cluster (docs/nats.md, "Discovery and presence"): `discoverAgents`
 * asks every agent (`P.discover`) and collects the answers until none came for
 * DISCOVERY_STALL_MS (at most DISCOVERY_MAX_MS); `natsInventory` makes them an inventory, so
 * target expressions (`@web` = label group=web, `role=db`, `web[01-03]`, `!web07`) mean over
 * NATS what they mean over a local inventory. `PresenceWatcher` follows `P.presence.*` and
 * drops an agent PRESENCE_TTL_MS after its last announcement (or at once on `gone`).
 *
 * Every record is signed by its agent's host key (auth/presence-auth.ts); an answer that is
 * malformed, forged (bad signature, or a fingerprint that is not its key's) or stale is not used.
 * Then known_hosts decides, as for a connection (`judgeAgents`): an answer whose key is not the
 * one pinned for `nats:NAME` is ignored (a `changed` problem, which the CLI warns about); of
 * several answers for one name the pinned one wins; with no pin, one key is `unverified` and
 * several are a `conflict`. Only verified agents' labels select hosts: in the inventory an
 * unverified or conflicting agent is `nameOnly` (its plain name selects it, no label, group or
 * glob does) unless the caller accepts new agents (`--accept-new-host`, not for conflicts).
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { emptyInventory, type FleetHost, type Inventory } from './inventory.js';
import { DEFAULT_NATS_PREFIX, PRESENCE_TTL_MS, checkNatsPrefix, natsSubjects, type PresenceRecord } from '../protocol/nats-subjects.js';
import { checkPresence } from '../auth/presence-auth.js';
import { readKnownHostEntries } from '../auth/known-hosts.js';
import { knownHostsPath } from '../auth/paths.js';

/** Discovery stops this long after the last answer… */
export const DISCOVERY_STALL_MS = 250;
/** …and at the latest after this long. */
export const DISCOVERY_MAX_MS = 3_000;

/**
 * How far an agent's record can be trusted: `verified`, its key is the one known_hosts pins for
 * `nats:NAME`; `unverified`, nothing is pinned for the name (anyone could have answered);
 * `conflict`, nothing is pinned and agents with different keys answered under the name.
 */
export type AgentTrust = 'verified' | 'unverified' | 'conflict';

export interface DiscoveredAgent extends PresenceRecord {
  trust: AgentTrust;
}

/** An answer not used, or a name that needs the operator's attention. */
export type DiscoveryProblem =
  /** A good record whose key is not the pinned one: ignored. */
  | { kind: 'changed'; name: string; fingerprint: string; pinned: string[] }
  /** Several keys answered for an unpinned name: all listed as `conflict`, none selected by patterns. */
  | { kind: 'conflict'; name: string; fingerprints: string[] }
  /** A record whose signature does not check or whose fingerprint is not its key's: ignored. */
  | { kind: 'forged'; name: string; fingerprint: string }
  /** A record signed too long ago, or too far ahead of this clock: ignored. */
  | { kind: 'stale' | 'future'; name: string; fingerprint: string; issuedAt: string }
  /** Not a presence record at all. */
  | { kind: 'malformed'; detail: string };

export interface Discovery {
  /** By name (an agent in conflict once per key), each with how far it is trusted. */
  agents: DiscoveredAgent[];
  problems: DiscoveryProblem[];
}

/** known_hosts' `nats:NAME` pins: name → pinned fingerprints. */
export type AgentPins = ReadonlyMap<string, readonly string[]>;

/** The `nats:NAME` pins of a known_hosts file (default $SHELLWIRE_HOME/known_hosts). */
export function readAgentPins(file: string = knownHostsPath()): Map<string, string[]> {
  const pins = new Map<string, string[]>();
  for (const entry of readKnownHostEntries(file)) {
    if (!entry.host.startsWith('nats:')) continue;
    const name = entry.host.slice(5);
    pins.set(name, [...(pins.get(name) ?? []), entry.fingerprint]);
  }
  return pins;
}

/**
 * Judge good (signature-checked, fresh) records against the pins, as described at the top. Of
 * several records with the same name and key the newest counts (an older one may be a replay).
 */
export function judgeAgents(records: readonly PresenceRecord[], pins: AgentPins): Discovery {
  const byName = new Map<string, Map<string, PresenceRecord>>();
  for (const r of records) {
    let keys = byName.get(r.name);
    if (!keys) byName.set(r.name, (keys = new Map()));
    const held = keys.get(r.fingerprint);
    if (!held || Date.parse(r.issuedAt) > Date.parse(held.issuedAt)) keys.set(r.fingerprint, r);
  }
  const agents: DiscoveredAgent[] = [];
  const problems: DiscoveryProblem[] = [];
  for (const [name, keys] of byName) {
    const pinned = pins.get(name) ?? [];
    const answers = [...keys.values()];
    if (pinned.length > 0) {
      for (const r of answers) if (!pinned.includes(r.fingerprint)) problems.push({ kind: 'changed', name, fingerprint: r.fingerprint, pinned: [...pinned] });
      const good = answers.filter((r) => pinned.includes(r.fingerprint)).sort((a, b) => Date.parse(b.issuedAt) - Date.parse(a.issuedAt));
      if (good[0]) agents.push({ ...good[0], trust: 'verified' });
    } else if (answers.length === 1) {
      agents.push({ ...answers[0]!, trust: 'unverified' });
    } else {
      problems.push({ kind: 'conflict', name, fingerprints: answers.map((r) => r.fingerprint).sort() });
      for (const r of answers) agents.push({ ...r, trust: 'conflict' });
    }
  }
  agents.sort((a, b) => a.name.localeCompare(b.name) || a.fingerprint.localeCompare(b.fingerprint));
  return { agents, problems };
}

/** Check raw answers (auth/presence-auth.ts `checkPresence`) and judge the good ones against `pins`. */
export function judgeAnswers(answers: Iterable<Uint8Array>, pins: AgentPins, nowMs: number = Date.now()): Discovery {
  const good: PresenceRecord[] = [];
  const problems: DiscoveryProblem[] = [];
  const seen = new Set<string>();
  for (const data of answers) {
    const verdict = checkPresence(data, nowMs);
    if (verdict.ok) {
      // A record announcing `gone` is an agent stopping: not live.
      if (!verdict.record.gone) good.push(verdict.record);
      continue;
    }
    let problem: DiscoveryProblem;
    if (verdict.reason === 'malformed') problem = { kind: 'malformed', detail: verdict.detail };
    else if (verdict.reason === 'signature') problem = { kind: 'forged', name: verdict.record.name, fingerprint: verdict.record.fingerprint };
    else problem = { kind: verdict.reason, name: verdict.record.name, fingerprint: verdict.record.fingerprint, issuedAt: verdict.record.issuedAt };
    // Once per kind, name and key: a flood of one forgery is one line.
    const key = problem.kind === 'malformed' ? `malformed ${problem.detail}` : `${problem.kind} ${problem.name} ${problem.fingerprint}`;
    if (!seen.has(key)) problems.push(problem);
    seen.add(key);
  }
  const judged = judgeAgents(good, pins);
  return { agents: judged.agents, problems: [...problems, ...judged.problems] };
}

/** One line (for a warning) about a problem; `via` names the NATS URL in hints. */
export function describeProblem(p: DiscoveryProblem): string {
  switch (p.kind) {
    case 'changed':
      return `WARNING: an agent answered discovery as ${p.name} with key ${p.fingerprint}, but known_hosts pins nats:${p.name} to ${p.pinned.join(', ')}: its answer was ignored. ` +
        `Another agent runs under that name (a duplicate --name, or an impostor), or ${p.name}'s key changed (then: shellwire known-hosts remove nats:${p.name}, and pin the new one).`;
    case 'conflict':
      return `WARNING: ${p.fingerprints.length} agents with different keys answered as ${p.name} (${p.fingerprints.join(', ')}), and known_hosts pins none: ` +
        `${p.name} is listed as a conflict and no label, group or glob selects it. Stop the agent that should not be there, or pin the right key (a line "nats:${p.name} SHA256:…" in known_hosts).`;
    case 'forged':
      return `WARNING: an answer claiming to be ${p.name} (${p.fingerprint}) carries a bad signature: ignored (forged or altered in transit).`;
    case 'stale':
      return `an answer from ${p.name} (${p.fingerprint}) was signed at ${p.issuedAt}, too long ago to be believed (a replayed record, or ${p.name}'s clock is behind: check NTP): ignored.`;
    case 'future':
      return `an answer from ${p.name} (${p.fingerprint}) was signed at ${p.issuedAt}, ahead of this clock (${new Date().toISOString()}): ignored; check both clocks (NTP).`;
    case 'malformed':
      return `an answer that is not a signed shellwire presence record was ignored: ${p.detail}`;
  }
}

export interface DiscoverOptions {
  prefix?: string;
  /** Only agents with all these labels answer. */
  labels?: Record<string, string>;
  /** At most this long (default DISCOVERY_MAX_MS). */
  maxMs?: number;
  /** Stop after this long without a new answer (default DISCOVERY_STALL_MS). */
  stallMs?: number;
  /** The pins to judge answers by (default: `readAgentPins(knownHostsFile)`). */
  pins?: AgentPins;
  knownHostsFile?: string;
}

/** Ask every agent, check and judge the answers (see the top of this file). */
export async function discoverAgents(nc: NatsConnection, options: DiscoverOptions = {}): Promise<Discovery> {
  const subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
  const pins = options.pins ?? readAgentPins(options.knownHostsFile);
  const answers: Uint8Array[] = [];
  try {
    const replies = await nc.requestMany(subjects.discover, JSON.stringify(options.labels ? { labels: options.labels } : {}), {
      strategy: 'stall',
      stall: options.stallMs ?? DISCOVERY_STALL_MS,
      maxWait: options.maxMs ?? DISCOVERY_MAX_MS,
    });
    for await (const msg of replies) answers.push(msg.data);
  } catch (err) {
    // No agent at all: NATS says "no responders"; that is an empty list, not a failure.
    if ((err as { isNoResponders?: () => boolean }).isNoResponders?.() !== true && !/no responders/i.test(String((err as Error)?.message))) throw err;
  }
  const judged = judgeAnswers(answers, pins);
  // Agents filter themselves by `labels`; whoever else answered is held to it too.
  const wanted = Object.entries(options.labels ?? {});
  if (wanted.length > 0) judged.agents = judged.agents.filter((a) => wanted.every(([k, v]) => Object.hasOwn(a.labels, k) && a.labels[k] === v));
  return judged;
}

export interface NatsInventoryOptions {
  /** Unverified agents (not conflicts) are selectable by labels, groups and globs too (`--accept-new-host`). */
  acceptNew?: boolean;
  /** Told which agents a label, group or glob would have selected but did not (targets.ts `Inventory.onNameOnlySkipped`). */
  onSkipped?: (hosts: readonly FleetHost[]) => void;
}

/**
 * Agents as an inventory whose every host goes through NATS `via`; label `group=G` puts it in
 * group G. A record without `trust` counts as unverified. An agent that is not verified (and
 * not accepted) is `nameOnly`; an agent in conflict also has no labels (whose would they be?).
 */
export function natsInventory(via: string, agents: ReadonlyArray<PresenceRecord & { trust?: AgentTrust }>, options: NatsInventoryOptions = {}): Inventory {
  const inventory = emptyInventory();
  inventory.file = `${via} (NATS discovery)`;
  for (const agent of agents) {
    if (inventory.byName.has(agent.name)) continue;
    const trust = agent.trust ?? 'unverified';
    const labels = trust === 'conflict' ? {} : { ...agent.labels };
    const groups = labels.group !== undefined ? labels.group.split(/[ ,]+/).filter((g) => g !== '') : [];
    const host: FleetHost = { name: agent.name, address: agent.name, port: 0, labels, groups, via };
    if (trust === 'conflict' || (trust === 'unverified' && !options.acceptNew)) host.nameOnly = true;
    inventory.hosts.push(host);
    inventory.byName.set(agent.name, host);
  }
  if (options.onSkipped) inventory.onNameOnlySkipped = options.onSkipped;
  return inventory;
}

/**
 * Follow the agents' presence announcements: `agents()` is the live set (an agent is dropped
 * PRESENCE_TTL_MS after its last announcement, or at once when it says `gone`). At start it
 * also asks every agent once (a discovery request), so the set is full within moments rather
 * than after an announcement interval.
 *
 * Every record is checked as discovery checks it (signature, the fingerprint is its key's,
 * fresh; on `P.presence.NAME` the subject's name is the record's), so a record is at least what
 * the holder of the key it names said, recently. The watcher knows no known_hosts: records are
 * kept per name AND key, so two agents announcing one name are both in `agents()`, each with
 * its `fingerprint`; a caller that acts on a record checks that fingerprint against its pin
 * for `nats:NAME` (`readAgentPins`, `judgeAgents`). A record older than the one held for the
 * same name and key (a replay) changes nothing; `gone` drops only its own key's entry.
 */
export class PresenceWatcher {
  #live = new Map<string, { record: PresenceRecord; seen: number; issued: number }>();
  #sub: Subscription;
  #answers: Subscription;
  #ttlMs: number;
  /** Records refused (malformed, forged, stale or under another name's subject): for diagnostics. */
  rejected = 0;

  constructor(nc: NatsConnection, options: { prefix?: string; ttlMs?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? PRESENCE_TTL_MS;
    const subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
    this.#sub = nc.subscribe(subjects.presenceAll, {
      callback: (err, msg) => {
        if (err) return;
        const verdict = checkPresence(msg.data);
        // The subject names the agent: a record claiming another name is ignored.
        if (!verdict.ok || msg.subject !== subjects.presence(verdict.record.name)) {
          this.rejected++;
          return;
        }
        this.#take(verdict.record);
      },
    });
    // Discovery answers are taken as announcements (only a newer record replaces what is held).
    const inbox = `_INBOX.${randomBytes(16).toString('base64url')}`;
    this.#answers = nc.subscribe(inbox, {
      callback: (err, msg) => {
        if (err) return;
        const verdict = checkPresence(msg.data);
        if (!verdict.ok) {
          this.rejected++;
          return;
        }
        this.#take(verdict.record);
      },
    });
    nc.publish(subjects.discover, new Uint8Array(0), { reply: inbox });
  }

  #take(record: PresenceRecord): void {
    const key = `${record.name} ${record.fingerprint}`;
    const issued = Date.parse(record.issuedAt);
    const held = this.#live.get(key);
    if (held && held.issued > issued) return;
    // `gone` is kept (until the TTL) as a tombstone, so a replay of an earlier announcement does not revive the agent.
    this.#live.set(key, { record, seen: Date.now(), issued });
  }

  /** The agents heard from within the TTL (one entry per name and key), by name. */
  agents(now = Date.now()): PresenceRecord[] {
    for (const [key, entry] of this.#live) if (now - entry.seen > this.#ttlMs) this.#live.delete(key);
    return [...this.#live.values()]
      .filter((e) => !e.record.gone)
      .map((e) => e.record)
      .sort((a, b) => a.name.localeCompare(b.name) || a.fingerprint.localeCompare(b.fingerprint));
  }

  close(): void {
    this.#sub.unsubscribe();
    this.#answers.unsubscribe();
  }
}

/** The warning for agents a pattern would have selected but that are not verified (`NatsInventoryOptions.onSkipped`). */
export function describeSkipped(hosts: readonly FleetHost[], agents: readonly DiscoveredAgent[]): string {
  const shown = hosts.slice(0, 10).map((h) => {
    const keys = agents.filter((a) => a.name === h.name);
    return keys.length > 1 ? `${h.name} (conflict: ${keys.map((a) => a.fingerprint).join(', ')})` : `${h.name} (${keys[0]?.fingerprint ?? 'no key'})`;
  });
  const more = hosts.length > 10 ? `, and ${hosts.length - 10} more` : '';
  return `${hosts.length} agent${hosts.length === 1 ? '' : 's'} matching the targets left out, not pinned in known_hosts (their name and labels are only their own word): ${shown.join(', ')}${more}. ` +
    'Labels, groups and globs select only pinned agents. Check the fingerprints (each agent prints its own at start; `shellwire hosts --via URL` lists them) and run again with --accept-new-host to include and pin them, or name them explicitly.';
}
