/**
 * `shellwire put [-r] LOCAL... TARGETS:REMOTE` and `shellwire get [-r] TARGETS:REMOTE... LOCALDIR`
 * when the part before the colon is a target expression (`@web`, `web[01-05]`,
 * `env=staging,!web03`): the same copy as for one host (SHA-256 verified, renamed into place,
 * resumable), on every host at once with run's fan-out (src/fleet/run-on.ts `fanOut`), its
 * status line, a grouped report and run's exit status. get writes each host's files under
 * `LOCALDIR/HOST/`.
 *
 * Which it is, is decided by the text alone, never by what the inventory holds: a target
 * expression (`isTargetExpression`: starts with `@` or `!`, or has `=`, `&`, `,`, `*`, `?` or
 * a `[N-M]` range) fans out, even when it names a single host; anything else is one host, as
 * it always was, inventory name or not. A one-host command never changes meaning when the
 * inventory changes.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { withOverrides } from '../fleet/resolve-host.js';
import { parseTargetsSpec, type FanOutFlags } from './files-targets.js';
import { NoHostsMatchedError, resolveTargets } from '../fleet/targets.js';
import { fanOut, DEFAULT_FANOUT, type FleetRun, type HostTask, type HostTaskOutcome } from '../fleet/run-on.js';
import type { Connection } from '../client/connection.js';
import type { FleetHost } from '../fleet/inventory.js';
import type { FleetSummary } from '../fleet/results.js';
import { formatSummary, formatTransfers, type Style } from '../fleet/format.js';
import { printJson } from './fleet-output.js';
import { StatusLine } from '../fleet/status-line.js';
import { loadInventory } from '../fleet/inventory.js';
import { ConnectionPool } from '../fleet/pool.js';
import type { ConnectOptions } from '../client/connect.js';
import { askGateway } from './ask-gateway.js';
import { commonGateway, gatewayPutTask, gatewayTargetsInventory } from './files-gateway.js';
import type { TreeOptions, TreeResult } from '../client/files/common.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';
import { ConnectionError, ErrorCode, ShellwireError } from '../errors.js';
import { askPassphrase, debugLog, fail, hostOverrides, natsPinFlags, parseDurationFlag, parseSizeFlag, refuseDirectOnlyFlags, reportHostAdded, setVerbosity, warn } from './common.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import { readSecretLine } from './prompt.js';
import { exitWhenFlushed, write } from './stdio.js';
import { CLOSE_GRACE_MS, exitOnTerminationSignals, onTermination, terminate } from './lifecycle.js';

/** Exit status when the copy was canceled with Ctrl-C (as run). */
const EXIT_CANCELED = 130;

/**
 * A host's folder under LOCALDIR: its name as one path component. Names come from the
 * inventory, but one with `/`, NUL, or that is `.` or `..` would write elsewhere: refused.
 */
export function hostFolder(localDir: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new ShellwireError(ErrorCode.BAD_TARGET, `the host name "${name}" cannot be a folder name under ${localDir} (it has "/" or is "." or ".."); rename it in the inventory`, { host: name });
  }
  return join(localDir, name);
}

