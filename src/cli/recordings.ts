/**
 * `shellwire recordings`: the gateway's recorded sessions (who, host, as, when, length, size);
 * `shellwire replay ID`: play one in this terminal with its timing, as `asciinema play` does.
 * Both read the gateway's state dir (`--state-dir`, default $SHELLWIRE_HOME/gateway); with
 * `--via GW` they ask the gateway instead (its `gateway` kind ops `recordings`/`recording`).
 */
import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { shellwireHome } from '../auth/paths.js';
import { parseCastEvent, parseCastHeader, PlaybackClock } from '../audit/asciicast.js';
import { EXEC_OUTPUT_MAGIC, ExecOutputReader } from '../audit/exec-output.js';
import { FileRecordingStore, type RecordingInfo } from '../audit/recording.js';
import { escapeControls } from '../client/display-text.js';
import { ShellwireError } from '../errors.js';
import { connectFromFlags, fail } from './common.js';
import { exitWhenFlushed, write } from './stdio.js';
import { signalExitCode } from './lifecycle.js';

interface ListFlags extends GatewayLoginFlags {
  stateDir?: string;
  json?: boolean;
  user?: string;
  via?: string;
}

interface ReplayFlags extends GatewayLoginFlags {
  stateDir?: string;
  speed: string;
  wait: boolean;
  idleLimit?: string;
  resizes?: boolean;
  via?: string;
}

/** Where a gateway keeps its state when `--state-dir` is not given. */
export function defaultGatewayStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(shellwireHome(env), 'gateway');
}

export function registerRecordings(program: Command): void {
  const recordings = program
    .command('recordings')
    .description('list the gateway\'s recorded sessions, newest first: id, who, host, as whom, when, length, size')
    .option('--state-dir <dir>', 'the gateway\'s state dir (default $SHELLWIRE_HOME/gateway)')
    .option('--user <name>', 'only this operator\'s recordings')
    .option('--json', 'one JSON object per recording (id, operator, host, as, startedAt, durationMs, bytes, sha256)')
    .option('-J, --via <gateway>', 'ask the gateway ([USER@]GW[:PORT]) instead of reading a local state dir')
    .action((flags: ListFlags) => listRecordings(flags));
  addGatewayLoginFlags(recordings);

  const replayCommand = program
    .command('replay')
    .description('play a recorded session in this terminal with its timing (Ctrl-C stops)')
    .argument('<id>', 'the recording (`shellwire recordings` lists them)')
    .option('--speed <n>', 'playback speed factor: 2 is twice as fast, 0 prints at once', '1')
    .option('--no-wait', 'print the whole recording at once, without its pauses')
    .option('--idle-limit <seconds>', 'shorten every pause longer than this (asciinema\'s --idle-time-limit)')
    .option('--resizes', 'note each terminal resize on stderr ([resized to 120x40])')
    .option('--state-dir <dir>', 'the gateway\'s state dir (default $SHELLWIRE_HOME/gateway)')
    .option('-J, --via <gateway>', 'fetch the recording from the gateway ([USER@]GW[:PORT])')
    .action((id: string, flags: ReplayFlags) => replay(id, flags));
  addGatewayLoginFlags(replayCommand);
}

function storeFor(flags: { stateDir?: string }): FileRecordingStore {
  return new FileRecordingStore(flags.stateDir ?? defaultGatewayStateDir());
}

/** The login flags `--via` takes (a subset of the connect flags: `--user` here filters recordings). */
interface GatewayLoginFlags {
  via?: string;
  identity?: string;
  password?: boolean;
  tokenFile?: string;
  acceptNewHost?: boolean;
  connectTimeout?: string;
}

function addGatewayLoginFlags(command: Command): Command {
  return command
    .option('-i, --identity <keyfile>', 'with --via: your OpenSSH private key for the gateway (default: ssh-agent, then ~/.ssh keys)')
    .option('--password', 'with --via: log in to the gateway with a password')
    .option('--token-file <file>', 'with --via: read the gateway access token from FILE')
    .option('--accept-new-host', 'with --via: trust and remember a gateway not yet in known_hosts')
    .option('--connect-timeout <duration>', 'with --via: give up connecting after this long (seconds, or 500ms, 1m)', '10');
}

/**
 * Through the gateway: log in there as an operator, ask one `gateway`-kind op, and return
 * its STDOUT (the JSON list, or the recording's bytes). Errors are the connection's (exit 255).
 */
async function fetchViaGateway(flags: GatewayLoginFlags & { via: string }, params: { op: string } & Record<string, unknown>): Promise<Buffer> {
  const conn = await connectFromFlags(flags.via, flags, { gateway: true });
  try {
    return await conn.gatewayRequest(params);
  } finally {
    await conn.close();
  }
}

