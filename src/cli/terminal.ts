/**
 * `shellwire tty HOST [-- COMMAND]` and `shellwire exec -t`: a remote pseudo-terminal.
 * The local terminal goes to raw mode, so Ctrl-C, Ctrl-Z, Ctrl-D and arrow keys travel as
 * bytes to the remote terminal, whose line discipline turns them into signals and EOF.
 * Raw mode is always undone: on exit, on errors and on signals.
 */
import type { Command } from 'commander';
import type { Connection } from '../client/connection.js';
import { addConnectFlags, commandAfterHost, connectFromFlags, reportError, signalExitCode, type ConnectFlags } from './common.js';
import { exitWhenFlushed } from './stdio.js';
import { closeOnTermination, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';

export function registerTty(program: Command): void {
  addConnectFlags(
    program
      .command('tty')
      .description('open a terminal on HOST (your login shell, or COMMAND) — full-screen programs, Ctrl-C, resize all work')
      .usage('[options] [USER@]HOST[:PORT] [[--] COMMAND...]')
      .argument('<host>', 'an inventory name, HOST[:PORT] or [IPv6]:PORT (default port 50007)')
      .argument('[command...]', 'run this instead of the login shell (every word after the host, options included)')
      .passThroughOptions(),
  ).action(async function (this: Command, host: string, rest: string[]) {
    const words = commandAfterHost(this, rest);
    const flags = this.opts<ConnectFlags>();
    // Ctrl-C is a key for the remote terminal once it runs; while connecting it ends us.
    exitOnTerminationSignals();
    process.on('SIGINT', () => terminate('SIGINT'));
    let conn: Connection;
    try {
      conn = await connectFromFlags(host, flags);
    } catch (err) {
      reportError(err);
    }
    await runOnTerminal(conn, words.length > 0 ? words.join(' ') : null);
  });
}

/** Run `command` (null: login shell) on a remote terminal wired to ours; exits the process. */
export async function runOnTerminal(conn: Connection, command: string | null): Promise<never> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const localTty = Boolean(stdin.isTTY);
  const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
  const proc = conn.spawn(command, { pty: { term: process.env.TERM || 'xterm-256color', ...size() } });

  const restore = () => {
    if (localTty && stdin.isRaw) stdin.setRawMode(false);
  };
  process.on('exit', restore);
  // SIGTERM/SIGHUP (the callers install them): the terminal first, then the remote command.
  closeOnTermination(conn);
  onTermination(() => {
    restore();
    proc.close();
    return proc.exited;
  });
  if (localTty) {
    stdin.setRawMode(true);
    // Typed keys are bytes for the remote terminal, never signals for us.
    stdin.on('data', (chunk: Buffer) => proc.stdin.write(chunk));
    stdin.resume();
  } else {
    stdin.pipe(proc.stdin);
  }
  process.on('SIGWINCH', () => {
    const { cols, rows } = size();
    proc.resize(cols, rows);
  });
  proc.stdout.pipe(stdout, { end: false });
  proc.stderr.pipe(process.stderr, { end: false });
  try {
    const [exit] = await Promise.all([proc.exited, new Promise((resolve) => proc.stdout.once('end', resolve))]);
    restore();
    const code = exit.signal ? signalExitCode(exit.signal) : exit.canceled ? 255 : exit.exitCode ?? 255;
    return await exitWhenFlushed(code);
  } catch (err) {
    restore();
    reportError(err);
  }
}
