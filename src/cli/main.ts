/** The `shellwire` command line: commands only parse flags, call the library, and print. */
import { Command, CommanderError } from 'commander';
import { registerServe } from './serve.js';
import { registerExec } from './exec.js';
import { registerShell } from './shell.js';
import { registerRun } from './run.js';
import { registerHosts } from './hosts.js';
import { registerDiscover } from './discover.js';
import { registerTty } from './terminal.js';
import { registerAudit } from './audit.js';
import { registerUsers } from './users.js';
import { registerFiles } from './files.js';

export const VERSION = '0.1.0';

const program = new Command()
  .name('shellwire')
  .description('Run commands on remote hosts over TLS: byte-exact output, exit codes, sessions.')
  .version(VERSION, '-V, --version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride((err: CommanderError) => {
    // Usage errors exit 2, as most Unix tools; help and version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

registerServe(program);
registerExec(program);
registerShell(program);
registerRun(program);
registerHosts(program);
registerDiscover(program);
registerTty(program);
registerAudit(program);
registerUsers(program);
registerFiles(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`shellwire: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
