/**
 * How a command is launched, as data: `buildCommandSpec` turns what a channel asked for (a
 * command line, an argv, a terminal, a session), what the policy decided (a user with
 * command rules runs argv only, never a shell: docs/policy.md) and the account it runs as
 * into a `CommandSpec`; `spawnLine` turns a spec into the one line that is spawned (setpriv,
 * then env(1) after the privilege drop). Both are pure: no I/O, no clock, no process state.
 *
 * A spec is plain JSON-able data (strings, numbers, booleans, arrays, records): the fork-server
 * spawner of issue 12 receives it over a Unix socket. Its strings are OS byte strings
 * (protocol/os-bytes.ts): a byte that is not UTF-8 is a lone surrogate U+DC80..U+DCFF, which
 * `JSON.stringify` writes as a `\udcXX` escape and `JSON.parse` restores, so the bytes survive
 * the trip; exact-spawn.ts gets them to the command. What is not data stays with the launcher
 * (launch.ts): the cgroup a command is contained in (made at launch, containment.ts), the
 * node-pty module, the pipes.
 */
import { RESTRICTED_PATH } from './command-words.js';
import { ENV_PROGRAM, type SpawnLine } from './exact-spawn.js';

/** util-linux setpriv: switches uid, gid and supplementary groups, then execs. */
export const SETPRIV = '/usr/bin/setpriv';

const SHELL = '/bin/sh';

/**
 * The shell a session command runs in (server/session-state.ts keeps the state it reports).
 * The command arrives in an environment variable so it needs no quoting; fd 3 is closed for
 * the command itself so it cannot write (or hold open) the state pipe. The previous command's
 * status arrives the same way and is restored by returning it from a function, so `$?` in the
 * command is the last command's, as in one long-lived shell.
 */
export const SESSION_WRAPPER = [
  '__sw_cmd=$SHELLWIRE_SESSION_COMMAND; __sw_st=$SHELLWIRE_SESSION_STATUS; unset SHELLWIRE_SESSION_COMMAND SHELLWIRE_SESSION_STATUS',
  '__sw_status() { return "$1"; }; __sw_status "${__sw_st:-0}"',
  'eval "$__sw_cmd" 3>&-',
  '__sw_rc=$?',
  "{ printf '%s\\0' \"$PWD\"; env -0; } >&3",
  'exit $__sw_rc',
].join('\n');

export interface TerminalSize {
  term: string;
  cols: number;
  rows: number;
}

/** A command to launch. Every string is an OS byte string; the whole is JSON-able. */
export interface CommandSpec {
  /** The program: a path, or a name looked up in `env.PATH` (or, with `runAs`, RESTRICTED_PATH). */
  file: string;
  args: string[];
  /** Where it starts (the caller has checked that it is a directory). */
  cwd: string;
  /** The command's environment, exactly; with `runAs`, applied by env(1) after the privilege drop. */
  env: Record<string, string>;
  /** Run as this OS account (uid, gid and its supplementary groups); absent: the daemon's own. */
  runAs?: { uid: number; gid: number };
  /** On a pseudo-terminal (stdout and stderr merged); absent: pipes. */
  pty?: TerminalSize;
  /** Open fd 3 as an extra pipe: a session command reports the shell's state on it. */
  statePipe?: boolean;
  /** SIGTERM → SIGKILL delay when the command is stopped (docs/processes.md). */
  killGraceMs: number;
  /** After a normal exit, how long survivors may hold the output pipes open. */
  outputGraceMs: number;
}

/** What a channel asked to run (plain values of its OPEN request, policy applied). */
export interface CommandRequest {
  /** A command line for `/bin/sh -c`. */
  command?: string | undefined;
  /** An argv run without a shell; wins over `command` (for a user with command rules, `command` is only a label). */
  argv?: readonly string[] | undefined;
  /** The client's variables, over the base (or session) environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** The working directory, resolved by the caller (request, session or home). */
  cwd: string;
  pty?: TerminalSize | undefined;
}

export interface CommandContext {
  /** The policy's word: the user has command rules, so only an argv runs, never a shell (docs/policy.md). */
  withoutShell: boolean;
  /** The OS account: `switch` when it is not the daemon's own (then setpriv switches to it). */
  account: { uid: number; gid: number; shell: string; switch: boolean };
  /** The environment commands start from (a login's for other accounts: server/command-env.ts). */
  baseEnv: Readonly<Record<string, string>>;
  /** A shell session channel's state, for a command run inside it. */
  session?: { env: Readonly<Record<string, string>>; status: number } | undefined;
  killGraceMs: number;
  outputGraceMs: number;
}

