/**
 * `shellwire put`, `shellwire get`, `shellwire ls`: file transfer as scp users expect it.
 *
 *   shellwire put [-r] [--resume] [--quiet] LOCAL... [USER@]HOST[:PORT]:REMOTE
 *   shellwire get [-r] [--resume] [--quiet] [USER@]HOST[:PORT]:REMOTE... LOCAL
 *   shellwire put [-r] [--parallel N] [--timeout T] [--json] LOCAL... TARGETS:REMOTE   (files-fanout.ts)
 *   shellwire get [-r] [--parallel N] [--timeout T] [--json] TARGETS:REMOTE... LOCALDIR
 *   shellwire ls [--json] [USER@]HOST[:PORT]:PATH
 *
 * Relative remote paths start at the remote user's home. Exit status: 0 when every file
 * arrived verified, 1 when any failed (the others still transfer), 255 when the
 * connection failed, 130 when interrupted (partial files are kept for --resume).
 */
import { Option, type Command } from 'commander';
import type { Connection } from '../client/connection.js';
import type { TransferProgress, RemoteEntry } from '../client/files/common.js';
import type { TreeOptions, TreeResult } from '../client/files/common.js';
import { ShellwireError } from '../errors.js';
import { addConnectFlags, connectFromFlags, fail, reportError, type ConnectFlags, refuseTargetExpression } from './common.js';
import { parseSizeFlag } from './common.js';
import { ProgressLine, formatBytes } from './progress.js';
import { exitWhenFlushed } from './stdio.js';
import { exactWords } from './os-argv.js';
import { encodeOsBytes, isOsString } from '../protocol/os-bytes.js';
import { closeOnTermination, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';
import { forTerminal } from './os-text.js';
import { escapeControls } from '../client/display-text.js';
import { parseTargetsSpec, refuseBareTargets, refuseFanOutFlags, type FanOutFlags } from './files-targets.js';

interface TransferFlags extends FanOutFlags {
  /** scp's spelling of -p. */
  P?: string;
}

interface LsFlags extends ConnectFlags {
  P?: string;
  json?: boolean;
}

export interface RemoteSpec {
  /** `[USER@]HOST[:PORT]` for connect. */
  target: string;
  path: string;
}

const REMOTE_SPEC = /^(?:([^@/:]+)@)?(\[[^\]/]+\]|[^:/[\]@]+)(?::(\d+))?:(.*)$/s;

/** `[USER@]HOST[:PORT]:PATH` (`[IPv6]:PORT:PATH` too); null for a local path (no `HOST:`). */
export function parseRemoteSpec(text: string): RemoteSpec | null {
  const m = REMOTE_SPEC.exec(text);
  if (!m) return null;
  const [, user, host, port, path] = m;
  return { target: `${user ? `${user}@` : ''}${host}${port ? `:${port}` : ''}`, path: path! };
}

