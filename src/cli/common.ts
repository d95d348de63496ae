/** What every connecting command shares: credential and host-key flags, error reporting, exit codes. */
import { Option, type Command } from 'commander';
import { parseVia, relayHostName } from '../client/via.js';
import { isNatsUrl, parseNatsServers } from '../transport/nats-connect.js';
import { parseAgentTarget } from '../client/nats-agent-target.js';
import { gatewayDials } from '../client/open-tls.js';
import { connect, type ConnectOptions } from '../client/connect.js';
import type { Connection } from '../client/connection.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { knownHostsPath, shellwireHome } from '../auth/paths.js';
import type { FleetHost, Inventory } from '../fleet/inventory.js';
/** `--via none` / inventory `via: none` (fleet/inventory.ts's VIA_NONE; not imported, so the client bundle stays free of the YAML parser). */
const VIA_NONE = 'none';
import { connectArgs, describeHost, isTargetExpression, resolveHost, withOverrides, type HostOverrides } from '../fleet/resolve-host.js';
import { ShellwireError, HostVerificationError, ErrorCode } from '../errors.js';
import { askLine, readSecretLine } from './prompt.js';
import { escapeControls } from '../client/display-text.js';
import { terminate, terminationExitCode } from './lifecycle.js';
import { parseDuration, parseSize, durationForms, sizeForms, type DurationUnit } from './units.js';
import { beforeEarlyExit } from './stdio.js';

export { signalExitCode } from './lifecycle.js';

/** Exit status for connection, TLS, authentication and protocol failures (as ssh). */
export const EXIT_CONNECTION_FAILURE = 255;
/** Exit status when `--timeout` killed the command (as timeout(1)). */
export const EXIT_TIMED_OUT = 124;

export interface ConnectFlags {
  identity?: string;
  password?: boolean;
  tokenFile?: string;
  acceptNewHost?: boolean;
  connectTimeout?: string;
  /** `-p PORT`: wins over `HOST:PORT` and the inventory. */
  port?: string;
  /** `-l USER`: wins over `USER@HOST` and the inventory. */
  user?: string;
  inventory?: string;
  /** How many `-v` were given. */
  verbose?: number;
  /** `--via [USER@]GW[:PORT]` / `-J`: through this gateway; `nats://…`: through NATS; `none`: directly (see addViaFlag). */
  via?: string;
  /** `--nats-creds FILE`: NATS credentials for `--via nats://…`. */
  natsCreds?: string;
  /** `--nats-prefix P`: the agents' subject prefix. */
  natsPrefix?: string;
}

/** Commander's way of counting a repeated flag (`-vv`, `-v -v`). */
export const increase = (_value: string, previous: number): number => previous + 1;