export async function runFanOutTransfer(direction: 'put' | 'get', sources: string[], destination: string, flags: FanOutFlags): Promise<void> {
  setVerbosity(flags.verbose);
  let targets: string;
  let remotes: string[] = [];
  let remoteDest = '';
  let localDir = '';
  if (direction === 'put') {
    const spec = parseTargetsSpec(destination)!;
    targets = spec.targets;
    remoteDest = spec.path;
    const remoteSource = sources.find((s) => parseTargetsSpec(s) !== null && !s.startsWith('/') && !s.startsWith('.'));
    if (remoteSource) fail(`put copies local files to hosts; "${remoteSource}" looks remote (use get).`, 2);
  } else {
    const specs = sources.map(parseTargetsSpec);
    const bad = sources.find((_, i) => specs[i] === null);
    if (bad !== undefined) fail(`The source "${bad}" is not TARGETS:PATH like the first one; every source of one get comes from the same hosts.`, 2);
    targets = specs[0]!.targets;
    if (specs.some((s) => s!.targets !== targets)) fail('All sources of one get must name the same targets.', 2);
    remotes = specs.map((s) => s!.path);
    localDir = destination;
    if (parseTargetsSpec(localDir) !== null) fail(`get copies from hosts into a local folder; "${localDir}" looks remote (write ./${localDir} for a local path).`, 2);
  }
  const overrides = hostOverrides(flags);
  let password: string | undefined;
  if (flags.password) {
    const fromEnv = process.env.SHELLWIRE_PASSWORD;
    if (fromEnv === '') fail('SHELLWIRE_PASSWORD is set but empty; nothing was sent. Unset it to be asked, or set the password.', 2);
    // One password for every host, asked once (as clush -p would need the same on each).
    password = fromEnv ?? (await readSecretLine(`password for ${targets}: `));
  }
  const connectTimeoutMs = parseDurationFlag(flags.connectTimeout ?? '10', '--connect-timeout', { min: 1 });
  const connect: ConnectOptions = {
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : 'strict',
    onHostKeyAdded: reportHostAdded,
    ...(process.stdin.isTTY ? { askPassphrase } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(flags.verbose ? { debug: (message: string) => debugLog(1, message) } : {}),
  };
  const pool = new ConnectionPool({ connect, connectTimeoutMs });
  // Files (not -r) through one gateway: uploaded once, pushed by the gateway (files-gateway.ts).
  const viaGateway = direction === 'put' && !flags.recursive;
  if (typeof overrides.via === 'string') refuseDirectOnlyFlags(flags, overrides.via);
  let hosts: FleetHost[];
  try {
    const inventory = viaGateway && typeof overrides.via === 'string'
      ? await askGateway(pool, withOverrides({ name: overrides.via, address: '', port: 0, labels: {}, groups: [] }, overrides), (conn, via) => gatewayTargetsInventory(conn, via, targets))
      : loadInventory(flags.inventory);
    debugLog(2, inventory.file ? `read inventory ${inventory.file}: ${inventory.hosts.length} host(s)` : `no inventory at ${inventory.missing}`);
    hosts = resolveTargets(targets, inventory).map((h) => withOverrides(h, overrides));
  } catch (err) {
    const hint = err instanceof NoHostsMatchedError ? ' (`shellwire hosts TARGETS` shows what targets expand to)' : '';
    fail(err instanceof ShellwireError ? `${err.message}${hint}` : String(err), 2);
  }
  debugLog(1, `"${targets}" → ${hosts.length} host(s)`);
  if (direction === 'get') {
    // The folders are made per host when its copy starts; LOCALDIR itself now, so a path that
    // cannot be one fails once rather than once per host.
    try {
      mkdirSync(encodeOsBytes(localDir), { recursive: true });
    } catch (err) {
      fail(`Cannot create ${localDir}: ${(err as Error).message}`, 1);
    }
  }
  const options: TreeOptions = {
    recursive: flags.recursive === true,
    resume: flags.resume !== false,
    ...(flags.limitRate ? { rateLimit: parseSizeFlag(flags.limitRate, '--limit-rate', { min: 1 }) } : {}),
  };
  const gateway = viaGateway ? commonGateway(hosts) : null;
  if (gateway !== null) debugLog(1, `through the gateway ${gateway}: each file is uploaded once and pushed to the ${hosts.length} host(s) by the gateway`);
  const directTask: HostTask = async (conn, host, context) => {
    try {
      return await copyOne(conn, host, context.signal);
    } catch (err) {
      // The host's result says "lost"; the operator also needs to know the copy can be resumed.
      if (err instanceof ConnectionError) throw new ConnectionError(err.code, `${err.message} The copy did not finish: the same command again resumes from the partial files.`, { host: host.name, cause: err });
      throw err;
    }
  };
  const copyOne = async (conn: Connection, host: FleetHost, signal: AbortSignal): Promise<HostTaskOutcome> => {
    let result: TreeResult;
    if (direction === 'put') {
      // Each host reads the local files itself: direct mode sends the bytes once per host.
      result = await conn.putRecursive(sources, remoteDest, { ...options, signal });
    } else {
      const folder = hostFolder(localDir, host.name);
      const bytes = encodeOsBytes(folder);
      mkdirSync(bytes, { recursive: true });
      // A link planted in LOCALDIR would send this host's files somewhere else.
      if (lstatSync(bytes).isSymbolicLink()) throw new ShellwireError(ErrorCode.LOCAL_IO, `${folder} is a symbolic link; refusing to write through it (remove it, or choose another LOCALDIR)`, { host: host.name });
      result = await conn.getRecursive(remotes, folder, { ...options, signal });
    }
    const transfer = { files: result.files.length, directories: result.directories, bytes: result.bytes, failures: result.failures.length };
    if (result.failures.length === 0) return { transfer };
    const first = result.failures[0]!.error;
    const more = result.failures.length > 1 ? ` (and ${result.failures.length - 1} more of ${result.failures.length + result.files.length} files)` : '';
    const code = first instanceof ShellwireError ? first.code : ErrorCode.INTERNAL;
    return { transfer, error: { code, message: `${first.message}${more}` } };
  };
  const timeoutMs = flags.timeout === undefined ? undefined : parseDurationFlag(flags.timeout, '--timeout', { min: 1 });
  // Through the gateway, --timeout is each host's copy, stopped by the gateway: the one upload
  // to it is not any host's, and a slow host must not hold the others' results.
  const viaTask = gateway !== null
    ? gatewayPutTask(pool, hosts[0]!, hosts, sources, remoteDest, {
      ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
      ...(timeoutMs !== undefined ? { hostTimeoutMs: timeoutMs } : {}),
    })
    : null;
  const task = viaTask?.task ?? directTask;
  const parallel = flags.parallel === undefined ? DEFAULT_FANOUT : Number(flags.parallel);
  if (!Number.isInteger(parallel) || parallel < 1) fail(`--parallel takes a whole number ≥ 1, got "${flags.parallel}".`, 2);
  const label = direction === 'put' ? `put ${sources.join(' ')} ${destination}` : `get ${sources.join(' ')} ${destination}`;
  const run = fanOut(hosts, label, task, {
    // Through the gateway every host waits for the same upload; the gateway bounds its pushes.
    fanout: gateway !== null ? Math.max(parallel, hosts.length) : parallel,
    connectTimeoutMs,
    ...(timeoutMs !== undefined && gateway === null ? { timeoutMs } : {}),
    outputEvents: false,
    pool,
    connect,
  });
  const errStyle: Style = { color: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR };
  const style: Style = { color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR };
  // Through the gateway each running host also shows how far its copy is (the gateway's live records).
  const status = process.stderr.isTTY && !flags.json && !flags.quiet ? new StatusLine(run, errStyle, process.stderr, viaTask?.progress) : null;
  installCancel(run);
  let summary: FleetSummary;
  try {
    if (flags.json) summary = await printJson(run);
    else {
      status?.start();
      summary = await run.result();
      status?.stop();
      if (!flags.quiet || !summary.success) await write(process.stdout, formatTransfers(summary, style, { quiet: flags.quiet === true }));
    }
  } finally {
    status?.stop();
  }
  await pool.close();
  process.stderr.write(formatSummary(summary, errStyle));
  const unknown = summary.results.filter((r) => r.error?.code === ErrorCode.HOST_KEY_UNKNOWN);
  const unknownKeys = unknown.length;
  // Agents through NATS are fetched with --via (the pin is nats:NAME): a command that works when pasted.
  const natsVias = new Set(unknown.map((r) => hosts.find((h) => h.name === r.host)?.via).filter((v): v is string => v !== undefined && isNatsUrl(v)));
  const pinArgs = natsVias.size === 1 && unknown.every((r) => r.address.startsWith('nats:')) ? `${natsPinFlags({ via: [...natsVias][0]!, ...(flags.natsPrefix !== undefined ? { natsPrefix: flags.natsPrefix } : {}), ...(flags.natsCreds !== undefined ? { natsCreds: flags.natsCreds } : {}) })} ${unknown.map((r) => r.host).join(' ')}` : targets;
  if (unknownKeys > 0) warn(`${unknownKeys} host(s) are not in known_hosts: check their fingerprints (shellwire known-hosts scan ${pinArgs}), then pin them (shellwire known-hosts add ${pinArgs}) or copy again with --accept-new-host.`);
  await exitWhenFlushed(summary.stoppedBy === 'canceled' ? EXIT_CANCELED : summary.success ? 0 : 1);
}

/** Ctrl-C, SIGTERM, SIGHUP: stop every host's copy (partial files are kept for resume), then the summary. */
function installCancel(run: FleetRun): void {
  process.on('SIGINT', () => terminate('SIGINT'));
  exitOnTerminationSignals();
  onTermination(() => {
    run.cancel(CLOSE_GRACE_MS);
    return new Promise<never>(() => {});
  });
}