export function registerFiles(program: Command): void {
  const transfer = (name: 'put' | 'get', description: string, usage: string) =>
    addConnectFlags(
      program
        .command(name)
        .description(description)
        .argument('<paths...>', usage)
        .option('-r, --recursive', 'copy directories and everything below them')
        .option('--resume', 'continue an interrupted transfer from its partial file (.NAME.shellwire-part) when its bytes match (the default)')
        .option('--no-resume', 'start over even when a matching partial file exists')
        .option('-q, --quiet', 'no progress bar and no notes; errors only')
        .option('--limit-rate <rate>', 'at most RATE bytes per second: 65536, 500K, 5M, 1G (K/M/G = 1024^n; KB/MB = 1000^n)')
        .addOption(scpPortOption())
        .option('--parallel <n>', `TARGETS: hosts copying at once (default ${FANOUT_DEFAULT})`)
        .option('--timeout <duration>', 'TARGETS: give up on a host whose copy takes longer (seconds, or 500ms, 2m, 1h); its partial files are kept')
        .option('--json', 'TARGETS: JSON Lines on stdout, one result per host and a summary, as run --json')
        .addHelpText('after', FANOUT_HELP[name]),
    );
  // Paths are bytes: exactWords() recovers words that are not UTF-8 from the command line.
  transfer('put', 'upload files to HOST (or to every host TARGETS names): atomic (temp file + rename), SHA-256 verified, mode and mtime kept', 'LOCAL... [USER@]HOST[:PORT]:REMOTE or TARGETS:REMOTE').action(
    (paths: string[], flags: TransferFlags) => runTransfer('put', exactWords(paths), withScpPort(flags)),
  );
  transfer('get', 'download files from HOST (or from every host TARGETS names, into LOCALDIR/HOST/): atomic, SHA-256 verified, mode and mtime kept', '[USER@]HOST[:PORT]:REMOTE... LOCAL or TARGETS:REMOTE... LOCALDIR').action(
    (paths: string[], flags: TransferFlags) => runTransfer('get', exactWords(paths), withScpPort(flags)),
  );
  addConnectFlags(
    program
      .command('ls')
      .description('list a remote directory: mode, size, mtime, name')
      .argument('<path>', '[USER@]HOST[:PORT]:PATH (relative paths start at the remote home)')
      .option('--json', 'print a JSON array of {name, type, size, mode, mtime, mtimeMs}; nameBase64 for a name that is not UTF-8')
      .addOption(scpPortOption()),
  ).action((spec: string, flags: LsFlags) => runLs(exactWords([spec])[0]!, withScpPort(flags)));
}

/** `--parallel`'s default: run's `--fanout` (fleet/run-on.ts DEFAULT_FANOUT; not imported, to keep one-host put light). */
const FANOUT_DEFAULT = 64;

const FANOUT_HELP = {
  put: `
Many hosts: when the part before ":" is a target expression (@group, a,b, web[01-05],
label=value, !exclusion) the files go to every host it names, in parallel, each copy
verified and renamed into place as for one host; a plain name (inventory or not) is one host.
Through a gateway (--via GW, or the inventory's via:) TARGETS are the gateway's hosts and
each file crosses your link once: the gateway checks it and pushes it to every host. With -r
each host still gets its own stream through the gateway.
Exit status: 0 when every file arrived verified on every host; 1 when any host or file
failed (the others still complete; the summary names each failure); 2 for a usage error;
255 when the one host could not be reached; 130 when interrupted.
`,
  get: `
Many hosts: when the part before ":" is a target expression (@group, a,b, web[01-05],
label=value, !exclusion) each host's files go to LOCALDIR/HOST/ (created), in parallel.
Exit status: 0 when every file arrived verified from every host; 1 when any host or file
failed (the others still complete; the summary names each failure); 2 for a usage error;
255 when the one host could not be reached; 130 when interrupted.
`,
} as const;

/** scp users write the port as `-P` (scp's `-p` preserves times, which put and get always do). */
function scpPortOption(): Option {
  return new Option('-P <port>', 'same as -p (scp\'s spelling)').hideHelp();
}

function withScpPort<T extends { P?: string; port?: string }>(flags: T): T {
  if (flags.P !== undefined && flags.port === undefined) flags.port = flags.P;
  return flags;
}

function parseRate(text: string): number {
  return parseSizeFlag(text, '--limit-rate', { min: 1 });
}

/** Connect; SIGTERM, SIGHUP and Ctrl-C end the command from now on (see lifecycle.ts). */
async function connectOrExit(target: string, flags: ConnectFlags): Promise<Connection> {
  exitOnTerminationSignals();
  process.on('SIGINT', () => terminate('SIGINT'));
  try {
    return closeOnTermination(await connectFromFlags(target, flags));
  } catch (err) {
    reportError(err);
  }
}

