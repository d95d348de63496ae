/**
 * `shellwire run TARGETS -- COMMAND`: one command on many hosts (library: `runOn`).
 * Output grouped by identical result (default), host-prefixed lines (`--stream`) or JSON
 * Lines (`--json`); a summary of failures on stderr always; exit 0 only when every host
 * succeeded. Ctrl-C once lists the hosts still running, twice cancels them.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import type { Command } from 'commander';
import { loadInventory } from '../fleet/inventory.js';
import { resolveTargets } from '../fleet/targets.js';
import { foldNames } from '../fleet/ranges.js';
import { runOn, DEFAULT_FANOUT, type FleetRun } from '../fleet/run-on.js';
import type { FleetSummary } from '../fleet/results.js';
import { formatGrouped, formatSummary, prefixLine, type Style } from '../fleet/format.js';
import { JsonLines } from '../fleet/json-lines.js';
import { HostLines } from '../fleet/line-splitter.js';
import { truncateColumns } from '../fleet/columns.js';
import { StatusLine } from '../fleet/status-line.js';
import { fail } from './common.js';
import { parseDurationFlag } from './common.js';
import { ShellwireError } from '../errors.js';
import { decodeOsBytes } from '../protocol/os-bytes.js';
import { exitWhenFlushed } from './stdio.js';
import { CLOSE_GRACE_MS, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';

/** Above this many hosts a TTY user is asked to confirm (unless --yes). */
export const CONFIRM_ABOVE_HOSTS = 50;
/** Exit status when the run was canceled with Ctrl-C (as a shell reports SIGINT). */
export const EXIT_CANCELED = 130;

interface RunFlags {
  inventory?: string;
  fanout: string;
  timeout?: string;
  connectTimeout: string;
  connectRate: string;
  keepalive: string;
  stream?: boolean;
  json?: boolean;
  failFast?: boolean;
  maxFailures?: string;
  batch?: string;
  canary?: boolean;
  yes?: boolean;
  tokenFile?: string;
  acceptNewHost?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run COMMAND on every host TARGETS names (@group, label=value, names, ranges, !exclusions)')
    .usage('[options] TARGETS... -- COMMAND...')
    .argument('<words...>', 'target expressions, then -- and the command')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--fanout <n>', 'hosts connecting or running at once', String(DEFAULT_FANOUT))
    .option('--timeout <duration>', 'per-host command timeout (seconds, or 500ms, 2m, 1h): the remote process group is killed')
    .option('--connect-timeout <duration>', 'give up on a host that does not connect within this time (seconds, or 500ms, 1m)', '10')
    .option('--connect-rate <n>', 'at most N new connections per second (0: no limit)', '2000')
    .option('--keepalive <duration>', 'ping interval (seconds, or 500ms); a host silent for 3 intervals is reported lost', '5')
    .option('--stream', 'print lines as they arrive, each prefixed with its host')
    .option('--json', 'JSON Lines on stdout: output chunks, one result per host, a summary')
    .option('--fail-fast', 'start no more hosts after the first failure')
    .option('--max-failures <n>', 'start no more hosts after N failures')
    .option('--batch <n>', 'rolling batches of N hosts; a batch starts when the previous one finished')
    .option('--canary', 'run the first host alone first; stop if it fails')
    .option('-y, --yes', `do not ask for confirmation when targeting more than ${CONFIRM_ABOVE_HOSTS} hosts`)
    .option('--token-file <file>', 'token for hosts whose inventory entry has no token-file (else $SHELLWIRE_TOKEN)')
    .option('--accept-new-host', 'trust and remember hosts not yet in known_hosts (changed keys are still refused)')
    .action(async (words: string[], flags: RunFlags) => runCommand(words, flags));
}

function splitWords(words: string[]): { targets: string[]; command: string } {
  // Commander drops "--"; what follows it in argv is the command.
  const dash = process.argv.indexOf('--');
  const after = dash >= 0 ? process.argv.length - dash - 1 : 0;
  if (after > 0) return { targets: words.slice(0, words.length - after), command: argvTail(after).join(' ') };
  return { targets: words.slice(0, 1), command: words.slice(1).join(' ') };
}

