/**
 * Entry of the fan-out bundle (`dist/shellwire-fleet.cjs`): `run`, `hosts` and `discover`
 * without the daemon, the audit log or the terminal code, so a fan-out starts sooner.
 * bin/shellwire.cjs picks this bundle for the commands command-table.cts puts in `fleet`.
 */
import { FLEET_COMMANDS } from './commands.js';
import { runMain } from './program.js';

runMain(FLEET_COMMANDS);