export type CommandSpecResult = { ok: true; spec: CommandSpec } | { ok: false; reason: string };

/** The spec for `request`, or why it cannot run (a BAD_REQUEST refusal for the client). */
export function buildCommandSpec(request: CommandRequest, context: CommandContext): CommandSpecResult {
  const { session } = context;
  if (request.pty && session) return refuse('A terminal cannot run inside a shell session channel; open it on its own.');
  if (context.withoutShell) {
    // The policy refuses these first (auth/policy.ts); here so that no shell can run for such a
    // user whatever reaches this point.
    if (request.pty || session) return refuse('Commands of a user with command rules run without a shell: no terminal, no session.');
    if (request.argv === undefined) return refuse('Commands of a user with command rules run as an argv, without a shell; this request has none.');
  }
  const env: Record<string, string> = { ...(session?.env ?? context.baseEnv), ...request.env };
  let file: string;
  let args: string[];
  if (request.pty && request.command === undefined && request.argv === undefined) {
    // No command: the user's login shell, as `ssh host` gives.
    file = context.account.shell || SHELL;
    args = ['-l'];
  } else if (session) {
    const text = request.command ?? request.argv?.map(shellQuote).join(' ');
    if (text === undefined) return refuse('Nothing to run: give a command line or an argv.');
    file = SHELL;
    args = ['-c', SESSION_WRAPPER];
    env.SHELLWIRE_SESSION_COMMAND = text;
    env.SHELLWIRE_SESSION_STATUS = String(session.status);
  } else if (request.argv !== undefined) {
    // argv wins over command: for a user with command rules the policy set argv (matched word
    // by word) and left command only as the audit label (auth/policy.ts).
    if (request.argv.length === 0) return refuse('An argv needs at least the program.');
    [file, ...args] = request.argv as [string, ...string[]];
  } else if (request.command !== undefined) {
    file = SHELL;
    args = ['-c', request.command];
  } else {
    return refuse('Nothing to run: give a command line or an argv (or a terminal for a login shell).');
  }
  if (request.pty) env.TERM = request.pty.term;
  const spec: CommandSpec = { file, args, cwd: request.cwd, env, killGraceMs: context.killGraceMs, outputGraceMs: context.outputGraceMs };
  if (context.account.switch) spec.runAs = { uid: context.account.uid, gid: context.account.gid };
  if (request.pty) spec.pty = { term: request.pty.term, cols: request.pty.cols, rows: request.pty.rows };
  if (session) spec.statePipe = true;
  return { ok: true, spec };
}

/**
 * The line that is spawned for `spec` (before the cgroup wrapper and the byte decoder, which
 * the launcher adds: exact-spawn.ts). Without `runAs`, the spec's own line. With it, setpriv
 * sets uid, gid and the supplementary groups (Node's spawn uid/gid would drop the
 * supplementary groups), then execs in place, so the pid and process group stay the
 * command's. setpriv runs as root, so it gets a clean environment of the daemon's making; the
 * command's environment (the client's variables, a session's exports) is applied by env(1)
 * after the switch, so nothing a client sets (LD_PRELOAD, …) reaches code that runs with
 * privileges.
 */
export function spawnLine(spec: CommandSpec): SpawnLine {
  if (!spec.runAs) return { file: spec.file, args: [...spec.args], cwd: spec.cwd, env: { ...spec.env } };
  const assignments = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`);
  // env(1) takes every leading word with "=" as an assignment, a program path too
  // (`/opt/run=1`): such a program is started by a shell that only execs it, never
  // by env, or the next argument would run in its place.
  const program = spec.file.includes('=') ? [SHELL, '-c', 'exec "$0" "$@"', spec.file] : [spec.file];
  return {
    file: SETPRIV,
    args: ['--reuid', String(spec.runAs.uid), '--regid', String(spec.runAs.gid), '--init-groups', '--', ENV_PROGRAM, '-i', '--', ...assignments, ...program, ...spec.args],
    cwd: spec.cwd,
    env: { PATH: RESTRICTED_PATH },
  };
}

function refuse(reason: string): CommandSpecResult {
  return { ok: false, reason };
}

/** A word as the session shell reads it back (argv of a session command). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
