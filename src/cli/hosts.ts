/** `shellwire hosts TARGETS`: what a target expression expands to, without connecting. */
import type { Command } from 'commander';
import { escapeTerminalText } from '../terminal-text.js';
import { defaultInventoryPath, loadInventory, type FleetHost } from '../fleet/inventory.js';
import { gatewayInventory, parseGatewayHosts, type GatewayHost } from '../fleet/gateway-hosts.js';
import { NoHostsMatchedError, resolveTargets } from '../fleet/targets.js';
import { foldNames } from '../fleet/ranges.js';
import { formatTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { connectFromFlags, debugLog, fail, increase, parseDurationFlag, reportError, setVerbosity, viaOverride, viaOption, warn, type ConnectFlags } from './common.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import type { Discovery } from '../fleet/nats-discovery.js';

interface HostsFlags extends ConnectFlags {
  inventory?: string;
  json?: boolean;
  fold?: boolean;
  allowEmpty?: boolean;
  wait?: string;
}

export function registerHosts(program: Command): void {
  program
    .command('hosts')
    .description('list the hosts TARGETS expands to (default: all), without connecting')
    .argument('[targets...]', '@group, label=value, names, ranges (web[01-12]), !exclusions, a&b intersections')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--json', 'one JSON object per host')
    .option('--fold', 'print the folded node set only (web[01-12],db03)')
    .option('--allow-empty', 'targets that match no host print nothing and exit 0 (default: an error, exit 2)')
    .addOption(viaOption('list the hosts this gateway lets you reach (asks it; USER@ names you there, default port 50008); nats://A,nats://B: the live agents on NATS (discovery)'))
    .option('--nats-creds <file>', 'with --via nats://…: NATS credentials (a .creds file, or an nkey seed file)')
    .option('--nats-prefix <prefix>', 'with --via nats://…: the agents\' subject prefix (default shellwire)')
    .option('--wait <duration>', 'with --via nats://…: collect answers for at most this long (they stop after 250ms without a new one)', '3')
    .option('-i, --identity <keyfile>', 'with --via: the key to log in to the gateway with')
    .option('--token-file <file>', 'with --via: the token to log in to the gateway with')
    .option('--accept-new-host', 'with --via: trust and remember a gateway not yet in known_hosts; with --via nats://…: targets select unpinned (unverified) agents too')
    .option('--connect-timeout <duration>', 'with --via: give up connecting after this long', '10')
    .option('-v, --verbose', 'with --via: say what is tried', increase, 0)
    .action(async (targets: string[], flags: HostsFlags) => {
      const via = viaOverride(flags);
      if (typeof via === 'string' && isNatsUrl(via)) await listNatsHosts(via, targets, flags);
      else if (typeof via === 'string') await listGatewayHosts(via, targets, flags);
      else listHosts(targets, flags);
    });
}

/**
 * `hosts --via GW [TARGETS]`: ask the gateway (channel kind `gateway`, op `hosts`) for the
 * hosts the operator may reach, `[{ name, labels, groups }]`, and print them as the local
 * list is printed (targets filter them as they filter an inventory); `--json`: the gateway's
 * list as it came. Connection and refusal errors exit 255, as for any connect.
 */
async function listGatewayHosts(via: string, targets: string[], flags: HostsFlags): Promise<void> {
  let answer: Buffer;
  let list: GatewayHost[];
  try {
    const { inventory: _inventory, ...connectFlags } = flags;
    const conn = await connectFromFlags(via, { ...connectFlags, via: 'none' }, { gateway: true });
    try {
      answer = await conn.gatewayRequest({ op: 'hosts' });
    } finally {
      await conn.close();
    }
    list = parseGatewayHosts(answer, via);
  } catch (err) {
    reportError(err);
  }
  if (flags.json && targets.length === 0) {
    process.stdout.write(`${answer.toString('utf8').trimEnd()}\n`);
    process.stderr.write(`${list.length} host${list.length === 1 ? '' : 's'} via ${via}\n`);
    return;
  }
  let hosts: FleetHost[];
  try {
    hosts = targets.length === 0 ? gatewayInventory(via, list).hosts : resolveTargets(targets, gatewayInventory(via, list), { allowEmpty: flags.allowEmpty === true });
  } catch (err) {
    fail(err instanceof ShellwireError ? `${err.message}${err instanceof NoHostsMatchedError ? ' (--allow-empty accepts an empty selection)' : ''}` : String(err), 2);
  }
  if (flags.fold) process.stdout.write(`${foldNames(hosts.map((h) => h.name))}\n`);
  else if (flags.json) process.stdout.write(hosts.map((h) => `${JSON.stringify({ name: h.name, labels: h.labels, groups: h.groups })}\n`).join(''));
  else printTable(hosts.map((h) => [h.name, `via ${via}`, h.groups.map((g) => `@${g}`).join(','), Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(',')]));
  process.stderr.write(`${hosts.length} host${hosts.length === 1 ? '' : 's'} via ${via}\n`);
}

/**
 * `hosts --via nats://… [TARGETS]`: the agents that answer discovery within the window
 * (`--wait`, default 3 s, ending 250 ms after the last answer), filtered by TARGETS as `run`
 * would select them; a stopped agent no longer answers, so it is gone from the next listing.
 * Each answer is checked (signature, freshness) and judged against known_hosts' `nats:NAME`
 * pins (fleet/nats-discovery.ts): the TRUST column (and `trust` in `--json`) says `verified`
 * (the pinned key), `unverified` (no pin: listed, but labels, groups and globs pass it by
 * unless --accept-new-host) or `CONFLICT` (no pin, several keys: each listed). An answer whose
 * key differs from the pin is not listed: a warning names both keys.
 * `--json`: one signed presence record per agent, with `trust`.
 */
async function listNatsHosts(via: string, targets: string[], flags: HostsFlags): Promise<void> {
  setVerbosity(flags.verbose);
  const maxMs = parseDurationFlag(flags.wait ?? '3', '--wait', { min: 1 });
  const { describeProblem, describeSkipped, discoverAgents, natsInventory } = await import('../fleet/nats-discovery.js');
  let discovery: Discovery;
  try {
    const { connectNats } = await import('../transport/nats-connect.js');
    const nc = await connectNats({ servers: via, ...(flags.natsCreds !== undefined ? { credsFile: flags.natsCreds } : {}), name: 'shellwire hosts' });
    try {
      discovery = await discoverAgents(nc, { maxMs, ...(flags.natsPrefix !== undefined ? { prefix: flags.natsPrefix } : {}) });
    } finally {
      await nc.close();
    }
  } catch (err) {
    reportError(err);
  }
  const { agents } = discovery;
  for (const p of discovery.problems) {
    if (p.kind === 'malformed') debugLog(1, describeProblem(p));
    else warn(describeProblem(p));
  }
  const inventory = natsInventory(via, agents, { acceptNew: flags.acceptNewHost === true, onSkipped: (skipped) => warn(describeSkipped(skipped, agents)) });
  let hosts: FleetHost[];
  try {
    hosts = targets.length === 0 ? inventory.hosts : resolveTargets(targets, inventory, { allowEmpty: flags.allowEmpty === true });
  } catch (err) {
    fail(err instanceof ShellwireError ? `${err.message}${err instanceof NoHostsMatchedError ? ' (--allow-empty accepts an empty selection)' : ''}` : String(err), 2);
  }
  const names = new Set(hosts.map((h) => h.name));
  // An agent in conflict is one host of the inventory but one row per key here.
  const rows = agents.filter((a) => names.has(a.name));
  const groupsOf = (labels: Record<string, string>) => (labels.group ?? '').split(/[ ,]+/).filter((g) => g !== '').map((g) => `@${g}`).join(',');
  if (flags.fold) process.stdout.write(`${foldNames(hosts.map((h) => h.name))}\n`);
  else if (flags.json) process.stdout.write(rows.map((a) => `${JSON.stringify(a)}\n`).join(''));
  else printTable(rows.map((a) => [a.name, a.fingerprint, a.trust === 'conflict' ? 'CONFLICT' : a.trust, groupsOf(a.labels), Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(',')]));
  const count = (trust: string) => rows.filter((a) => a.trust === trust).length;
  const unverified = count('unverified');
  const conflicts = new Set(rows.filter((a) => a.trust === 'conflict').map((a) => a.name)).size;
  const notes = [unverified > 0 ? `${unverified} unverified` : '', conflicts > 0 ? `${conflicts} in conflict` : ''].filter((n) => n !== '');
  process.stderr.write(`${hosts.length} agent${hosts.length === 1 ? '' : 's'} via ${via}${notes.length ? ` (${notes.join(', ')})` : ''}\n`);
  if (unverified > 0 && !flags.fold) {
    process.stderr.write('unverified: no known_hosts pin for nats:NAME, so the name and labels are only the agent\'s word, and label, group and glob targets pass it by. ' +
      'Check its fingerprint against what the agent printed at start, then pin it: a run or exec naming it with --accept-new-host.\n');
  }
}

/**
 * Columns padded to their widths (the last one not), each cell escaped on one line: a record
 * from NATS discovery is anyone's text, and a newline in a label would start a row of its own.
 */
function printTable(rows: string[][]): void {
  const cells = rows.map((r) => r.map((c) => escapeTerminalText(c, { oneLine: true })));
  const columns = Math.max(0, ...cells.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) => Math.max(0, ...cells.map((r) => r[i]?.length ?? 0)));
  process.stdout.write(cells.map((r) => `${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd()}\n`).join(''));
}

