/** `shellwire hosts TARGETS`: what a target expression expands to, without connecting. */
import type { Command } from 'commander';
import { escapeControls } from '../client/display-text.js';
import { defaultInventoryPath, loadInventory } from '../fleet/inventory.js';
import { NoHostsMatchedError, resolveTargets } from '../fleet/targets.js';
import { foldNames } from '../fleet/ranges.js';
import { formatTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { fail } from './common.js';

interface HostsFlags {
  inventory?: string;
  json?: boolean;
  fold?: boolean;
  allowEmpty?: boolean;
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
    .action((targets: string[], flags: HostsFlags) => listHosts(targets, flags));
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
    const rows = hosts.map((h) => [
      h.name,
      formatTarget({ host: h.address, port: h.port }),
      h.groups.map((g) => `@${g}`).join(','),
      Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(','),
    ]);
    const widths = [0, 1, 2].map((i) => Math.max(0, ...rows.map((r) => r[i]!.length)));
    process.stdout.write(rows.map((r) => escapeControls(`${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd()}\n`)).join(''));
  }
  process.stderr.write(`${hosts.length} host${hosts.length === 1 ? '' : 's'}\n`);
}