async function runTransfer(direction: 'put' | 'get', paths: string[], flags: TransferFlags): Promise<void> {
  if (paths.length < 2) fail(`${direction} needs a source and a destination; see shellwire ${direction} --help.`, 2);
  const sources = paths.slice(0, -1);
  const destination = paths[paths.length - 1]!;
  // TARGETS:PATH (a target expression before the colon) fans out; anything else is one host.
  const fanOut = direction === 'put' ? parseTargetsSpec(destination) !== null : parseTargetsSpec(sources[0]!) !== null;
  if (fanOut) {
    const { runFanOutTransfer } = await import('./files-fanout.js');
    return runFanOutTransfer(direction, sources, destination, flags);
  }
  refuseFanOutFlags(flags, direction === 'put' ? destination : sources[0]!);
  let target: string;
  let remotes: string[];
  let local: string[];
  let remoteDest = '';
  if (direction === 'put') {
    const spec = parseRemoteSpec(destination);
    if (!spec) refuseBareTargets(destination);
    if (!spec) refuseTargetExpression(destination);
    if (!spec) fail(`The destination "${destination}" is not remote; write [USER@]HOST[:PORT]:PATH.`, 2);
    const remoteSource = sources.find((s) => parseRemoteSpec(s) !== null && !s.startsWith('/') && !s.startsWith('.'));
    if (remoteSource) fail(`put copies local files to a host; "${remoteSource}" looks remote (use get).`, 2);
    target = spec.target;
    remoteDest = spec.path;
    local = sources;
    remotes = [];
  } else {
    const specs = sources.map((s) => parseRemoteSpec(s));
    const bad = sources.find((_, i) => specs[i] === null);
    if (bad !== undefined) refuseBareTargets(bad);
    if (bad !== undefined) refuseTargetExpression(bad);
    if (bad !== undefined) fail(`The source "${bad}" is not remote; write [USER@]HOST[:PORT]:PATH.`, 2);
    target = specs[0]!.target;
    if (specs.some((s) => s!.target !== target)) fail('All sources of one get must be on the same host.', 2);
    remotes = specs.map((s) => s!.path);
    local = [destination];
  }
  const conn = await connectOrExit(target, flags);
  const progress = !flags.quiet && process.stderr.isTTY ? new ProgressLine(process.stderr) : null;
  const note = (message: string) => {
    if (flags.quiet) return;
    progress?.finish();
    writeMessage(`shellwire: ${message}\n`);
  };
  // On a signal: close the channels (partial files are kept for resume), then end.
  const controller = new AbortController();
  let interrupted = false;
  let transfer: Promise<TreeResult> | null = null;
  onTermination(() => {
    interrupted = true;
    controller.abort();
    return transfer;
  });
  const noted = new Set<string>();
  const options: TreeOptions = {
    recursive: flags.recursive === true,
    resume: flags.resume !== false,
    signal: controller.signal,
    onProgress: (p: TransferProgress) => {
      const key = `${p.local}\0${p.remote}`;
      if (p.resumedFrom > 0 && !noted.has(key)) {
        noted.add(key);
        note(`resuming ${p.direction === 'put' ? p.remote : p.local} at ${formatBytes(p.resumedFrom)} of ${formatBytes(p.size)}`);
      }
      progress?.update(p);
    },
    ...(flags.limitRate ? { rateLimit: parseRate(flags.limitRate) } : {}),
  };
  let result: TreeResult;
  try {
    transfer = direction === 'put' ? conn.putRecursive(local, remoteDest, options) : conn.getRecursive(remotes, local[0]!, options);
    result = await transfer;
  } catch (err) {
    progress?.finish();
    if (interrupted) exitInterrupted(direction);
    if (err instanceof ShellwireError && err.name === 'FileTransferError') {
      writeMessage(`shellwire: ${err.message} [${err.code}]\n`);
      await conn.close();
      process.exit(1);
    }
    reportError(err);
  }
  progress?.finish();
  if (interrupted) exitInterrupted(direction);
  for (const failure of result.failures) {
    const code = failure.error instanceof ShellwireError ? ` [${failure.error.code}]` : '';
    writeMessage(`shellwire: ${failure.error.message}${code}\n`);
  }
  await conn.close();
  await exitWhenFlushed(result.failures.length > 0 ? 1 : 0);
}

function exitInterrupted(direction: string): never {
  process.stderr.write(`shellwire: ${direction} interrupted; partial files were kept, run it again to continue (it resumes from the partial files).\n`);
  process.exit(130);
}

