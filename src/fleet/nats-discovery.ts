/**
 * The live agents on a NATS cluster (docs/nats.md, "Discovery and presence"): `discoverAgents`
 * asks every agent (`P.discover`) and collects the answers until none came for
 * DISCOVERY_STALL_MS (at most DISCOVERY_MAX_MS); `natsInventory` makes them an inventory, so
 * target expressions (`@web` = label group=web, `role=db`, `web[01-03]`, `!web07`) mean over
 * NATS what they mean over a local inventory. `PresenceWatcher` follows `P.presence.*` and
 * drops an agent PRESENCE_TTL_MS after its last announcement (or at once on `gone`).
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { emptyInventory, type FleetHost, type Inventory } from './inventory.js';
import { DEFAULT_NATS_PREFIX, PRESENCE_TTL_MS, checkNatsPrefix, isAgentName, natsSubjects, type PresenceRecord } from '../protocol/nats-subjects.js';

/** Discovery stops this long after the last answer… */
export const DISCOVERY_STALL_MS = 250;
/** …and at the latest after this long. */
export const DISCOVERY_MAX_MS = 3_000;
/** A presence record larger than this is ignored. */
const MAX_RECORD_BYTES = 16 * 1024;

/** A presence record from the wire, checked; null when it is not one. */
export function parsePresence(data: Uint8Array): PresenceRecord | null {
  if (data.length > MAX_RECORD_BYTES) return null;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null || typeof o.name !== 'string' || !isAgentName(o.name) || typeof o.fingerprint !== 'string') return null;
  const labels: Record<string, string> = {};
  if (typeof o.labels === 'object' && o.labels !== null) for (const [k, v] of Object.entries(o.labels)) labels[k] = String(v);
  return {
    name: o.name,
    labels,
    fingerprint: o.fingerprint,
    spki: typeof o.spki === 'string' ? o.spki : '',
    version: typeof o.version === 'string' ? o.version : '',
    startedAt: typeof o.startedAt === 'string' ? o.startedAt : '',
    ...(o.gone === true ? { gone: true } : {}),
  };
}

export interface DiscoverOptions {
  prefix?: string;
  /** Only agents with all these labels answer. */
  labels?: Record<string, string>;
  /** At most this long (default DISCOVERY_MAX_MS). */
  maxMs?: number;
  /** Stop after this long without a new answer (default DISCOVERY_STALL_MS). */
  stallMs?: number;
}

/** The agents that answered, sorted by name (one per name: the first answer). */
export async function discoverAgents(nc: NatsConnection, options: DiscoverOptions = {}): Promise<PresenceRecord[]> {
  const subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
  const byName = new Map<string, PresenceRecord>();
  try {
    const replies = await nc.requestMany(subjects.discover, JSON.stringify(options.labels ? { labels: options.labels } : {}), {
      strategy: 'stall',
      stall: options.stallMs ?? DISCOVERY_STALL_MS,
      maxWait: options.maxMs ?? DISCOVERY_MAX_MS,
    });
    for await (const msg of replies) {
      const record = parsePresence(msg.data);
      if (record && !byName.has(record.name)) byName.set(record.name, record);
    }
  } catch (err) {
    // No agent at all: NATS says "no responders"; that is an empty list, not a failure.
    if ((err as { isNoResponders?: () => boolean }).isNoResponders?.() !== true && !/no responders/i.test(String((err as Error)?.message))) throw err;
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Agents as an inventory whose every host goes through NATS `via`; label `group=G` puts it in group G. */
export function natsInventory(via: string, agents: readonly PresenceRecord[]): Inventory {
  const inventory = emptyInventory();
  inventory.file = `${via} (NATS discovery)`;
  for (const agent of agents) {
    if (inventory.byName.has(agent.name)) continue;
    const groups = agent.labels.group !== undefined ? agent.labels.group.split(/[ ,]+/).filter((g) => g !== '') : [];
    const host: FleetHost = { name: agent.name, address: agent.name, port: 0, labels: { ...agent.labels }, groups, via };
    inventory.hosts.push(host);
    inventory.byName.set(agent.name, host);
  }
  return inventory;
}

/**
 * Follow the agents' presence announcements: `agents()` is the live set (an agent is dropped
 * PRESENCE_TTL_MS after its last announcement, or at once when it says `gone`). At start it
 * also asks every agent once (a discovery request), so the set is full within moments rather
 * than after an announcement interval.
 */
export class PresenceWatcher {
  #live = new Map<string, { record: PresenceRecord; seen: number }>();
  #sub: Subscription;
  #answers: Subscription;
  #ttlMs: number;

  constructor(nc: NatsConnection, options: { prefix?: string; ttlMs?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? PRESENCE_TTL_MS;
    const subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
    this.#sub = nc.subscribe(subjects.presenceAll, {
      callback: (err, msg) => {
        if (err) return;
        const record = parsePresence(msg.data);
        // The subject names the agent: a record claiming another name is ignored.
        if (!record || msg.subject !== subjects.presence(record.name)) return;
        if (record.gone) this.#live.delete(record.name);
        else this.#live.set(record.name, { record, seen: Date.now() });
      },
    });
    // Discovery answers are taken as announcements (an announcement heard meanwhile is newer: kept).
    const inbox = `_INBOX.${randomBytes(16).toString('base64url')}`;
    this.#answers = nc.subscribe(inbox, {
      callback: (err, msg) => {
        const record = err ? null : parsePresence(msg.data);
        if (record && !record.gone && !this.#live.has(record.name)) this.#live.set(record.name, { record, seen: Date.now() });
      },
    });
    nc.publish(subjects.discover, new Uint8Array(0), { reply: inbox });
  }

  /** The agents heard from within the TTL, by name. */
  agents(now = Date.now()): PresenceRecord[] {
    for (const [name, entry] of this.#live) if (now - entry.seen > this.#ttlMs) this.#live.delete(name);
    return [...this.#live.values()].map((e) => e.record).sort((a, b) => a.name.localeCompare(b.name));
  }

  close(): void {
    this.#sub.unsubscribe();
    this.#answers.unsubscribe();
  }
}
