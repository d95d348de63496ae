/** Builds the commander program from a table of lazily loaded command modules and runs it. */
import { Command, CommanderError } from 'commander';
import { BROKEN_PIPE_EXIT, exitAfterHooks, exitOnBrokenPipe } from './stdio.js';
import { osArgv } from './os-text.js';
import { addExamples } from './help-examples.js';
import { escapeControls } from '../client/display-text.js';

export const VERSION = '0.1.0';

export type Register = (program: Command) => void;
export type CommandTable = Record<string, () => Promise<Register[]>>;

/**
 * A private key block (PEM/OpenSSH armour with a body) or a PuTTY key file, anywhere in a word.
 * The body is required so that searching for keys stays possible: `exec web01 -- grep -rl
 * -- '-----BEGIN OPENSSH PRIVATE KEY-----' /home` carries only the armour line.
 */
const PRIVATE_KEY_WORD = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=:,\s-]{64,}|PuTTY-User-Key-File-\d+:[\s\S]*Private-Lines:/;

/**
 * Refuse a command line that carries a private key (`key add alice "$(cat ~/.ssh/id_ed25519)"`)
 * before commander sees it: its error messages quote the word they reject ("unknown option
 * '-----BEGIN OPENSSH PRIVATE KEY----- …'"), and so would any later message. The key is never
 * echoed; the message names only its position.
 */
export function refusePrivateKeyArguments(argv: readonly string[]): void {
  const index = argv.findIndex((word) => PRIVATE_KEY_WORD.test(word));
  if (index === -1) return;
  process.stderr.write(
    `shellwire: argument ${index + 1} looks like a private key; give the public half (the .pub file, or the output of ssh-keygen -y -f KEY), never the private key. It was not shown or used.\n`,
  );
  process.exit(2);
}

export async function runProgram(commands: CommandTable): Promise<void> {
  refusePrivateKeyArguments(process.argv.slice(2));
  const program = new Command()
    .name('shellwire')
    .description('Run commands on remote hosts over TLS: byte-exact output, exit codes, sessions.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    // Options of a command stay with it, so exec/tty/run can stop at the host, as ssh does
    // (commandAfterHost in common.ts): `shellwire exec web01 uname -a` runs `uname -a`.
    .enablePositionalOptions()
    .exitOverride((err: CommanderError) => {
      // Usage errors exit 2, as most Unix tools; help and version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  const name = process.argv[2];
  // Own names only: `shellwire constructor` is an unknown command, not Object's constructor.
  const own = name !== undefined && Object.hasOwn(commands, name) ? commands[name] : undefined;
  const loaders = own ? [own] : [...new Set(Object.values(commands))];
  const registered = new Set<Register>();
  for (const load of loaders) {
    for (const register of await load()) {
      if (registered.has(register)) continue;
      registered.add(register);
      register(program);
    }
  }
  addExamples(program);
  // Arguments as OS byte strings: a Latin-1 word reaches the daemon as its bytes (os-text.ts).
  await program.parseAsync(osArgv());
}

export function runMain(commands: CommandTable): void {
  exitOnBrokenPipe();
  runProgram(commands).catch((err: unknown) => {
    // A write that awaited 'drain' rejects with the stream's EPIPE: the reader went away.
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return void exitAfterHooks(BROKEN_PIPE_EXIT);
    process.stderr.write(`shellwire: ${escapeControls(err instanceof Error ? err.message : String(err))}\n`);
    process.exit(1);
  });
}
