/**
 * `shellwire shell HOST`: the classic "Please input cmd:" loop done right. Each line is a
 * command run in a session that keeps `cd` and `export`; its output is complete before
 * the next prompt; Ctrl-C cancels the running command, not the session; EOF ends it.
 * Works with a pipe as stdin too (one command per line, no prompt), for scripts.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { addConnectFlags, connectFromFlags, reportError, signalExitCode, type ConnectFlags } from './common.js';
import type { RemoteProcess } from '../client/remote-process.js';
import { exitWhenFlushed } from './stdio.js';
import { closeOnTermination, exitOnTerminationSignals, onTermination, terminationExitCode } from './lifecycle.js';

export function registerShell(program: Command): void {
  addConnectFlags(
    program
      .command('shell')
      .description('interactive command session on HOST: cd and export persist, Ctrl-C cancels the running command')
      .argument('<host>', 'HOST[:PORT] or [IPv6]:PORT (default port 50007)'),
  ).action(async (host: string, flags: ConnectFlags) => runShell(host, flags));
}

async function runShell(hostText: string, flags: ConnectFlags): Promise<void> {
  exitOnTerminationSignals();
  let conn;
  let session;
  try {
    conn = closeOnTermination(await connectFromFlags(hostText, flags));
    session = await conn.shell();
  } catch (err) {
    reportError(err);
  }
  const interactive = Boolean(process.stdin.isTTY);
  const rl = createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
    historySize: 1000,
  });
  const who = `${conn.server.user}@${conn.server.hostname}`;
  const setPrompt = () => rl.setPrompt(`${who}:${session.cwd}$ `);
  let running: RemoteProcess | null = null;
  let lastStatus = 0;

  const interrupt = () => {
    if (running) running.kill('SIGINT');
    else if (interactive) {
      process.stdout.write('^C\n');
      rl.write(null, { ctrl: true, name: 'u' });
      rl.prompt();
    }
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  onTermination(() => {
    const proc = running;
    proc?.close();
    session.close();
    return proc?.exited;
  });
  const connectionOnClose = (error: Error | null) => {
    if (error && terminationExitCode() === null) process.stderr.write(`shellwire: connection lost: ${error.message}\n`);
    process.exit(255);
  };
  conn.on('close', connectionOnClose);

  if (interactive) {
    process.stdout.write(`Connected to ${conn.hostLabel} as ${conn.server.user}. Ctrl-C cancels a command, Ctrl-D or "exit" ends the session.\n`);
    setPrompt();
    rl.prompt();
  }
  for await (const line of rl) {
    const command = line.trim();
    const exitMatch = /^(exit|logout)(?:\s+(\d+))?$/.exec(command);
    if (exitMatch) {
      if (exitMatch[2] !== undefined) lastStatus = Number(exitMatch[2]) & 0xff;
      break;
    }
    if (command !== '') {
      const proc = session.spawn(line);
      running = proc;
      proc.stdin.end();
      proc.stdout.pipe(process.stdout, { end: false });
      proc.stderr.pipe(process.stderr, { end: false });
      try {
        const [exit] = await Promise.all([
          proc.exited,
          new Promise((resolve) => proc.stdout.once('end', resolve)),
          new Promise((resolve) => proc.stderr.once('end', resolve)),
        ]);
        lastStatus = exit.signal ? signalExitCode(exit.signal) : exit.exitCode ?? 255;
        if (exit.signal === 'SIGINT' && interactive) process.stdout.write('\n');
      } catch (err) {
        reportError(err);
      } finally {
        running = null;
      }
    }
    if (interactive) {
      setPrompt();
      rl.prompt();
    }
  }
  if (interactive) process.stdout.write('\n');
  conn.off('close', connectionOnClose);
  session.close();
  await conn.close();
  await exitWhenFlushed(lastStatus);
}
