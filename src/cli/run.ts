/**
 * `shellwire run TARGETS -- COMMAND`: one command on many hosts (library: `runOn`).
 * Output grouped by identical result (default), host-prefixed lines (`--stream`) or JSON
 * Lines (`--json`); a summary of failures on stderr always; exit 0 only when every host
 * succeeded. Ctrl-C once lists the hosts still running, twice cancels them.
 */
import type { Command } from 'commander';
import { askYesNo } from './prompt.js';
import { emptyInventory, loadInventory, type FleetHost, type Inventory } from '../fleet/inventory.js';
import { isAgentName } from '../protocol/nats-subjects.js';
import { askGateway } from './ask-gateway.js';
import { ConnectionPool } from '../fleet/pool.js';
import type { ConnectOptions } from '../client/connect.js';
import { NoHostsMatchedError, resolveTargets } from '../fleet/targets.js';
import { foldNames } from '../fleet/ranges.js';
import { runOn, DEFAULT_FANOUT, type FleetRun } from '../fleet/run-on.js';
import type { BroadcastRun } from '../fleet/nats-run.js';
import type { FleetSummary } from '../fleet/results.js';
import { formatGrouped, formatSummary, prefixLine, BROADCAST_TRUNCATED_NOTE, type Style } from '../fleet/format.js';
import { escapeTerminalText } from '../terminal-text.js';
import { printJson } from './fleet-output.js';
import { HostLines } from '../fleet/line-splitter.js';
import { truncateColumns } from '../fleet/columns.js';
import { StatusLine } from '../fleet/status-line.js';
import { askPassphrase, debugLog, fail, hostOverrides, increase, natsPinFlags, refuseDirectOnlyFlags, reportHostAdded, setVerbosity, viaOption, warn } from './common.js';
import { describeHost, withOverrides } from '../fleet/resolve-host.js';
import { ErrorCode, ShellwireError } from '../errors.js';
import { parseDurationFlag } from './common.js';
import { beforeEarlyExit, exitWhenFlushed, write } from './stdio.js';
import { CLOSE_GRACE_MS, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';

/** What `report` prints: a `runOn` run or a NATS broadcast (the same events and summary). */
export type PrintableRun = FleetRun | BroadcastRun;

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
  identity?: string;
  user?: string;
  port?: string;
  verbose?: number;
  allowEmpty?: boolean;
  via?: string;
  tunnel?: boolean;
  natsCreds?: string;
  natsPrefix?: string;
  wait?: string;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run COMMAND on every host TARGETS names (@group, label=value, names, ranges, !exclusions)')
    .usage('[options] TARGETS... [--] COMMAND...')
    .argument('<targets>', 'target expressions: @group, label=value, names, ranges, !exclusions, a&b intersections')
    .argument('[command...]', 'the command (after --, or every word after a single target word)')
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
    .option('-p, --port <port>', 'connect to this port on every host (wins over the inventory)')
    .option('-l, --user <name>', 'log in as this user on every host (wins over the inventory)')
    .option('-i, --identity <keyfile>', 'OpenSSH private key (Ed25519, ECDSA or RSA) for every host (wins over the inventory; default: ssh-agent, then id_ed25519, id_ecdsa, id_rsa)')
    .option('--token-file <file>', 'token for every host (wins over the inventory; else $SHELLWIRE_TOKEN)')
    .option('--accept-new-host', 'trust and remember hosts not yet in known_hosts (changed keys are still refused)')
    .option('--allow-empty', 'targets that match no host run nothing and exit 0 (default: an error, exit 2)')
    .option('-v, --verbose', 'say what is tried: how targets expanded, each host\'s address, host key check, credentials (-vv: more)', increase, 0)
    .addOption(viaOption('every host through this gateway (shellwire gateway), one connection to it for all: USER@ names you there, default port 50008; "none": directly, whatever the inventory\'s via: says'))
    .option('--tunnel', 'with --via nats://: run over a tunnel to each agent (TLS + login, as exec) instead of one signed broadcast')
    .option('--nats-creds <file>', 'NATS credentials file (.creds or nkey seed) for --via nats://')
    .option('--nats-prefix <prefix>', 'NATS subject prefix of the fleet (default shellwire)')
    .option('--wait <duration>', 'with --via nats:// and patterns: how long to collect agents answering discovery (default: until 250 ms pass without a new one, at most 3 s)')
    .passThroughOptions()
    .action(async function (this: Command, first: string, rest: string[]) {
      const { targets, command } = splitWords(this, first, rest);
      await runCommand(targets, command, this.opts<RunFlags>());
    });
}

