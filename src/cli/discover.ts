/**
 * `shellwire discover`: probe addresses over UDP for daemons started with `--announce`,
 * list what answered, and optionally trust their fingerprints (known_hosts, only after the
 * operator confirms or with --accept-new-host) and add them to the inventory.
 */
import type { Command } from 'commander';
import { askYesNo } from './prompt.js';
import { discover, expandSubnet, type DiscoveredHost } from '../fleet/discovery.js';
import { addHostsToInventory } from '../fleet/inventory-write.js';
import { defaultInventoryPath } from '../fleet/inventory.js';
import { addKnownHost, hostKeyState, readKnownHostEntries } from '../auth/known-hosts.js';
import { knownHostsPath } from '../auth/paths.js';
import { formatTarget, DEFAULT_PORT } from '../client/target.js';
import { fail, warn } from './common.js';
import { parseSeconds } from './common.js';
import { exitWhenFlushed } from './stdio.js';
import { exitOnTerminationSignals, terminate } from './lifecycle.js';

interface DiscoverFlags {
  address: string[];
  subnet: string[];
  port: string;
  timeout: string;
  writeInventory?: boolean;
  inventory?: string;
  acceptNewHost?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerDiscover(program: Command): void {
  program
    .command('discover')
    .description('find shellwire daemons (started with --announce) by UDP probe; optionally trust them and add them to the inventory')
    .option('--address <addr>', 'probe this address (repeatable)', collect, [])
    .option('--subnet <cidr>', 'probe every address of an IPv4 subnet, at most a /16 (repeatable)', collect, [])
    .option('--port <port>', 'the daemons\' port (UDP probe, same number as TCP)', String(DEFAULT_PORT))
    .option('--timeout <duration>', 'wait this long for answers (seconds, or 500ms)', '1')
    .option('--write-inventory', 'add the hosts found to the inventory (existing entries are kept)')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--accept-new-host', 'add new fingerprints to known_hosts without asking (changed ones are never replaced)')
    .option('--json', 'one JSON object per host found')
    .action(async (flags: DiscoverFlags) => runDiscover(flags));
}

async function runDiscover(flags: DiscoverFlags): Promise<void> {
  // Nothing remote to close: a signal ends the probe with 128+N (see lifecycle.ts).
  exitOnTerminationSignals();
  process.on('SIGINT', () => terminate('SIGINT'));
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--port takes 1-65535, got "${flags.port}".`, 2);
  const timeout = parseSeconds(flags.timeout, '--timeout');
  let addresses: string[];
  try {
    addresses = [...flags.address, ...flags.subnet.flatMap(expandSubnet)];
  } catch (err) {
    fail((err as Error).message, 2);
  }
  if (addresses.length === 0) addresses = ['127.0.0.1'];
  const found = await discover({ addresses, port, timeoutMs: timeout * 1000 });
  const knownFile = knownHostsPath();
  const known = readKnownHostEntries(knownFile);
  const state = (h: DiscoveredHost) => {
    const s = hostKeyState(known, formatTarget({ host: h.address, port: h.port }), h.fingerprint);
    return s === 'changed' ? 'CHANGED' : s;
  };
  if (flags.json) {
    process.stdout.write(found.map((h) => `${JSON.stringify({ ...h, rttMs: Math.round(h.rttMs * 100) / 100, known: state(h) })}\n`).join(''));
  } else {
    for (const h of found) process.stdout.write(`${h.name}  ${formatTarget({ host: h.address, port: h.port })}  ${h.fingerprint}  ${state(h)}\n`);
  }
  process.stderr.write(`${found.length} daemon(s) answered out of ${addresses.length} address(es) probed.\n`);
  // Nothing found is a failure (exit 1 below), and says what usually causes it.
  if (found.length === 0) {
    warn(`no daemon answered on UDP port ${port}: daemons answer only when started with \`shellwire serve --announce\` (on that port), and a firewall must let UDP ${port} through; --timeout gives slow links longer.`);
  }

  for (const h of found.filter((x) => state(x) === 'CHANGED')) {
    warn(`WARNING: ${formatTarget({ host: h.address, port: h.port })} announces ${h.fingerprint}, but known_hosts pins another key; not changed (shellwire known-hosts remove ${formatTarget({ host: h.address, port: h.port })} if you know it changed).`);
  }
  const fresh = found.filter((h) => state(h) === 'new');
  if (fresh.length > 0) {
    let trust = Boolean(flags.acceptNewHost);
    if (!trust && process.stdin.isTTY && process.stderr.isTTY) {
      trust = await ask(`Add ${fresh.length} new fingerprint(s) above to ${knownFile}? Check them against what each daemon printed at start-up. [y/N] `);
    }
    if (trust) {
      for (const h of fresh) addKnownHost(knownFile, formatTarget({ host: h.address, port: h.port }), h.fingerprint);
      process.stderr.write(`Trusted ${fresh.length} new host key(s) in ${knownFile}.\n`);
    } else {
      process.stderr.write(`${fresh.length} new host key(s) not trusted; rerun with --accept-new-host once you have checked them.\n`);
    }
  }
  if (flags.writeInventory && found.length > 0) {
    const file = flags.inventory ?? defaultInventoryPath();
    try {
      // Several daemons on one machine announce the same name: give each its own.
      const count = new Map<string, number>();
      for (const h of found) count.set(h.name, (count.get(h.name) ?? 0) + 1);
      const named = found.map((h) => ({
        name: count.get(h.name)! > 1 ? `${h.name}-${h.address}-${h.port}`.replace(/[^A-Za-z0-9_.-]/g, '-') : h.name,
        address: h.address,
        port: h.port,
        labels: { discovered: 'true' },
      }));
      const { added, skipped } = addHostsToInventory(file, named);
      process.stderr.write(`${file}: added ${added.length} host(s)${added.length ? ` (${added.join(', ')})` : ''}${skipped.length ? `, ${skipped.length} already there` : ''}.\n`);
    } catch (err) {
      fail((err as Error).message, 1);
    }
  }
  await exitWhenFlushed(found.length > 0 ? 0 : 1);
}

function ask(question: string): Promise<boolean> {
  // A piped answer is one line; Ctrl-D or the end of input means no.
  return askYesNo(question, { short: true, onInterrupt: () => terminate('SIGINT') });
}
