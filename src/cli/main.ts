/** The `shellwire` command line: commands only parse flags, call the library, and print. */
import { runMain, type CommandTable } from './program.js';

export { VERSION } from './program.js';

/**
 * Each top-level command and the module that registers it. Only the module of the command
 * being run is loaded (the bundle keeps dynamically imported modules lazy), so a cold
 * `shellwire exec` does not evaluate the daemon, the fleet code or the YAML parser.
 */
const COMMANDS: CommandTable = {
  serve: async () => [(await import('./serve.js')).registerServe],
  exec: async () => [(await import('./exec.js')).registerExec],
  shell: async () => [(await import('./shell.js')).registerShell],
  tty: async () => [(await import('./terminal.js')).registerTty],
  put: async () => [(await import('./files.js')).registerFiles],
  get: async () => [(await import('./files.js')).registerFiles],
  ls: async () => [(await import('./files.js')).registerFiles],
  run: async () => [(await import('./run.js')).registerRun],
  hosts: async () => [(await import('./hosts.js')).registerHosts],
  discover: async () => [(await import('./discover.js')).registerDiscover],
  'known-hosts': async () => [(await import('./known-hosts.js')).registerKnownHosts],
  audit: async () => [(await import('./audit.js')).registerAudit],
  keygen: async () => [(await import('./users.js')).registerUsers],
  user: async () => [(await import('./users.js')).registerUsers],
  key: async () => [(await import('./users.js')).registerUsers],
  token: async () => [(await import('./users.js')).registerUsers],
  locks: async () => [(await import('./locks.js')).registerLocks],
  completion: async () => (await import('./completion.js')).completionRegisters(COMMANDS),
  'install-service': async () => [(await import('./install-service.js')).registerInstallService],
  'rotate-host-key': async () => [(await import('./rotate-host-key.js')).registerRotateHostKey],
};

runMain(COMMANDS);
