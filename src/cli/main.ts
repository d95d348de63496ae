/** The `shellwire` command line: commands only parse flags, call the library, and print. */
import COMMAND_BUNDLES from './command-table.cjs';
import { CLIENT_COMMANDS, FLEET_COMMANDS, FULL_COMMANDS, type CommandName } from './commands.js';
import { runMain, type CommandTable } from './program.js';

export { VERSION } from './program.js';

const LOADERS = {
  ...CLIENT_COMMANDS,
  ...FLEET_COMMANDS,
  ...FULL_COMMANDS,
  completion: async () => (await import('./completion.js')).completionRegisters(COMMANDS),
} satisfies Record<CommandName, CommandTable[string]>;

/** Every command, in command-table.cts's order: the order of `shellwire --help` and the man page. */
const COMMANDS: CommandTable = Object.fromEntries(Object.keys(COMMAND_BUNDLES).map((name) => [name, LOADERS[name as CommandName]]));

runMain(COMMANDS);