/**
 * The last `count` words of our argv as OS byte strings (surrogateescape, os-bytes.ts).
 * Node decodes argv as UTF-8 and turns other bytes into U+FFFD, so a command naming
 * `caf\xe9.txt` would name another file; /proc/self/cmdline has the bytes. Where it cannot
 * be read or does not match argv, argv is used as it is.
 */
function argvTail(count: number): string[] {
  const fromNode = process.argv.slice(process.argv.length - count);
  let raw: Buffer[];
  try {
    const cmdline = readFileSync('/proc/self/cmdline');
    raw = splitNul(cmdline.subarray(0, cmdline.at(-1) === 0 ? -1 : undefined));
  } catch {
    return fromNode;
  }
  if (raw.length < count) return fromNode;
  const words = raw.slice(raw.length - count);
  // Node's decoding of each word must match, or these are not the same words.
  if (words.some((w, i) => w.toString('utf8') !== fromNode[i])) return fromNode;
  return words.map((w) => decodeOsBytes(w));
}

function splitNul(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let nul = bytes.indexOf(0); nul >= 0; nul = bytes.indexOf(0, start)) {
    out.push(bytes.subarray(start, nul));
    start = nul + 1;
  }
  out.push(bytes.subarray(start));
  return out;
}

function number(text: string | undefined, flag: string, { integer = false, min = 0 } = {}): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) fail(`${flag} takes ${integer ? 'a whole number' : 'a number'} ≥ ${min}, got "${text}".`, 2);
  return n;
}

async function runCommand(words: string[], flags: RunFlags): Promise<void> {
  const { targets, command } = splitWords(words);
  if (targets.length === 0 || command.trim() === '') fail('usage: shellwire run [options] TARGETS... -- COMMAND...', 2);
  if (flags.stream && flags.json) fail('--stream and --json do not go together.', 2);
  let hosts;
  try {
    hosts = resolveTargets(targets, loadInventory(flags.inventory));
  } catch (err) {
    fail(err instanceof ShellwireError ? err.message : String(err), 2);
  }
  if (hosts.length === 0) fail(`"${targets.join(' ')}" matches no hosts.`, 2);
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  if (hosts.length > CONFIRM_ABOVE_HOSTS && interactive && !flags.yes) {
    const ok = await confirm(`Run "${command}" on ${hosts.length} hosts (${abbreviate(foldNames(hosts.map((h) => h.name)))})? [y/N] `);
    if (!ok) fail('not confirmed; nothing was run.', 1);
  }
  const timeout = flags.timeout === undefined ? undefined : parseDurationFlag(flags.timeout, '--timeout', { min: 1 }) / 1000;
  const style: Style = { color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR };
  const errStyle: Style = { color: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR };
  const run = runOn(hosts, command, {
    fanout: number(flags.fanout, '--fanout', { integer: true, min: 1 })!,
    connectTimeoutMs: parseDurationFlag(flags.connectTimeout, '--connect-timeout', { min: 1 }),
    connectRate: number(flags.connectRate, '--connect-rate')!,
    ...(timeout !== undefined ? { timeoutMs: Math.round(timeout * 1000) } : {}),
    ...(flags.failFast ? { failFast: true } : {}),
    ...(flags.maxFailures !== undefined ? { maxFailures: number(flags.maxFailures, '--max-failures', { integer: true, min: 1 })! } : {}),
    ...(flags.batch !== undefined ? { batchSize: number(flags.batch, '--batch', { integer: true, min: 1 })! } : {}),
    ...(flags.canary ? { canary: true } : {}),
    outputEvents: Boolean(flags.stream || flags.json),
    // Grouped output keeps results; streamed output is printed, not kept.
    maxOutput: flags.stream ? 0 : 1024 * 1024,
    connect: {
      hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : 'strict',
      keepaliveMs: parseDurationFlag(flags.keepalive, '--keepalive', { min: 50 }),
      ...(flags.tokenFile ? { tokenFile: flags.tokenFile } : {}),
    },
  });
  const status = process.stderr.isTTY && !flags.json ? new StatusLine(run, errStyle) : null;
  installInterrupts(run, status);
  let summary: FleetSummary | null = null;
  try {
    if (flags.json) summary = await printJson(run);
    else if (flags.stream) summary = await printStream(run, hosts.map((h) => h.name), style, status);
    else {
      status?.start();
      summary = await run.result();
      status?.stop();
      await write(process.stdout, formatGrouped(summary, style));
    }
  } finally {
    status?.stop();
  }
  process.stderr.write(formatSummary(summary, errStyle));
  await exitWhenFlushed(summary.stoppedBy === 'canceled' ? EXIT_CANCELED : summary.success ? 0 : 1);
}

