/**
 * Entry of the fan-out bundle (`dist/shellwire-fleet.cjs`): `run`, `hosts` and `discover`
 * without the daemon, the audit log or the terminal code, so a fan-out starts sooner.
 * bin/shellwire.cjs picks this bundle for these command names.
 */
import { runMain, type CommandTable } from './program.js';

export const FLEET_COMMANDS: CommandTable = {
  run: async () => [(await import('./run.js')).registerRun],
  hosts: async () => [(await import('./hosts.js')).registerHosts],
  discover: async () => [(await import('./discover.js')).registerDiscover],
};

runMain(FLEET_COMMANDS);