/**
 * `TARGETS… [--] COMMAND…`, as ssh takes `HOST COMMAND`: our options may come before or
 * between the targets (see commandAfterHost); with one target word the command starts at
 * the next word that is not our option, `--` or not; several target words need `--` after
 * them, which is how we know where they end.
 */
function splitWords(command: Command, first: string, rest: string[]): { targets: string[]; command: string[] } {
  const targets = [first];
  let words = rest;
  for (;;) {
    const { operands, unknown } = command.parseOptions(words);
    if (unknown.length > 0) {
      fail(`unknown option '${unknown[0]}' after the targets. Options go before the targets; a command that starts with "-" goes after "--" (shellwire run TARGETS -- ${unknown.join(' ')}).`, 2);
    }
    const consumed = words.length - operands.length;
    if (consumed > 0 && words[consumed - 1] === '--') return { targets, command: operands };
    if (operands.length === 0 || !operands.includes('--')) return { targets, command: operands };
    targets.push(operands[0]!);
    words = operands.slice(1);
  }
}

function number(text: string | undefined, flag: string, { integer = false, min = 0 } = {}): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) fail(`${flag} takes ${integer ? 'a whole number' : 'a number'} ≥ ${min}, got "${text}".`, 2);
  return n;
}

async function runCommand(targets: string[], words: string[], flags: RunFlags): Promise<void> {
  setVerbosity(flags.verbose);
  const command = words.join(' ');
  if (command.trim() === '') fail('usage: shellwire run [options] TARGETS... [--] COMMAND...', 2);
  if (flags.stream && flags.json) fail('--stream and --json do not go together.', 2);
  const style: Style = { color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR };
  const errStyle: Style = { color: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR };
  const natsVia = flags.via !== undefined && /^(nats|tls):\/\//i.test(flags.via.trim()) ? flags.via : undefined;
  if (natsVia !== undefined && !flags.tunnel) {
    // One signed broadcast (docs/nats.md, "Broadcast"); loaded only here, so other runs never load NATS.
    const { runBroadcastCommand } = await import('./run-broadcast.js');
    await runBroadcastCommand(targets, command, { ...flags, via: natsVia }, (run, names, close) => report(run, names, flags, style, errStyle, close));
  }
  if (flags.tunnel && natsVia === undefined) fail('--tunnel goes with --via nats://…: it runs over NATS tunnels instead of a broadcast.', 2);
  // --via nats:// --tunnel: each agent through its own tunnel on one NATS connection, not a gateway.
  const overrides = hostOverrides(natsVia !== undefined ? { ...flags, via: undefined } : flags);
  if (typeof overrides.via === 'string') refuseDirectOnlyFlags(flags, overrides.via);
  const connectTimeoutMs = parseDurationFlag(flags.connectTimeout, '--connect-timeout', { min: 1 });
  const connect: ConnectOptions = {
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : 'strict',
    onHostKeyAdded: reportHostAdded,
    // Asked once per key file for the whole fan-out (credentials.ts shares the answer).
    ...(process.stdin.isTTY ? { askPassphrase } : {}),
    keepaliveMs: parseDurationFlag(flags.keepalive, '--keepalive', { min: 50 }),
    ...(flags.verbose ? { debug: (message: string) => debugLog(1, message) } : {}),
  };
  const nats = natsVia !== undefined ? await (await import('./run-broadcast.js')).openNats({ ...flags, via: natsVia }) : null;
  // A reader gone (`| head`) exits at once: the agents are told first (tunnel RSTs), as TCP closes would.
  if (nats) beforeEarlyExit(async () => (await import('../transport/nats-tunnel.js')).resetAllTunnels());
  if (nats) Object.assign(connect, { via: natsVia, natsConnection: nats.nc, ...(flags.natsPrefix ? { natsPrefix: flags.natsPrefix } : {}) });
  const pool = new ConnectionPool({ connect, connectTimeoutMs });
  // --via GW: targets name the gateway's hosts (what it lets us reach), asked for on the one
  // connection every host's channel then shares.
  const gatewayHosts = typeof overrides.via === 'string' ? await askGateway(pool, withOverrides({ name: overrides.via, address: '', port: 0, labels: {}, groups: [] }, overrides)) : null;
  let hosts;
  try {
    // Plain agent names go straight to their tunnels, as a broadcast puts them straight into its
    // request: one that does not answer is that host's `unreachable`, not a usage error for the run.
    const plainNames = nats !== null ? agentNamesOnly(targets) : null;
    const inventory = plainNames !== null ? natsNameInventory(plainNames, natsVia!) : nats ? await nats.inventory() : gatewayHosts ?? loadInventory(flags.inventory);
    debugLog(2, inventory.file ? `read inventory ${inventory.file}: ${inventory.hosts.length} host(s)` : `no inventory at ${inventory.missing}`);
    hosts = resolveTargets(targets, inventory, { allowEmpty: flags.allowEmpty === true }).map((h) => withOverrides(h, overrides));
  } catch (err) {
    const hint = err instanceof NoHostsMatchedError ? ' (`shellwire hosts TARGETS` shows what targets expand to; --allow-empty accepts an empty selection)' : '';
    await pool.close();
    fail(err instanceof ShellwireError ? `${err.message}${hint}` : String(err), 2);
  }
  debugLog(1, `"${targets.join(' ')}" → ${hosts.length} host(s): ${abbreviate(foldNames(hosts.map((h) => h.name)), 200)}`);
  for (const h of hosts) debugLog(2, describeHost({ host: h, entry: h.source !== undefined ? h : null }));
  // Through a gateway a host is its name there: -p/-l from the inventory's direct hosts do not apply.
  // Through NATS a host is an agent reached by its own tunnel: -l and -i apply to it as to a direct host.
  if (overrides.via === undefined) for (const h of hosts) if (h.via !== undefined && !/^(nats|tls):\/\//i.test(h.via)) refuseDirectOnlyFlags(flags, h.via);
  if (hosts.length === 0) {
    // --allow-empty: nothing to do is success, said once on stderr.
    warn(`"${targets.join(' ')}" matches no host; nothing was run.`);
    if (flags.json) process.stdout.write(`${JSON.stringify({ type: 'summary', command, total: 0, ok: 0, failed: 0, unreachable: 0, canceled: 0, skipped: 0, durationMs: 0, success: true, stoppedBy: null })}\n`);
    await pool.close();
    await exitWhenFlushed(0);
  }
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  if (hosts.length > CONFIRM_ABOVE_HOSTS && interactive && !flags.yes) {
    const ok = await confirm(`Run "${command}" on ${hosts.length} hosts (${abbreviate(foldNames(hosts.map((h) => h.name)))})? [y/N] `);
    if (!ok) fail('not confirmed; nothing was run.', 1);
  }
  const timeout = flags.timeout === undefined ? undefined : parseDurationFlag(flags.timeout, '--timeout', { min: 1 }) / 1000;
  const run = runOn(hosts, command, {
    fanout: number(flags.fanout, '--fanout', { integer: true, min: 1 })!,
    connectTimeoutMs,
    pool,
    connectRate: number(flags.connectRate, '--connect-rate')!,
    ...(timeout !== undefined ? { timeoutMs: Math.round(timeout * 1000) } : {}),
    ...(flags.failFast ? { failFast: true } : {}),
    ...(flags.maxFailures !== undefined ? { maxFailures: number(flags.maxFailures, '--max-failures', { integer: true, min: 1 })! } : {}),
    ...(flags.batch !== undefined ? { batchSize: number(flags.batch, '--batch', { integer: true, min: 1 })! } : {}),
    ...(flags.canary ? { canary: true } : {}),
    outputEvents: Boolean(flags.stream || flags.json),
    // Grouped output keeps results; streamed output is printed, not kept.
    maxBuffer: flags.stream ? 0 : 1024 * 1024,
    connect,
  });
  await report(run, hosts.map((h) => h.name), flags, style, errStyle, async () => {
    await pool.close();
    await nats?.close();
  });
}

/** Print a run (direct, through a gateway, or a NATS broadcast) and exit with its status. */
export async function report(run: PrintableRun, names: string[], flags: { json?: boolean; stream?: boolean; via?: string; natsCreds?: string; natsPrefix?: string; tunnel?: boolean }, style: Style, errStyle: Style, close: () => Promise<void>): Promise<never> {
  const broadcast = flags.via !== undefined && /^(nats|tls):\/\//i.test(flags.via.trim()) && !flags.tunnel;
  const truncatedNote = broadcast ? BROADCAST_TRUNCATED_NOTE : '';
  const status = process.stderr.isTTY && !flags.json ? new StatusLine(run, errStyle) : null;
  installInterrupts(run, status);
  let summary: FleetSummary | null = null;
  try {
    if (flags.json) summary = await printJson(run);
    else if (flags.stream) summary = await printStream(run, names, style, status, truncatedNote);
    else {
      status?.start();
      summary = await run.result();
      status?.stop();
      await write(process.stdout, formatGrouped(summary, style, { truncatedNote }));
    }
  } finally {
    status?.stop();
  }
  await close();
  process.stderr.write(formatSummary(summary, errStyle, { countTruncated: broadcast || !flags.stream }));
  const unknownKeys = summary.results.filter((r) => r.error?.code === ErrorCode.HOST_KEY_UNKNOWN).map((r) => r.host);
  if (unknownKeys.length > 0) {
    // Agents are fetched through NATS (`known-hosts add --via nats://… NAME…`): a command that works when pasted.
    const natsVia = flags.via !== undefined && /^(nats|tls):\/\//i.test(flags.via.trim()) ? flags.via : undefined;
    const pinArgs = natsVia === undefined ? 'TARGETS' : `${natsPinFlags({ ...flags, via: natsVia })} ${unknownKeys.length <= 20 ? unknownKeys.join(' ') : 'NAMES'}`;
    // The library names its option; the operator needs the command (as cliHint does for one host).
    process.stderr.write(
      `${unknownKeys.length} host${unknownKeys.length === 1 ? ' is' : 's are'} not in known_hosts (${abbreviate(foldNames(unknownKeys))}). ` +
        `Check their fingerprints (shellwire known-hosts scan ${pinArgs}), then pin them (shellwire known-hosts add ${pinArgs}) or run again with --accept-new-host.\n`,
    );
  }
  return exitWhenFlushed(summary.stoppedBy === 'canceled' ? EXIT_CANCELED : summary.success ? 0 : 1);
}

async function printStream(run: PrintableRun, names: string[], style: Style, status: StatusLine | null, truncatedNote: string): Promise<FleetSummary> {
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
      // A broadcast's result cut short (it keeps 256 KiB per stream) says so after its output, never
      // silently. (A direct run streams everything; its results keep nothing, all "truncated".)
      if (r.truncated && truncatedNote !== '') out.push(prefixLine(event.host, 'stderr', { bytes: Buffer.from(`[output truncated${truncatedNote}]`), end: 'newline' }, width, style));
      if (r.status !== 'ok' && r.status !== 'skipped') {
        const what = r.status === 'failed' ? (r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`) : `${r.status}: ${r.error?.message ?? ''}`;
        out.push(prefixLine(event.host, 'stderr', { bytes: Buffer.from(`[${escapeTerminalText(what, { oneLine: true })}]`), end: 'newline' }, width, style));
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

function installInterrupts(run: PrintableRun, status: StatusLine | null): void {
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
  // A piped answer is one line; Ctrl-D or the end of input means no.
  return askYesNo(question, { short: true, onInterrupt: () => terminate('SIGINT') });
}

function abbreviate(text: string, max = 80): string {
  return truncateColumns(text, max);
}

/** The agent names of `targets` if every term is a plain name (`web01`, `web01,web02`); else null (patterns need discovery). */
function agentNamesOnly(targets: string[]): string[] | null {
  const words = targets.flatMap((t) => t.split(','));
  return words.length > 0 && words.every((w) => isAgentName(w)) ? [...new Set(words)] : null;
}

/** Agents named outright, as an inventory whose hosts go through NATS `via` (no discovery asked). */
function natsNameInventory(names: string[], via: string): Inventory {
  const inventory = emptyInventory();
  inventory.file = `${via} (agents named on the command line)`;
  for (const name of names) {
    const host: FleetHost = { name, address: name, port: 0, labels: {}, groups: [], via };
    inventory.hosts.push(host);
    inventory.byName.set(name, host);
  }
  return inventory;
}