async function printJson(run: FleetRun): Promise<FleetSummary> {
  const json = new JsonLines();
  let summary: FleetSummary | null = null;
  for await (const event of run) {
    if (event.type === 'summary') summary = event.summary;
    const records = json.records(event);
    if (records !== '') await write(process.stdout, records);
  }
  return summary!;
}

async function printStream(run: FleetRun, names: string[], style: Style, status: StatusLine | null): Promise<FleetSummary> {
  const lines = new HostLines();
  const width = Math.min(40, Math.max(...names.map((n) => n.length)));
  let summary: FleetSummary | null = null;
  status?.start();
  for await (const event of run) {
    const out: Buffer[] = [];
    if (event.type === 'output') {
      for (const line of lines.push(event.host, event.stream, event.data)) out.push(prefixLine(event.host, event.stream, line, width, style));
    } else if (event.type === 'result') {
      for (const l of lines.end(event.host)) out.push(prefixLine(l.host, l.stream, l.line, width, style));
      const r = event.result;
      if (r.status !== 'ok' && r.status !== 'skipped') {
        const what = r.status === 'failed' ? (r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`) : `${r.status}: ${r.error?.message ?? ''}`;
        out.push(prefixLine(event.host, 'stderr', { bytes: Buffer.from(`[${what}]`), end: 'newline' }, width, style));
      }
    } else if (event.type === 'summary') {
      for (const l of lines.endAll()) out.push(prefixLine(l.host, l.stream, l.line, width, style));
      summary = event.summary;
    }
    if (out.length > 0) {
      status?.clear();
      await write(process.stdout, Buffer.concat(out));
      status?.render();
    }
  }
  status?.stop();
  return summary!;
}

/** Write, honouring backpressure (a slow terminal pauses the hosts, not our memory). */
async function write(stream: NodeJS.WriteStream, data: string | Buffer): Promise<void> {
  if (!stream.write(data)) await once(stream, 'drain');
}

function installInterrupts(run: FleetRun, status: StatusLine | null): void {
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    status?.clear();
    if (interrupts === 1) {
      const running = run.running();
      const list = running.slice(0, 20).map((r) => `${r.host} (${(r.elapsedMs / 1000).toFixed(1)} s${r.phase === 'connecting' ? ', connecting' : ''})`);
      const more = running.length > 20 ? `, and ${running.length - 20} more` : '';
      const { ok, failed, queued } = run.counts();
      process.stderr.write(
        `\nshellwire: ${running.length} host(s) still running: ${list.join(', ') || 'none'}${more}. ` +
          `${ok} done, ${failed} failed, ${queued} queued. Press Ctrl-C again to cancel them all.\n`,
      );
    } else {
      if (interrupts === 2) process.stderr.write('shellwire: canceling: remote commands are being killed…\n');
      terminate('SIGINT');
    }
    status?.render();
  };
  process.on('SIGINT', onInterrupt);
  // SIGTERM, SIGHUP, the second Ctrl-C: cancel; a host that does not confirm within the grace
  // is dropped, so the summary (printed by runCommand, which then exits) comes within the
  // lifecycle's bound even when a daemon is frozen.
  exitOnTerminationSignals();
  onTermination(() => {
    run.cancel(CLOSE_GRACE_MS);
    return new Promise<never>(() => {});
  });
}

function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // On a terminal readline takes Ctrl-C as a key: without this it would only pause.
  rl.on('SIGINT', () => terminate('SIGINT'));
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      resolve(/^y(es)?$/i.test(answer.trim()));
    });
  });
}

function abbreviate(text: string, max = 80): string {
  return truncateColumns(text, max);
}