export function addConnectFlags(command: Command): Command {
  return command
    .option('-p, --port <port>', 'port to connect to (wins over HOST:PORT and the inventory; default 50007)')
    .option('-l, --user <name>', 'log in as this user (wins over USER@HOST and the inventory)')
    .option('-i, --identity <keyfile>', 'OpenSSH private key: Ed25519, ECDSA or RSA (default: ssh-agent\'s keys, then id_ed25519, id_ecdsa, id_rsa in $SHELLWIRE_HOME and ~/.ssh)')
    .option('--password', 'log in with a password (asked on the terminal, or read from stdin\'s first line)')
    .option('--token-file <file>', 'read the access token from FILE (else the inventory\'s, $SHELLWIRE_TOKEN, or the local daemon\'s token)')
    .option('--accept-new-host', 'trust and remember a host not yet in known_hosts (changed keys are still refused)')
    .option('--connect-timeout <duration>', 'give up connecting after this long (seconds, or 500ms, 1m)', '10')
    .option('--inventory <file>', 'where host names are looked up (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('-v, --verbose', 'say what is tried: the inventory entry, address, host key check, credentials offered, why it failed (-vv: more)', increase, 0)
    .addOption(viaOption())
    .option('--nats-creds <file>', 'with --via nats://…: NATS credentials (a .creds file, or an nkey seed file)')
    .option('--nats-prefix <prefix>', 'with --via nats://…: the agents\' subject prefix (default shellwire)');
}

/**
 * `--via [USER@]GW[:PORT]` and ssh's `-J`: through a gateway (docs/gateway.md). Shared by
 * every command that reaches hosts or asks a gateway (exec, shell, tty, put, get, ls, run,
 * hosts, recordings, replay), so they spell it and check it alike; `viaOverride` reads it.
 */
export function viaOption(description = 'through this gateway (shellwire gateway): USER@ names you there, default port 50008; nats://A,nats://B: through NATS to an agent (shellwire serve --nats); "none": directly, whatever the inventory\'s via: says'): Option {
  return new Option('-J, --via <[user@]gateway[:port]|nats://…>', description);
}

/** Add `-J, --via` to a command (see `viaOption`). */
export function addViaFlag(command: Command, description?: string): Command {
  return command.addOption(viaOption(description));
}

/**
 * The `--via` flag as a host override: undefined (not given: the inventory decides), null
 * (`--via none`: directly) or the gateway, checked now (usage error, exit 2) so a typo is
 * not a connection failure per host.
 */
export function viaOverride(flags: { via?: string }): string | null | undefined {
  const via = flags.via;
  if (via === undefined) return undefined;
  if (via === VIA_NONE) return null;
  try {
    if (isNatsUrl(via)) parseNatsServers(via);
    else parseVia(via);
  } catch (err) {
    fail((err as Error).message, 2);
  }
  return via;
}

/**
 * Through a gateway the host's port and account are the gateway's (its inventory, its
 * users.yaml `as:`): -p and -l, which would be ignored there, are refused instead.
 */
export function refuseDirectOnlyFlags(flags: { port?: string; user?: string }, via: string): void {
  if (flags.port !== undefined) fail(`-p does not go with a gateway (${via}): the gateway's inventory knows the host's port. A gateway's own port goes in --via GATEWAY:PORT; --via none connects directly.`, 2);
  if (flags.user !== undefined) fail(`-l does not go with a gateway (${via}): the gateway's users.yaml (as:) chooses the account on the host. Name yourself on the gateway with --via USER@GATEWAY; --via none connects directly.`, 2);
}

let verbosity = 0;

/** `debug1: …` on stderr when at least `level` `-v` were given (ssh's format). */
export function debugLog(level: number, message: string): void {
  if (verbosity >= level) process.stderr.write(`debug${level}: ${message}\n`);
}

export function setVerbosity(level: number | undefined): void {
  verbosity = level ?? 0;
}

/** `-p`, `-l`, `-i`, `--token-file`: what the command line says, above the inventory. */
export function hostOverrides(flags: ConnectFlags): HostOverrides {
  const overrides: HostOverrides = {};
  if (flags.port !== undefined) overrides.port = parsePortFlag(flags.port);
  if (flags.user !== undefined) {
    if (flags.user === '') fail('-l takes a user name, got "".', 2);
    overrides.user = flags.user;
  }
  if (flags.identity) overrides.identity = flags.identity;
  if (flags.tokenFile) overrides.tokenFile = flags.tokenFile;
  const via = viaOverride(flags);
  if (via !== undefined) overrides.via = via;
  return overrides;
}

function parsePortFlag(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) fail(`-p takes a port number from 1 to 65535, got "${text}".`, 2);
  return port;
}

/**
 * The inventory host names are looked up in: `--inventory F`, else the default file when it
 * exists. The YAML code is loaded only then, so `exec` on a machine without an inventory
 * starts as fast as before.
 */
export async function inventoryFor(flags: { inventory?: string }): Promise<Inventory> {
  const defaultPath = join(shellwireHome(), 'inventory.yaml');
  if (flags.inventory === undefined && !existsSync(defaultPath)) {
    debugLog(2, `no inventory at ${defaultPath}; host names are not looked up`);
    return { file: null, missing: defaultPath, hosts: [], byName: new Map(), groupTerms: new Map() };
  }
  const { loadInventory } = await import('../fleet/inventory.js');
  const inventory = loadInventory(flags.inventory);
  debugLog(2, `read inventory ${inventory.file ?? defaultPath}: ${inventory.hosts.length} host(s)`);
  return inventory;
}

/**
 * Connect as the flags say: to `targetText` (an inventory name or `[USER@]HOST[:PORT]`,
 * through its gateway when `--via` or the inventory names one); with `gateway: true`, to the
 * gateway `targetText` itself (`[USER@]GW[:PORT]`, default port 50008: `hosts --via`,
 * `recordings --via`, `replay --via` ask it, not a host behind it).
 */
