/**
 * Entry of the client bundle (`dist/shellwire-client.cjs`): only the commands that talk
 * to a daemon, so a cold `shellwire exec` compiles a fraction of the code. bin/shellwire.cjs
 * picks this bundle for the commands command-table.cts puts in `client`.
 */
import { CLIENT_COMMANDS } from './commands.js';
import { runMain } from './program.js';

runMain(CLIENT_COMMANDS);