async function listRecordings(flags: ListFlags): Promise<void> {
  let infos: RecordingInfo[];
  if (flags.via !== undefined) {
    const body = await fetchViaGateway({ ...flags, via: flags.via }, { op: 'recordings', ...(flags.user === undefined ? {} : { user: flags.user }) });
    infos = JSON.parse(body.toString('utf8')) as RecordingInfo[];
  } else {
    infos = storeFor(flags).list(flags.user === undefined ? {} : { operator: flags.user });
  }
  if (flags.json) {
    process.stdout.write(infos.map((info) => `${JSON.stringify(info)}\n`).join(''));
    return;
  }
  if (infos.length === 0) {
    process.stderr.write('no recordings\n');
    return;
  }
  const rows = [['ID', 'WHO', 'HOST', 'AS', 'WHEN', 'LENGTH', 'SIZE'], ...infos.map((info) => [
    info.id, info.operator, info.host, info.as, info.startedAt.replace(/\.\d{3}Z$/, 'Z'),
    info.durationMs === null ? (info.sha256 === null ? 'recording' : '?') : formatLength(info.durationMs),
    `${formatSize(info.bytes)}${info.error !== undefined ? ' (cut short)' : ''}`,
  ])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(rows.map((r) => escapeControls(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`)).join(''));
}

/** 75000 → "1m15s", 3723000 → "1h02m03s": the length column. */
export function formatLength(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(sec).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  const units = ['K', 'M', 'G', 'T'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}${units[unit]}`;
}

async function replay(id: string, flags: ReplayFlags): Promise<void> {
  const speed = Number(flags.speed);
  if (flags.speed.trim() === '' || !Number.isFinite(speed) || speed < 0) fail(`--speed takes a number ≥ 0 (2 is twice as fast, 0 prints at once), got "${flags.speed}".`, 2);
  let idleLimit: number | undefined;
  if (flags.idleLimit !== undefined) {
    idleLimit = Number(flags.idleLimit);
    if (flags.idleLimit.trim() === '' || !(idleLimit > 0)) fail(`--idle-limit takes a number of seconds above zero, got "${flags.idleLimit}".`, 2);
  }
  // The file is streamed, never read whole: a day-long session can be large.
  let source: AsyncIterable<Buffer> | Iterable<Buffer>;
  let type: 'terminal' | 'exec';
  if (flags.via !== undefined) {
    const file = await fetchViaGateway({ ...flags, via: flags.via }, { op: 'recording', id });
    type = file.subarray(0, EXEC_OUTPUT_MAGIC.length).equals(EXEC_OUTPUT_MAGIC) ? 'exec' : 'terminal';
    source = [file];
  } else {
    try {
      const { info, path } = storeFor(flags).open(id);
      type = info.type ?? 'terminal';
      const stream = createReadStream(path);
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
      source = stream;
    } catch (err) {
      fail(err instanceof ShellwireError ? err.message : `cannot read recording ${id}: ${(err as Error).message}`, 1);
    }
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    if (type === 'exec') await playExecOutput(source);
    else await play(source, { speed: flags.wait ? speed : 0, ...(idleLimit === undefined ? {} : { idleLimit }), resizes: flags.resizes === true });
  } catch (err) {
    if (err instanceof SyntaxError) fail(`recording ${id} is not ${type === 'exec' ? 'an exec output recording' : 'asciicast v2'}: ${err.message}`, 1);
    throw err;
  }
}

/** Exec output has no timing: both streams as their exact bytes, in their order, at once. */
async function playExecOutput(source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
  const reader = new ExecOutputReader();
  for await (const chunk of source) {
    for (const record of reader.push(chunk)) await write(record.stream === 'stdout' ? process.stdout : process.stderr, record.data);
  }
  reader.end();
}

/** The lines of a UTF-8 text stream, one chunk at a time (the last line may lack its newline). */
async function* textLines(source: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let rest = '';
  for await (const chunk of source) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
    rest = lines.pop()!;
    yield* lines;
  }
  rest += decoder.decode();
  if (rest !== '') yield rest;
}

/** Play a .cast on stdout with its timing; Ctrl-C stops it between events (exit 130, attributes reset). */
async function play(source: AsyncIterable<Buffer> | Iterable<Buffer>, options: { speed: number; idleLimit?: number; resizes: boolean }): Promise<void> {
  let stop: (() => void) | null = null;
  let stopped = false;
  const onSigint = () => {
    stopped = true;
    stop?.();
  };
  process.on('SIGINT', onSigint);
  try {
    let clock: PlaybackClock | null = null;
    let lineNumber = 0;
    for await (const line of textLines(source)) {
      lineNumber++;
      if (clock === null) {
        clock = new PlaybackClock(parseCastHeader(line), options);
        continue;
      }
      const event = parseCastEvent(line, lineNumber);
      if (event === null) continue;
      const delayMs = clock.delayBefore(event[0]);
      if (delayMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          stop = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        stop = null;
      }
      if (stopped) break;
      const [, code, data] = event;
      if (code === 'o') await write(process.stdout, data);
      else if (code === 'r' && options.resizes) process.stderr.write(`[resized to ${escapeControls(data)}]\n`);
    }
    if (clock === null && !stopped) throw new SyntaxError('line 1: the file is empty');
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (stopped) {
    // A recording stopped mid-colour would leave this terminal coloured.
    if (process.stdout.isTTY) process.stdout.write('\x1b[0m\n');
    await exitWhenFlushed(signalExitCode('SIGINT'));
  }
}

