/**
 * `shellwire shell HOST`: the classic "Please input cmd:" loop done right. Each command
 * runs in a session that keeps `cd`, `export` and `$?`; its output is complete before the
 * next prompt; Ctrl-C interrupts the running command (a second one ends it), not the
 * session; EOF ends it. Works with a pipe as stdin too (one command per line, no prompt).
 */
import type { Command } from 'commander';
import { addConnectFlags, connectFromFlags, reportError, signalExitCode, type ConnectFlags, warn } from './common.js';
import type { RemoteProcess } from '../client/remote-process.js';
import type { ShellSession } from '../client/shell-session.js';
import { exitWhenFlushed } from './stdio.js';
import { forTerminal } from './os-text.js';
import { LineEndTracker, PipedInput, TerminalInput, type ShellInput } from './shell-input.js';
import { isCompleteCommand, parseExit, startsWithExit } from './shell-line.js';
import { NO_TERMINAL_OUTPUT, NO_TERMINAL_SCAN_BYTES, programName, terminalProgram } from './shell-needs-tty.js';

/** A command is sent as it stands after this many lines, even if it looks unfinished. */
export const MAX_COMMAND_LINES = 1000;
import { closeOnTermination, exitOnTerminationSignals, onTermination, terminationExitCode } from './lifecycle.js';

/** The command running now, if any: SIGTERM/SIGHUP close it before the client ends. */
let running: RemoteProcess | null = null;

