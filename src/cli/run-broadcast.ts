/**
 * `shellwire run --via nats://… TARGETS -- COMMAND`: by default one signed broadcast
 * (fleet/nats-run.ts, docs/nats.md, "Broadcast"); `--tunnel` runs it over per-agent tunnels with
 * `runOn` instead. Targets resolve over the live agents (discovery) as over an inventory;
 * plain agent names need no discovery (an agent that is not there is `unreachable`).
 * Printed by `report` (run.ts): the same grouped output, `--json` and exit status as a direct run.
 */
import { userInfo } from 'node:os';
import { connectNats } from '../transport/nats-connect.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { describeProblem, describeSkipped, discoverAgents, natsInventory } from '../fleet/nats-discovery.js';
import { resolveCredentials } from '../client/credentials.js';
import { resolveTargets, NoHostsMatchedError } from '../fleet/targets.js';
import type { Inventory } from '../fleet/inventory.js';
import { runBroadcast, DEFAULT_BROADCAST_TIMEOUT_MS, DEFAULT_NATS_PREFIX } from '../fleet/nats-run.js';
import { AGENT_NAME } from '../protocol/broadcast-codec.js';
import { askPassphrase, debugLog, fail, parseDurationFlag, reportHostAdded, warn } from './common.js';
import { ShellwireError } from '../errors.js';

export interface BroadcastFlags {
  via: string;
  natsCreds?: string;
  natsPrefix?: string;
  timeout?: string;
  json?: boolean;
  stream?: boolean;
  identity?: string;
  user?: string;
  acceptNewHost?: boolean;
  allowEmpty?: boolean;
  wait?: string;
  batch?: string;
  canary?: boolean;
  failFast?: boolean;
  maxFailures?: string;
}

/**
 * The live agents (discovery: fleet/nats-discovery.ts) as an inventory whose hosts go through
 * `via`. Answers are checked (signature, known_hosts pin) and what was ignored is warned about;
 * labels, groups and globs select only pinned agents unless `acceptNew` (--accept-new-host).
 */
export async function agentInventory(nc: NatsConnection, via: string, prefix: string, waitMs?: number, acceptNew = false): Promise<Inventory> {
  const discovery = await discoverAgents(nc, { prefix, ...(waitMs !== undefined ? { maxMs: waitMs } : {}) });
  for (const p of discovery.problems) {
    if (p.kind === 'malformed') debugLog(1, describeProblem(p));
    else warn(describeProblem(p));
  }
  return natsInventory(via, discovery.agents, { acceptNew, onSkipped: (hosts) => warn(describeSkipped(hosts, discovery.agents)) });
}

function waitFlag(flags: BroadcastFlags): number | undefined {
  return flags.wait ? parseDurationFlag(flags.wait, '--wait', { min: 1 }) : undefined;
}

/** The run's NATS connection (fails with exit 1 and the reason), the live agents as an inventory, and its close. */
export async function openNats(flags: BroadcastFlags): Promise<{ nc: NatsConnection; inventory(): Promise<Inventory>; close(): Promise<void> }> {
  const nc = await connectNats({ servers: flags.via, ...(flags.natsCreds ? { credsFile: flags.natsCreds } : {}), name: 'shellwire run' }).catch((err: unknown) => fail((err as Error).message));
  return {
    nc,
    inventory: () => agentInventory(nc, flags.via, flags.natsPrefix ?? DEFAULT_NATS_PREFIX, waitFlag(flags), flags.acceptNewHost === true),
    close: async () => {
      await nc.close().catch(() => {});
    },
  };
}

/** Broadcast `command` to `targets` and print it; never returns (exits with the run's status). */
export async function runBroadcastCommand(
  targets: string[], command: string, flags: BroadcastFlags,
  report: (run: ReturnType<typeof runBroadcast>, names: string[], close: () => Promise<void>) => Promise<never>,
): Promise<never> {
  // One message reaches every agent at once: nothing to pace, batch or stop early.
  const paced = (['batch', 'canary', 'failFast', 'maxFailures'] as const).filter((k) => flags[k] !== undefined && flags[k] !== false);
  if (paced.length > 0) {
    const names = { batch: '--batch', canary: '--canary', failFast: '--fail-fast', maxFailures: '--max-failures' };
    fail(`${paced.map((k) => names[k]).join(', ')} cannot apply to a broadcast (one message reaches every agent at once): add --tunnel to run agent by agent.`, 2);
  }
  const prefix = flags.natsPrefix ?? DEFAULT_NATS_PREFIX;
  const { nc, close } = await openNats(flags);
  let names: string[];
  // Plain names go straight into the request: discovery is needed only to expand patterns.
  // (`all` is every agent, not an agent named so.)
  if (targets.every((t) => t.split(',').every((w) => AGENT_NAME.test(w) && w !== 'all'))) names = [...new Set(targets.flatMap((t) => t.split(',')))];
  else {
    try {
      const inventory = await agentInventory(nc, flags.via, prefix, waitFlag(flags), flags.acceptNewHost === true);
      debugLog(2, `discovery: ${inventory.hosts.length} agent(s) answered`);
      names = resolveTargets(targets, inventory, { allowEmpty: flags.allowEmpty === true }).map((h) => h.name);
    } catch (err) {
      await close();
      const hint = err instanceof NoHostsMatchedError ? ' (`shellwire hosts --via NATS TARGETS` shows the live agents they match)' : '';
      fail(err instanceof ShellwireError ? `${err.message}${hint}` : String(err), 2);
    }
  }
  if (names.length === 0) {
    warn(`"${targets.join(' ')}" matches no agent; nothing was run.`);
    await close();
    process.exit(0);
  }
  const env = process.env;
  const credentials = await resolveCredentials(flags.via, {
    ...(flags.identity ? { identity: flags.identity } : {}), env,
    ...(process.stdin.isTTY ? { askPassphrase } : {}),
    debug: (m) => debugLog(1, m),
  }).catch((err: unknown) => fail((err as Error).message));
  const key = credentials.keys[0] ?? (credentials.lockedKeys[0] ? await credentials.lockedKeys[0].unlock() : null);
  if (!key) {
    await close();
    fail('A broadcast is signed with an SSH key, and none was found (ssh-agent, -i KEY, or a default key file). Tokens and passwords log in over tunnels only: add --tunnel.', 2);
  }
  debugLog(1, `signing the broadcast with ${key.source} (${key.publicKey.fingerprint})`);
  const timeoutMs = flags.timeout === undefined ? DEFAULT_BROADCAST_TIMEOUT_MS : parseDurationFlag(flags.timeout, '--timeout', { min: 1 });
  const run = runBroadcast(names, command, {
    connection: nc, signer: key, user: flags.user ?? (env.USER || userInfo().username), prefix, timeoutMs,
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : 'strict', onHostKeyAdded: reportHostAdded,
    outputEvents: Boolean(flags.stream || flags.json), debug: (m) => debugLog(1, m), onConnectionLost: (m) => warn(m),
  });
  return report(run, names, close);
}
