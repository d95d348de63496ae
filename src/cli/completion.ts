/**
 * `shellwire completion bash|zsh`: a completion script generated from the program itself,
 * so commands and options other modules register appear without being listed here. Host
 * arguments complete inventory names and @groups through the hidden `completion hosts`.
 */
import type { Command } from 'commander';
import type { CommandTable, Register } from './program.js';
import { commandSpec } from './completion-spec.js';
import { bashCompletion } from './completion-bash.js';
import { zshCompletion } from './completion-zsh.js';

/**
 * What `completion` loads: every command of `table` (the scripts describe the whole
 * program), then `completion` itself. For main.ts's table:
 * `completion: async () => (await import('./completion.js')).completionRegisters(COMMANDS)`.
 */
export async function completionRegisters(table: CommandTable): Promise<Register[]> {
  // The table's own `completion` entry calls us again: that inner call adds only ourselves.
  if (collecting) return [registerCompletion];
  collecting = true;
  try {
    const registers: Register[] = [];
    for (const load of new Set(Object.values(table))) {
      for (const register of await load()) if (!registers.includes(register)) registers.push(register);
    }
    return registers;
  } finally {
    collecting = false;
  }
}
let collecting = false;

export function registerCompletion(program: Command): void {
  const completion = program
    .command('completion')
    .description('print a bash or zsh completion script for shellwire (commands, options, inventory hosts and @groups)');
  completion
    .command('bash')
    .description('bash completion script; load it with: source <(shellwire completion bash)')
    .action(() => {
      process.stdout.write(bashCompletion(commandSpec(program)));
    });
  completion
    .command('zsh')
    .description('zsh completion script; save it as _shellwire in a directory on $fpath, then run compinit')
    .action(() => {
      process.stdout.write(zshCompletion(commandSpec(program)));
    });
  // For the scripts and scripts/man.mjs: not part of the interface users see.
  completion
    .command('hosts', { hidden: true })
    .option('--inventory <file>', 'inventory file')
    .action((flags: { inventory?: string }) => listHostWords(flags.inventory));
  completion
    .command('spec', { hidden: true })
    .action(() => {
      process.stdout.write(`${JSON.stringify(commandSpec(program), null, 1)}\n`);
    });
}

/** Inventory host names and @groups, one a line; nothing (and exit 0) when there is no usable inventory. */
async function listHostWords(file: string | undefined): Promise<void> {
  const { loadInventory } = await import('../fleet/inventory.js');
  let words: string[];
  try {
    const inventory = loadInventory(file);
    const groups = new Set([...inventory.hosts.flatMap((host) => host.groups), ...inventory.groupTerms.keys()]);
    words = [...inventory.hosts.map((host) => host.name), ...[...groups].map((group) => `@${group}`)];
  } catch {
    // A broken inventory is reported by the commands that use it, not in the middle of a Tab.
    words = [];
  }
  process.stdout.write(words.map((word) => `${word}\n`).join(''));
}