export function registerShell(program: Command): void {
  addConnectFlags(
    program
      .command('shell')
      .description('interactive command session on HOST: cd, export and $? persist, Ctrl-C interrupts the running command')
      .argument('<host>', 'an inventory name, HOST[:PORT] or [IPv6]:PORT (default port 50007)'),
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
  const input: ShellInput = process.stdin.isTTY ? new TerminalInput() : new PipedInput();
  // What `shellwire tty` needs to reach the same host as this session: the same credentials.
  const ttyTarget = [
    ...(flags.inventory ? ['--inventory', shellWord(flags.inventory)] : []),
    ...(flags.port ? ['-p', shellWord(flags.port)] : []),
    ...(flags.user ? ['-l', shellWord(flags.user)] : []),
    ...(flags.tokenFile ? ['--token-file', shellWord(flags.tokenFile)] : []),
    ...(flags.identity ? ['-i', shellWord(flags.identity)] : []),
    ...(flags.password ? ['--password'] : []),
    ...(flags.via ? ['--via', shellWord(flags.via)] : []),
    shellWord(hostText),
  ].join(' ');
  // Through a gateway WELCOME is the gateway's (its user, its hostname): name the host instead;
  // the account there is the gateway's choice, which the client is not told.
  const who = conn.relayHost !== null ? conn.relayHost : `${conn.server.user}@${conn.server.hostname}`;
  let lastStatus = 0;

  onTermination(() => {
    const proc = running;
    proc?.close();
    session.close();
    return proc?.exited;
  });
  const connectionOnClose = (error: Error | null) => {
    input.close();
    if (error && terminationExitCode() === null) process.stderr.write(`${input.interactive ? '\n' : ''}shellwire: connection lost: ${error.message}\n`);
    process.exit(255);
  };
  conn.on('close', connectionOnClose);

  if (input.interactive) {
    // Through a gateway the login is the gateway's, and the account on the host is its
    // users.yaml `as:`, which the client is not told: say which is which.
    const as = conn.relayHost !== null ? ` (logged in to the gateway as ${conn.server.user}; it picks the account on ${conn.relayHost})` : ` as ${conn.server.user}`;
    process.stdout.write(`Connected to ${forTerminal(conn.hostLabel)}${forTerminal(as)}. Ctrl-C interrupts a command (twice: ends it), Ctrl-D or "exit" ends the session.\n`);
  }
  let lines: string[] = [];
  for (;;) {
    // The remote cwd is any bytes: an escape sequence in a directory name never reaches our terminal.
    const read = await input.read(lines.length === 0 ? `${forTerminal(who)}:${forTerminal(session.cwd)}$ ` : '> ');
    if (read.kind === 'interrupt') {
      lines = [];
      continue;
    }
    // At EOF an unfinished command still goes: the remote shell says what is wrong with it.
    if (read.kind === 'eof' && lines.length === 0) break;
    if (read.kind === 'line') lines.push(read.text);
    const text = lines.join('\n');
    if (read.kind === 'line' && !isCompleteCommand(text) && lines.length < MAX_COMMAND_LINES) continue;
    input.joinHistory(lines.length, text);
    lines = [];
    const command = text.trim();
    if (command === '') continue;
    const exit = parseExit(command);
    if (exit) {
      if (exit.status !== undefined) lastStatus = exit.status;
      break;
    }
    const needsTerminal = input.interactive ? terminalProgram(text) : null;
    if (needsTerminal) {
      // Not run, so `$?` stays as it was.
      warn(`${needsTerminal} needs a terminal; use ${ttyHint(ttyTarget, command)}`);
      continue;
    }
    lastStatus = await runCommand(session, text, input, ttyTarget);
    // `exit $?`, `exit 3; …`: the remote shell worked out the status; the session ends.
    if (startsWithExit(command)) break;
  }
  if (input.interactive) process.stdout.write('\n');
  input.close();
  conn.off('close', connectionOnClose);
  session.close();
  await conn.close();
  await exitWhenFlushed(lastStatus);
}

/**
 * Run one command; returns its status as `$?` shows it. Ctrl-C sends SIGINT to its
 * process group; a second Ctrl-C closes the channel, which ends it (SIGTERM, then SIGKILL),
 * as in `shellwire exec`. The session's `$?` is then 130.
 */
async function runCommand(session: ShellSession, text: string, input: ShellInput, hostText: string): Promise<number> {
  const proc: RemoteProcess = session.spawn(text);
  running = proc;
  proc.stdin.end();
  const onTerminal = input.interactive && Boolean(process.stdout.isTTY);
  const lineEnd = new LineEndTracker();
  let echoedLast = false;
  let scanned = '';
  const seen = (chunk: Buffer) => {
    lineEnd.note(chunk);
    echoedLast = false;
    if (scanned.length < NO_TERMINAL_SCAN_BYTES) scanned += chunk.subarray(0, NO_TERMINAL_SCAN_BYTES).toString('latin1');
  };
  proc.stdout.on('data', seen);
  proc.stderr.on('data', seen);
  proc.stdout.pipe(process.stdout, { end: false });
  proc.stderr.pipe(process.stderr, { end: false });
  let interrupts = 0;
  input.commandStarted(() => {
    interrupts += 1;
    if (interrupts === 1) proc.kill('SIGINT');
    else proc.close();
    if (input.interactive) {
      process.stdout.write('^C');
      lineEnd.note('^C');
      echoedLast = true;
    }
  });
  try {
    const [exit] = await Promise.all([
      proc.exited,
      new Promise((resolve) => proc.stdout.once('end', resolve)),
      new Promise((resolve) => proc.stderr.once('end', resolve)),
    ]);
    if (onTerminal) process.stdout.write(lineEnd.finish(echoedLast));
    if (input.interactive && NO_TERMINAL_OUTPUT.test(scanned)) {
      warn(`${programName(text, scanned)} needs a terminal; use ${ttyHint(hostText, text.trim())}`);
    }
    if (exit.signal) return signalExitCode(exit.signal);
    if (exit.canceled) return signalExitCode('SIGINT');
    return exit.exitCode ?? 255;
  } catch (err) {
    // The server refused this command: say why and keep the session (on a pipe: stop there).
    if (!input.interactive) reportError(err);
    warn(`${(err as Error).message}`);
    return 255;
  } finally {
    running = null;
    input.commandEnded();
  }
}

/** `shellwire tty HOST -- COMMAND`, quoted so it can be pasted into a local shell. */
function ttyHint(target: string, command: string): string {
  return `\`shellwire tty ${target} -- ${/^[\w./:=@%+,\- ]+$/.test(command) ? command : shellWord(command)}\``;
}

/** One word for a POSIX shell, quoted only when it needs to be. */
function shellWord(word: string): string {
  return /^[\w./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
