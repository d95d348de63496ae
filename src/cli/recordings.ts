/**
 * `shellwire recordings`: the gateway's recorded sessions (who, host, as, when, length, size);
 * `shellwire replay ID`: play one in this terminal with its timing, as `asciinema play` does.
 * Both read the gateway's state dir (`--state-dir`, default $SHELLWIRE_HOME/gateway); with
 * `--via GW` they ask the gateway instead (its `gateway` kind ops `recordings`/`recording`).
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { shellwireHome } from '../auth/paths.js';
import { parseCast, playbackSchedule, type ParsedCast } from '../audit/asciicast.js';
import { readExecOutput } from '../audit/exec-output.js';
import { FileRecordingStore, type RecordingInfo } from '../audit/recording.js';
import { escapeControls } from '../client/display-text.js';
import { ShellwireError } from '../errors.js';
import { fail } from './common.js';
import { exitWhenFlushed } from './stdio.js';
import { signalExitCode } from './lifecycle.js';

interface ListFlags {
  stateDir?: string;
  json?: boolean;
  user?: string;
  via?: string;
}

interface ReplayFlags {
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
  program
    .command('recordings')
    .description('list the gateway\'s recorded sessions, newest first: id, who, host, as whom, when, length, size')
    .option('--state-dir <dir>', 'the gateway\'s state dir (default $SHELLWIRE_HOME/gateway)')
    .option('--user <name>', 'only this operator\'s recordings')
    .option('--json', 'one JSON object per recording (id, operator, host, as, startedAt, durationMs, bytes, sha256)')
    .option('--via <gateway>', 'ask the gateway ([USER@]GW[:PORT]) instead of reading a local state dir')
    .action((flags: ListFlags) => listRecordings(flags));

  program
    .command('replay')
    .description('play a recorded session in this terminal with its timing (Ctrl-C stops)')
    .argument('<id>', 'the recording (`shellwire recordings` lists them)')
    .option('--speed <n>', 'playback speed factor: 2 is twice as fast, 0 prints at once', '1')
    .option('--no-wait', 'print the whole recording at once, without its pauses')
    .option('--idle-limit <seconds>', 'shorten every pause longer than this (asciinema\'s --idle-time-limit)')
    .option('--resizes', 'note each terminal resize on stderr ([resized to 120x40])')
    .option('--state-dir <dir>', 'the gateway\'s state dir (default $SHELLWIRE_HOME/gateway)')
    .option('--via <gateway>', 'fetch the recording from the gateway ([USER@]GW[:PORT])')
    .action((id: string, flags: ReplayFlags) => replay(id, flags));
}

function storeFor(flags: { stateDir?: string }): FileRecordingStore {
  return new FileRecordingStore(flags.stateDir ?? defaultGatewayStateDir());
}

/**
 * Through the gateway: one `gateway`-kind channel, one op, its STDOUT as bytes. The client's
 * `--via` connection comes from the gateway client work (src/cli/common.ts, issue 13 item 3);
 * until it is merged this says so instead of guessing.
 */
async function fetchViaGateway(via: string, params: Record<string, unknown>): Promise<Buffer> {
  void params;
  fail(`--via ${via}: this build cannot reach a gateway yet for recordings; read the gateway's state dir with --state-dir on the gateway host.`, 2);
}

async function listRecordings(flags: ListFlags): Promise<void> {
  let infos: RecordingInfo[];
  if (flags.via !== undefined) {
    const body = await fetchViaGateway(flags.via, { op: 'recordings', ...(flags.user === undefined ? {} : { user: flags.user }) });
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
  let file: Buffer;
  let type: 'terminal' | 'exec' = 'terminal';
  if (flags.via !== undefined) {
    file = await fetchViaGateway(flags.via, { op: 'recording', id });
    if (file.subarray(0, 7).toString('latin1') === 'SWOUT1\n') type = 'exec';
  } else {
    try {
      const { info, path } = storeFor(flags).open(id);
      type = info.type ?? 'terminal';
      file = readFileSync(path);
    } catch (err) {
      fail(err instanceof ShellwireError ? err.message : `cannot read recording ${id}: ${(err as Error).message}`, 1);
    }
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  if (type === 'exec') {
    // Exec output has no timing: both streams, in their order, at once.
    let records;
    try {
      records = readExecOutput(file);
    } catch (err) {
      fail(`recording ${id}: ${(err as Error).message}`, 1);
    }
    for (const record of records) await write(record.stream === 'stdout' ? process.stdout : process.stderr, record.data);
    return;
  }
  let cast: ParsedCast;
  try {
    cast = parseCast(file.toString('utf8'));
  } catch (err) {
    fail(`recording ${id} is not asciicast v2: ${(err as Error).message}`, 1);
  }
  await play(cast, { speed: flags.wait ? speed : 0, ...(idleLimit === undefined ? {} : { idleLimit }), resizes: flags.resizes === true });
}

/** Play `cast` on stdout; Ctrl-C stops it between events (exit 130, attributes reset). */
async function play(cast: ParsedCast, options: { speed: number; idleLimit?: number; resizes: boolean }): Promise<void> {
  const steps = playbackSchedule(cast, options);
  let stop: (() => void) | null = null;
  let stopped = false;
  const onSigint = () => {
    stopped = true;
    stop?.();
  };
  process.on('SIGINT', onSigint);
  try {
    for (const step of steps) {
      if (step.delayMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, step.delayMs);
          stop = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        stop = null;
      }
      if (stopped) break;
      const [, code, data] = step.event;
      if (code === 'o') await write(process.stdout, data);
      else if (code === 'r' && options.resizes) process.stderr.write(`[resized to ${escapeControls(data)}]\n`);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (stopped) {
    // A recording stopped mid-colour would leave this terminal coloured.
    if (process.stdout.isTTY) process.stdout.write('\x1b[0m\n');
    await exitWhenFlushed(signalExitCode('SIGINT'));
  }
}

/** Write with backpressure: a slow terminal or pipe is waited for, never buffered without bound. */
function write(stream: NodeJS.WriteStream, data: string | Buffer): Promise<void> {
  if (stream.write(data)) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}