async function runLs(specText: string, flags: LsFlags): Promise<void> {
  const spec = parseRemoteSpec(specText) ?? (specText.includes(':') ? null : { target: specText, path: '' });
  if (!spec) refuseTargetExpression(specText);
  if (!spec) fail(`"${specText}" is not [USER@]HOST[:PORT]:PATH.`, 2);
  const conn = await connectOrExit(spec.target, flags);
  let entries: RemoteEntry[];
  try {
    entries = await conn.list(spec.path);
  } catch (err) {
    if (err instanceof ShellwireError && err.name === 'FileTransferError') {
      writeMessage(`shellwire: ${err.message} [${err.code}]\n`);
      await conn.close();
      process.exit(1);
    }
    reportError(err);
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(entries.map(jsonEntry), null, 2)}\n`);
  } else {
    const width = Math.max(1, ...entries.map((e) => String(e.size).length));
    const terminal = process.stdout.isTTY === true;
    for (const e of entries) {
      const shown = (text: string) => (terminal ? forTerminal(text) : text);
      const name = e.type === 'symlink' && e.target !== undefined ? `${shown(e.name)} -> ${shown(e.target)}` : shown(e.name);
      writeBytes(process.stdout, `${modeString(e)} ${String(e.size).padStart(width)} ${formatTime(e.mtimeMs)} ${name}\n`);
    }
  }
  await conn.close();
  await exitWhenFlushed(0);
}

/**
 * Write text whose names are OS byte strings as the bytes they stand for (`caf\udce9` as
 * the byte 0xE9), as GNU ls and cp do; a plain `write(string)` would print U+FFFD instead.
 */
function writeBytes(stream: NodeJS.WriteStream, text: string): void {
  stream.write(isOsString(text) ? encodeOsBytes(text) : text);
}

/**
 * A message on stderr naming remote paths: controls, bidi overrides and non-UTF-8 bytes
 * escaped (`\x1b`, `\u{202e}`, `\xe9`), as GNU cp quotes a name in its errors, so a file name
 * cannot rewrite the terminal or make the message read reversed.
 */
function writeMessage(text: string): void {
  process.stderr.write(escapeControls(text));
}

export { forTerminal } from './os-text.js';

/**
 * One `ls --json` row. `name` and `target` are JSON strings in surrogateescape form: a byte
 * that is not UTF-8 is the escape `\udcXX` (lossless for readers that know it, such as
 * Python's `os.fsencode`). For everyone else, a name or target that is not UTF-8 also comes
 * as its bytes in base64 (`nameBase64`, `targetBase64`); a UTF-8 one needs no second spelling.
 */
export function jsonEntry(entry: RemoteEntry): Record<string, unknown> {
  const row: Record<string, unknown> = { ...entry, mtime: new Date(entry.mtimeMs).toISOString() };
  const bytes = encodeOsBytes(entry.name);
  if (bytes.toString('utf8') !== entry.name) row.nameBase64 = bytes.toString('base64');
  if (entry.target !== undefined) {
    const target = encodeOsBytes(entry.target);
    if (target.toString('utf8') !== entry.target) row.targetBase64 = target.toString('base64');
  }
  return row;
}

/** `drwxr-xr-x`, with setuid/setgid/sticky as ls shows them. */
export function modeString(entry: Pick<RemoteEntry, 'type' | 'mode'>): string {
  const type = entry.type === 'dir' ? 'd' : entry.type === 'symlink' ? 'l' : entry.type === 'file' ? '-' : '?';
  const m = entry.mode;
  const triplet = (shift: number, special: number, letter: string) => {
    const r = m & (4 << shift) ? 'r' : '-';
    const w = m & (2 << shift) ? 'w' : '-';
    const x = m & (1 << shift);
    const s = m & special ? (x ? letter : letter.toUpperCase()) : x ? 'x' : '-';
    return r + w + s;
  };
  return type + triplet(6, 0o4000, 's') + triplet(3, 0o2000, 's') + triplet(0, 0o1000, 't');
}

function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