export async function connectFromFlags(targetText: string, flags: ConnectFlags, mode: { gateway?: boolean } = {}): Promise<Connection> {
  setVerbosity(flags.verbose);
  const overrides = hostOverrides(flags);
  let host: FleetHost;
  if (mode.gateway) {
    const gateway = parseVia(targetText);
    host = withOverrides({ name: targetText, address: gateway.host, port: gateway.port, labels: {}, groups: [], ...(gateway.user !== undefined ? { user: gateway.user } : {}) }, { ...overrides, via: null });
  } else {
    if (isTargetExpression(targetText)) fail(oneHostOnly(targetText, flags.via), 2);
    const resolved = resolveHost(targetText, await inventoryFor(flags), overrides);
    debugLog(1, describeHost(resolved));
    host = resolved.host;
    if (host.via !== undefined && isNatsUrl(host.via)) {
      // A reader gone (`| head`) exits at once: the agent is told first (tunnel RST), as a TCP close would.
      beforeEarlyExit(async () => (await import('../transport/nats-tunnel.js')).resetAllTunnels());
      natsConnectFlags = { via: host.via, ...(flags.natsCreds !== undefined ? { natsCreds: flags.natsCreds } : {}), ...(flags.natsPrefix !== undefined ? { natsPrefix: flags.natsPrefix } : {}) };
      if (flags.port !== undefined) {
        fail(`-p/--port does not apply through NATS (${host.via}): an agent is reached by its name (its --name), not a port. Drop -p; list the agents with: shellwire hosts --via ${host.via}`, 2);
      }
      if ((resolved.entry === null && /:\d+$|^\[|^([^@]*@)?[0-9.]+$/.test(targetText))) {
        fail(`Through NATS (${host.via}) a host is an agent's name (its --name), not an address or port: "${targetText}". List the agents with: shellwire hosts --via ${host.via}`, 2);
      }
      try {
        parseAgentTarget(connectArgs(host).target, host.via);
      } catch (err) {
        fail((err as Error).message, 2);
      }
    } else if (host.via !== undefined) {
      refuseDirectOnlyFlags(flags, host.via);
      // USER@HOST, HOST:PORT, [IPv6]:PORT: a usage error, before anything is dialled (as -p/-l).
      try {
        relayHostName(host.name, host.via);
      } catch (err) {
        fail((err as Error).message, 2);
      }
    }
  }
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  const base: ConnectOptions = {
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : interactive ? 'ask' : 'strict',
    confirmHost: askAboutHost,
    onHostKeyAdded: reportHostAdded,
    connectTimeoutMs: parseSeconds(flags.connectTimeout ?? '10', '--connect-timeout') * 1000,
  };
  // As ssh: a key's passphrase is asked on a terminal only; scripts use ssh-agent.
  if (process.stdin.isTTY) base.askPassphrase = askPassphrase;
  if (verbosity > 0) base.debug = (message) => debugLog(1, message);
  debugLog(2, `host key policy ${base.hostKeyPolicy}${flags.acceptNewHost ? ' (--accept-new-host)' : interactive ? ' (a terminal: unknown hosts are asked about)' : ' (no terminal: unknown hosts are refused)'}`);
  if (flags.password) {
    const fromEnv = process.env.SHELLWIRE_PASSWORD;
    // An empty password never logs in; sent, it would only count towards the lockout.
    if (fromEnv === '') fail('SHELLWIRE_PASSWORD is set but empty; nothing was sent. Unset it to be asked, or set the password.', 2);
    base.password = fromEnv ?? (await readSecretLine(`${host.user ?? process.env.USER ?? ''}@${host.name}'s password: `));
  }
  if (flags.natsCreds !== undefined) base.natsCreds = flags.natsCreds;
  if (flags.natsPrefix !== undefined) base.natsPrefix = flags.natsPrefix;
  const { target, options } = connectArgs(host, base);
  if (mode.gateway) gatewayDials.add(options);
  return connect(target, options);
}

/** exec/shell/tty/put/get/ls given `@web` or `role=web&dc=east`: say which command takes many. */
function oneHostOnly(targetText: string, via?: string): string {
  const args = process.argv.slice(2);
  const command = args.find((a) => SINGLE_HOST_COMMANDS.includes(a)) ?? 'this command';
  const words = command === 'exec' ? args.slice(args.indexOf(targetText) + 1).filter((w) => w !== '--') : [];
  const quoted = shellQuote(targetText);
  // Through the same gateway (--via GW; not --via none, which is the direct default).
  const through = via !== undefined && via !== VIA_NONE ? ` --via ${shellQuote(via)}` : '';
  return `${command} takes one host; to run on ${targetText} use: shellwire run${through} ${quoted} -- ${words.length > 0 ? words.map(shellQuote).join(' ') : 'COMMAND'}`;
}

/** `HOST:PATH` or `HOST` whose host part is `@web`, `role=web`…: the one-host message, else nothing. */
export function refuseTargetExpression(text: string): void {
  const colon = text.search(/:(?!\d+(:|$))/);
  const host = colon < 0 ? text : text.slice(0, colon);
  if (isTargetExpression(host)) fail(oneHostOnly(host), 2);
}

/** The commands that connect to one host (`run` takes target expressions). */
export const SINGLE_HOST_COMMANDS: readonly string[] = ['exec', 'shell', 'tty', 'put', 'get', 'ls'];

/** The terminal prompt for a key's passphrase (ssh's wording); CLI commands pass it only on a TTY. */
export function askPassphrase(keyFile: string, attempt: number): Promise<string> {
  return readSecretLine(attempt === 1 ? `Enter passphrase for key '${keyFile}': ` : `Bad passphrase, try again for key '${keyFile}': `);
}

/**
 * The command after the host, as ssh takes it: options may still come right after the host
 * (`exec web01 -t top`), and the first word that is not one of ours starts the command,
 * with everything after it, options included (`exec web01 uname -a`); `--` ends our options.
 * Needs `passThroughOptions()` on the command, so commander stops at the host.
 */
export function commandAfterHost(command: Command, words: string[]): string[] {
  const { operands, unknown } = command.parseOptions(words);
  if (unknown.length > 0) {
    fail(`unknown option '${unknown[0]}' after the host. Options go before the host; a command that starts with "-" goes after "--" (shellwire ${command.name()} HOST -- ${unknown.join(' ')}).`, 2);
  }
  return operands;
}

/**
 * ssh's first-contact question: "yes", "no", or the fingerprint pasted from a trusted place
 * (trusts only when it is the one presented). Anything else asks again; the end of input is no.
 */
async function askAboutHost(host: string, fingerprint: string): Promise<boolean> {
  let question = `The authenticity of host '${host}' can't be established.\nIts key fingerprint is ${fingerprint}.\n` +
    'Are you sure you want to continue connecting (yes/no/[fingerprint])? ';
  for (;;) {
    const answer = await askLine(question, { onInterrupt: () => terminate('SIGINT') });
    if (answer === null) return false;
    const word = answer.trim();
    if (/^yes$/i.test(word) || word === fingerprint) return true;
    if (/^no$/i.test(word)) return false;
    question = "Please type 'yes', 'no' or the fingerprint: ";
  }
}

/** A positive duration flag in seconds (`10`, `1.5`, `500ms`, `2m`, `1h`; see units.ts); usage error otherwise. */
export function parseSeconds(text: string, flag: string): number {
  return parseDurationFlag(text, flag, { min: Number.MIN_VALUE }) / 1000;
}

/**
 * A duration flag in milliseconds; a bare number is in `bareUnit` (seconds unless said).
 * Below `min` ms (default 0: zero allowed) is a usage error naming the accepted forms.
 */
export function parseDurationFlag(text: string, flag: string, { min = 0, bareUnit = 's' as DurationUnit } = {}): number {
  let ms: number;
  try {
    ms = parseDuration(text, bareUnit);
  } catch (err) {
    fail(`${flag} ${(err as Error).message}; got "${text}".`, 2);
  }
  if (ms < min) fail(`${flag} takes ${min <= Number.MIN_VALUE ? 'a duration above zero' : `at least ${min} ms`} (${durationForms(bareUnit)}); got "${text}".`, 2);
  return ms;
}

/** A size flag in bytes (`65536`, `512K`, `5M`, `1G`, `10MiB`; see units.ts); below `min` is a usage error. */
export function parseSizeFlag(text: string, flag: string, { min = 0, bareUnit = 1 } = {}): number {
  let bytes: number;
  try {
    bytes = parseSize(text, bareUnit);
  } catch (err) {
    fail(`${flag} ${(err as Error).message}; got "${text}".`, 2);
  }
  if (bytes < min) fail(`${flag} takes at least ${min} bytes (${sizeForms(bareUnit)}); got "${text}".`, 2);
  return bytes;
}

/** Print a one-line error (the full text for host-key warnings) and exit. */
export function fail(message: string, code: number = EXIT_CONNECTION_FAILURE): never {
  // Ending on a signal: the error is the connection we destroyed ourselves; say nothing.
  const terminating = terminationExitCode();
  if (terminating !== null) process.exit(terminating);
  // Messages quote file contents, host names and arguments: none may drive the terminal.
  process.stderr.write(`shellwire: ${escapeControls(message)}\n`);
  process.exit(code);
}

/** A `shellwire: …` line on stderr that does not exit, escaped as `fail` escapes. */
export function warn(message: string): void {
  process.stderr.write(`shellwire: ${escapeControls(message)}\n`);
}

/** ssh's note after a first contact was trusted (answered yes, or --accept-new-host). */
export function reportHostAdded(host: string): void {
  process.stderr.write(`Warning: Permanently added '${host}' to the list of known hosts.\n`);
}

/**
 * The library's errors keep what happened (`reason`) apart from advice in its own terms
 * (`hint`: `hostKeyPolicy: 'accept-new'`, the identity option); a CLI user needs the flag or
 * command instead, so the CLI prints the reason and its own hint for the code, never both.
 */
function cliHint(err: ShellwireError): string | null {
  const host = err.host !== undefined ? shellQuote(err.host) : 'HOST';
  switch (err.code) {
    case ErrorCode.HOST_KEY_UNKNOWN:
      // Answered "no" at the prompt: ssh's one line, nothing to advise.
      if (err instanceof HostVerificationError && err.declined) return null;
      // An agent's key is fetched through NATS: the same servers, credentials and prefix as this connect.
      if (err.host?.startsWith('nats:') && natsConnectFlags !== null) {
        return `Once the fingerprint is checked, connect again with --accept-new-host, or pin it first: shellwire known-hosts add ${natsPinFlags(natsConnectFlags)} ${shellQuote(err.host.slice(5))}`;
      }
      return `Once the fingerprint is checked, connect again with --accept-new-host, or pin it first: shellwire known-hosts add ${host}`;
    case ErrorCode.HOST_KEY_CHANGED: {
      const file = err instanceof HostVerificationError ? err.knownHostsFile : undefined;
      if (file === undefined) return null;
      const fileFlag = file === knownHostsPath() ? '' : ` -f ${shellQuote(file)}`;
      // Through NATS anyone who may subscribe to the agent's subjects can answer in its name: check before removing the pin.
      const agent = err.host?.startsWith('nats:') && natsConnectFlags !== null
        ? `Through NATS another agent may be answering under this name (a duplicate --name or an impostor): compare with shellwire hosts ${natsPinFlags(natsConnectFlags)} ${shellQuote(err.host.slice(5))} and the agent's own log first.\n`
        : '';
      return `${agent}If you know the key changed, remove the old one with:\n  shellwire known-hosts remove${fileFlag} ${host}`;
    }
    case ErrorCode.AUTH_FAILED:
      return 'Check the user (USER@HOST), the key (-i KEYFILE) or the token (--token-file FILE or SHELLWIRE_TOKEN).';
    case ErrorCode.NO_CREDENTIALS:
      return 'Use a key (-i KEYFILE; make one with: shellwire keygen) or a token (--token-file FILE or SHELLWIRE_TOKEN).';
    case ErrorCode.LOCKED_OUT:
      return err.hint ?? null;
    default:
      return null;
  }
}

/** The NATS flags of this process's last connect through NATS (for `cliHint`'s pinning command). */
let natsConnectFlags: { via: string; natsCreds?: string; natsPrefix?: string } | null = null;

/** `--via URL [--nats-creds F] [--nats-prefix P]` for a `known-hosts add` hint. */
export function natsPinFlags(flags: { via: string; natsCreds?: string; natsPrefix?: string }): string {
  return [
    `--via ${shellQuote(flags.via)}`,
    ...(flags.natsCreds !== undefined ? [`--nats-creds ${shellQuote(flags.natsCreds)}`] : []),
    ...(flags.natsPrefix !== undefined ? [`--nats-prefix ${shellQuote(flags.natsPrefix)}`] : []),
  ].join(' ');
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./[\]-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/**
 * ssh's banner for a changed host key pinned in known_hosts, from the error's fields (the
 * library's message is one plain paragraph); null for other host-key errors.
 */
export function hostKeyChangedBanner(err: HostVerificationError): string | null {
  if (err.code !== ErrorCode.HOST_KEY_CHANGED || err.knownHostsFile === undefined || err.line === undefined) return null;
  const host = err.host ?? 'this host';
  return [
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!',
    'Someone could be intercepting this connection, or the daemon was reinstalled.',
    `The server at ${host} presented ${err.presented ?? 'another key'},`,
    `but known_hosts pins ${err.pinned ?? 'another key'}.`,
    `Offending key in ${err.knownHostsFile}:${err.line}`,
    `Host key for ${host} has changed and the connection was refused.`,
  ].join('\n');
}

export function reportError(err: unknown): never {
  if (err instanceof ShellwireError) {
    const hint = cliHint(err);
    // Host-key banners stand alone, as ssh prints them; other errors are one line with their code.
    if (err instanceof HostVerificationError && err.code !== ErrorCode.TLS) {
      const text = hostKeyChangedBanner(err) ?? err.reason;
      fail(hint ? `${text}\n${hint}` : text);
    }
    fail(`${err.reason}${hint ? ` ${hint}` : ''} [${err.code}]`);
  }
  fail(err instanceof Error ? err.message : String(err), 1);
}
