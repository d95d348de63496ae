/**
 * The module that registers each top-level command, grouped by the bundle that runs it
 * (command-table.cts says which). Only the module of the command being run is loaded: the
 * bundle keeps dynamically imported modules lazy, and each entry imports only its groups
 * (esbuild drops the others), so a cold `shellwire exec` does not evaluate, or even compile,
 * the daemon, the fleet code or the YAML parser.
 */
import type COMMAND_BUNDLES from './command-table.cjs';
import type { CommandTable } from './program.js';

export type Bundle = (typeof COMMAND_BUNDLES)[keyof typeof COMMAND_BUNDLES];
export type CommandName = keyof typeof COMMAND_BUNDLES;
/** The commands the table puts in `bundle`. */
export type CommandsOf<B extends Bundle> = { [K in CommandName]: (typeof COMMAND_BUNDLES)[K] extends B ? K : never }[CommandName];
type Loaders<K extends string> = { readonly [N in K]: CommandTable[string] };

/** dist/shellwire-client.cjs: the commands that talk to one daemon. */
export const CLIENT_COMMANDS: Loaders<CommandsOf<'client'>> = {
  exec: async () => [(await import('./exec.js')).registerExec],
  shell: async () => [(await import('./shell.js')).registerShell],
  tty: async () => [(await import('./terminal.js')).registerTty],
};

/** dist/shellwire-fleet.cjs: fan-out to many hosts. */
export const FLEET_COMMANDS: Loaders<CommandsOf<'fleet'>> = {
  run: async () => [(await import('./run.js')).registerRun],
  hosts: async () => [(await import('./hosts.js')).registerHosts],
  discover: async () => [(await import('./discover.js')).registerDiscover],
};

/**
 * The rest, only in dist/shellwire.cjs. `completion` describes every command, so main.ts,
 * which holds them all, adds it.
 */
export const FULL_COMMANDS: Loaders<Exclude<CommandsOf<'full'>, 'completion'>> = {
  serve: async () => [(await import('./serve.js')).registerServe],
  gateway: async () => [(await import('./gateway.js')).registerGateway],
  put: async () => [(await import('./files.js')).registerFiles],
  get: async () => [(await import('./files.js')).registerFiles],
  ls: async () => [(await import('./files.js')).registerFiles],
  'known-hosts': async () => [(await import('./known-hosts.js')).registerKnownHosts],
  audit: async () => [(await import('./audit.js')).registerAudit],
  recordings: async () => [(await import('./recordings.js')).registerRecordings],
  replay: async () => [(await import('./recordings.js')).registerRecordings],
  'web-login': async () => [(await import('./web-login.js')).registerWebLogin],
  keygen: async () => [(await import('./users.js')).registerUsers],
  user: async () => [(await import('./users.js')).registerUsers],
  key: async () => [(await import('./users.js')).registerUsers],
  token: async () => [(await import('./users.js')).registerUsers],
  locks: async () => [(await import('./locks.js')).registerLocks],
  'install-service': async () => [(await import('./install-service.js')).registerInstallService],
  'rotate-host-key': async () => [(await import('./rotate-host-key.js')).registerRotateHostKey],
};