/** Where the inventory was looked for and how to make one, for when there is none. */
function noInventory(): string {
  return [
    `no inventory: ${defaultInventoryPath()} does not exist. Create it, for example:`,
    '  hosts:',
    '    web01: { address: 10.0.0.11, labels: { role: web } }',
    'or pass --inventory FILE, or fill it with: shellwire discover --write-inventory. Ad-hoc HOST:PORT targets work without one.',
  ].join('\n');
}

function listHosts(targets: string[], flags: HostsFlags): void {
  let hosts;
  // A missing default inventory is an empty one (loadInventory); say so rather than "0 hosts".
  let missing = false;
  try {
    const inventory = loadInventory(flags.inventory);
    missing = inventory.file === null;
    if (missing && targets.length === 0) fail(noInventory(), 1);
    hosts = targets.length === 0 ? inventory.hosts : resolveTargets(targets, inventory, { allowEmpty: flags.allowEmpty === true });
  } catch (err) {
    const message = err instanceof ShellwireError ? `${err.message}${err instanceof NoHostsMatchedError ? ' (--allow-empty accepts an empty selection)' : ''}` : String(err);
    fail(missing && !(err instanceof NoHostsMatchedError) ? `${message}
${noInventory()}` : message, 2);
  }
  if (flags.fold) {
    process.stdout.write(`${foldNames(hosts.map((h) => h.name))}\n`);
  } else if (flags.json) {
    process.stdout.write(hosts.map((h) => `${JSON.stringify(h)}\n`).join(''));
  } else {
    printTable(hosts.map((h) => [
      h.name,
      h.via !== undefined ? `via ${h.via}` : formatTarget({ host: h.address, port: h.port }),
      h.groups.map((g) => `@${g}`).join(','),
      Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(','),
    ]));
  }
  process.stderr.write(`${hosts.length} host${hosts.length === 1 ? '' : 's'}\n`);
}
