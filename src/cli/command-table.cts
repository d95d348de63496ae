/**
 * The one table of `shellwire`'s top-level commands, in help order, and the bundle that
 * runs each: `client` (dist/shellwire-client.cjs: only what talks to one daemon), `fleet`
 * (dist/shellwire-fleet.cjs: fan-out without the daemon, audit or terminal code) or `full`
 * (dist/shellwire.cjs: everything). Everything else is derived from it:
 *
 * - bin/shellwire.cjs requires the compiled dist/cli/command-table.cjs to pick the bundle, so
 *   a cold `shellwire exec` compiles only the client bundle. Hence CommonJS, and no imports.
 * - commands.ts gives each command the module that registers it, grouped by bundle; the
 *   compiler checks the groups against this table (a command missing, extra or in the wrong
 *   group does not compile).
 * - main.ts (every command, in this order), client-main.ts and fleet-main.ts run those groups.
 */
const COMMAND_BUNDLES = {
  serve: 'full',
  gateway: 'full',
  exec: 'client',
  shell: 'client',
  tty: 'client',
  put: 'full',
  get: 'full',
  ls: 'full',
  run: 'fleet',
  hosts: 'fleet',
  discover: 'fleet',
  'known-hosts': 'full',
  audit: 'full',
  recordings: 'full',
  replay: 'full',
  'web-login': 'full',
  keygen: 'full',
  user: 'full',
  key: 'full',
  token: 'full',
  locks: 'full',
  completion: 'full',
  'install-service': 'full',
  'rotate-host-key': 'full',
} as const;

export = COMMAND_BUNDLES;
