/** `shellwire exec HOST [--] COMMAND…`: run one command, stream its output, exit with its status. */
import type { Command } from 'commander';
import type { Connection } from '../client/connection.js';
import type { RemoteProcess } from '../client/remote-process.js';
import { runOnTerminal } from './terminal.js';
import { addConnectFlags, commandAfterHost, connectFromFlags, fail, parseSeconds, reportError, signalExitCode, EXIT_TIMED_OUT, type ConnectFlags } from './common.js';
import { BROKEN_PIPE_EXIT, exitAfterHooks, exitWhenFlushed } from './stdio.js';
import { osTextBytes } from './os-text.js';
import { closeOnTermination, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';

interface ExecFlags extends ConnectFlags {
  timeout?: string;
  stdin: boolean;
  tty?: boolean;
}

export function registerExec(program: Command): void {
  addConnectFlags(
    program
      .command('exec')
      .description('run COMMAND on HOST with /bin/sh -c; stdout, stderr and the exit code come back as they are')
      .usage('[options] [USER@]HOST[:PORT] [--] COMMAND...')
      .argument('<host>', 'an inventory name, HOST[:PORT] or [IPv6]:PORT (default port 50007)')
      .argument('[command...]', 'the command: every word after the host (options included), joined with spaces as ssh does')
      .option('--timeout <duration>', 'kill the command (SIGTERM, then SIGKILL) after this long (seconds, or 500ms, 2m, 1h); exit status 124')
      .option('-n, --no-stdin', 'do not forward standard input (the command reads EOF)')
      .option('-t, --tty', 'run the command on a pseudo-terminal (for programs that need one: top, vi, sudo)')
      .passThroughOptions(),
  ).action(async function (this: Command, host: string, rest: string[]) {
    const words = commandAfterHost(this, rest);
    const flags = this.opts<ExecFlags>();
    if (words.length === 0) fail(`exec needs a command after the host (shellwire exec ${host} -- COMMAND); for an interactive session use \`shellwire shell ${host}\` or \`shellwire tty ${host}\`.`, 2);
    // Whole milliseconds: 1.005 * 1000 is 1004.9999999999999, which the protocol refuses.
    const timeoutMs = flags.timeout === undefined ? undefined : Math.max(1, Math.round(parseSeconds(flags.timeout, '--timeout') * 1000));
    await runExec(host, words.join(' '), flags, timeoutMs);
  });
}

async function runExec(host: string, command: string, flags: ExecFlags, timeoutMs: number | undefined): Promise<void> {
  // From the first moment: a signal while connecting (a daemon frozen mid-handshake) ends us too.
  exitOnTerminationSignals();
  let proc: RemoteProcess | null = null;
  // Ctrl-C: SIGINT to the remote process group; a second Ctrl-C (or one before the command
  // started) ends the client, whatever the daemon does.
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts += 1;
    if (interrupts === 1 && proc) proc.kill('SIGINT');
    else terminate('SIGINT');
  });
  let conn: Connection;
  try {
    conn = closeOnTermination(await connectFromFlags(host, flags));
  } catch (err) {
    reportError(err);
  }
  if (flags.tty) await runOnTerminal(conn, command);
  const started = conn.spawn(command, timeoutMs === undefined ? {} : { timeoutMs });
  proc = started;
  onTermination(() => {
    started.close();
    return started.exited;
  });
  started.stdout.pipe(process.stdout, { end: false });
  started.stderr.pipe(process.stderr, { end: false });
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // The reader went away (`| head`): stop the command, exit as a shell pipeline would.
    if (err.code === 'EPIPE') {
      started.close();
      void exitAfterHooks(BROKEN_PIPE_EXIT);
    }
  });
  if (flags.stdin) {
    process.stdin.pipe(started.stdin);
  } else {
    started.stdin.end();
  }
  try {
    const [exit] = await Promise.all([
      started.exited,
      new Promise((resolve) => started.stdout.once('end', resolve)),
      new Promise((resolve) => started.stderr.once('end', resolve)),
    ]);
    let code: number;
    if (exit.timedOut) {
      process.stderr.write(osTextBytes(`shellwire: command timed out after ${timeoutMs! / 1000} s and was killed: ${command}\n`));
      code = EXIT_TIMED_OUT;
    } else if (exit.signal) code = signalExitCode(exit.signal);
    else if (exit.canceled) code = signalExitCode('SIGINT');
    else code = exit.exitCode ?? 255;
    await exitWhenFlushed(code);
  } catch (err) {
    reportError(err);
  }
}
