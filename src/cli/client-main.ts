/**
 * Entry of the client bundle (`dist/shellwire-client.cjs`): only the commands that talk
 * to a daemon, so a cold `shellwire exec` compiles a fraction of the code. bin/shellwire.cjs
 * picks this bundle for these command names.
 */
import { runMain, type CommandTable } from './program.js';

export const CLIENT_COMMANDS: CommandTable = {
  exec: async () => [(await import('./exec.js')).registerExec],
  shell: async () => [(await import('./shell.js')).registerShell],
  tty: async () => [(await import('./terminal.js')).registerTty],
};

runMain(CLIENT_COMMANDS);
