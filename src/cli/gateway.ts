/**
 * `shellwire gateway`: run a gateway (bastion, docs/gateway.md) until SIGTERM/SIGINT. It
 * speaks the daemon's protocol to operators and relays their channels to the inventory hosts
 * their users.yaml `hosts` permit, with its own key (`--print-key` shows the line for hosts).
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { lockDaemonPid, removeDaemonPid } from '../auth/daemon-pid.js';
import { ensurePrivateDir } from '../auth/secret-file.js';
import { formatTarget, parseTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { DEFAULT_RECORDING_RETENTION_DAYS, FileRecordingStore, recordingsDir } from '../audit/recording.js';
import { LOG_LEVELS } from '../log-levels.js';
import { DEFAULT_GATEWAY_HOST, DEFAULT_GATEWAY_PORT, defaultGatewayStateDir } from '../gateway/gateway-config.js';
import { loadOrCreateGatewayKey } from '../gateway/gateway-key.js';
import { Gateway } from '../gateway/gateway.js';
import type { GatewayWebOptions } from '../gateway/web-hook.js';
import { DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST } from '../gateway/relay-messages.js';
import { parseTrustProxy, parseWebAddress } from '../web/web-config.js';
import { fail, parseSizeFlag, warn } from './common.js';

interface GatewayFlags {
  listen: string;
  stateDir?: string;
  inventory?: string;
  printKey?: boolean;
  audit: boolean;
  logLevel: string;
  recordingRetention: string;
  maxSpool?: string;
  maxChannelsPerHost: string;
  web?: string;
  webCert?: string;
  webKey?: string;
  webOrigin: string[];
  webTrustProxy?: string;
}

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('run a shellwire gateway (bastion): operators log in here and reach the inventory hosts their users.yaml "hosts" permit')
    .option('--listen <addr>', `HOST:PORT, [IPv6]:PORT or PORT (on ${DEFAULT_GATEWAY_HOST})`, `${DEFAULT_GATEWAY_HOST}:${DEFAULT_GATEWAY_PORT}`)
    .option('--state-dir <dir>', 'its identity, users.yaml, audit log, SSH key and known_hosts (default $SHELLWIRE_HOME/gateway)')
    .option('--inventory <file>', 'the hosts it may connect to (default <state-dir>/inventory.yaml)')
    .option('--print-key', "print the gateway's public key line (for hosts' users.yaml), making the key if needed, and exit")
    .option('--max-spool <size>', 'largest file a put to many hosts may spool in <state-dir>/spool (e.g. 2G; default 16G)')
    .option('--no-audit', 'do not keep the audit log (<state-dir>/audit.sqlite)')
    .option('--recording-retention <days>', 'remove recorded sessions (<state-dir>/recordings) older than this, at start and daily', String(DEFAULT_RECORDING_RETENTION_DAYS))
    .option('--max-channels-per-host <n>', "one operator's channels to one host at once, across her connections (the hosts' connections are shared)", String(DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST))
    .option('--web <addr>', 'also serve the web console over HTTPS on HOST:PORT, [IPv6]:PORT or PORT (on 127.0.0.1); off by default')
    .option('--web-cert <file>', "with --web: the console's PEM certificate (default the gateway's own TLS identity)")
    .option('--web-key <file>', 'with --web: the PEM private key of --web-cert')
    .option('--web-origin <url>', 'with --web: another origin (https://NAME:PORT) the console is reached at, e.g. behind a proxy (repeatable)', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--web-trust-proxy <addrs>', 'with --web: the reverse proxies (ADDR or CIDR, comma-separated) whose X-Forwarded-For names the browser (login throttle, logs, audit)')
    .option('--log-level <level>', `${LOG_LEVELS.join(', ')} (JSON logs on stderr)`, process.env.SHELLWIRE_LOG_LEVEL || 'info')
    .action(async (flags: GatewayFlags) => runGateway(flags));
}

function parseListen(text: string): { host: string; port: number } {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { host: DEFAULT_GATEWAY_HOST, port: Number(t) };
  try {
    const target = parseTarget(t, DEFAULT_GATEWAY_PORT, { allowPortZero: true });
    if (target.user !== undefined) throw new Error('a listen address has no user@');
    return { host: target.host, port: target.port };
  } catch (err) {
    fail(`--listen must be HOST:PORT, [IPv6]:PORT or PORT, got "${text}" (${(err as Error).message}).`, 2);
  }
}

/** `--web` and its companions as GatewayOptions.web; undefined without --web. Usage errors exit 2. */
function webOptions(flags: GatewayFlags): GatewayWebOptions | undefined {
  if (flags.web === undefined) {
    const stray = [flags.webCert !== undefined && '--web-cert', flags.webKey !== undefined && '--web-key', flags.webOrigin.length > 0 && '--web-origin', flags.webTrustProxy !== undefined && '--web-trust-proxy'].filter(Boolean);
    if (stray.length > 0) fail(`${stray.join(', ')} only go with --web HOST:PORT.`, 2);
    return undefined;
  }
  let address;
  try {
    address = parseWebAddress(flags.web);
  } catch (err) {
    fail(`--web must be HOST:PORT, [IPv6]:PORT or PORT, got "${flags.web}" (${(err as Error).message}).`, 2);
  }
  if ((flags.webCert === undefined) !== (flags.webKey === undefined)) fail('--web-cert and --web-key go together: give both, or neither (the gateway\'s own certificate serves the console).', 2);
  for (const origin of flags.webOrigin) {
    let url: URL | null = null;
    try {
      url = new URL(origin);
    } catch {
      // reported below
    }
    if (!url || url.protocol !== 'https:' || url.origin !== origin) fail(`--web-origin takes an origin as browsers send it, https://NAME[:PORT] with no path, got "${origin}".`, 2);
  }
  let trustProxy: string[] | undefined;
  if (flags.webTrustProxy !== undefined) {
    try {
      trustProxy = parseTrustProxy(flags.webTrustProxy);
    } catch (err) {
      fail(`--web-trust-proxy ${(err as Error).message}`, 2);
    }
  }
  return {
    ...address,
    ...(trustProxy ? { trustProxy } : {}),
    ...(flags.webCert !== undefined ? { cert: resolve(flags.webCert), key: resolve(flags.webKey!) } : {}),
    ...(flags.webOrigin.length > 0 ? { origins: flags.webOrigin } : {}),
  };
}

async function runGateway(flags: GatewayFlags): Promise<void> {
  const stateDir = flags.stateDir === undefined ? defaultGatewayStateDir() : resolve(flags.stateDir);
  if (!(LOG_LEVELS as readonly string[]).includes(flags.logLevel)) fail(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${flags.logLevel}".`, 2);
  try {
    ensurePrivateDir(stateDir);
    if (flags.printKey) {
      process.stdout.write(`${loadOrCreateGatewayKey(stateDir).publicLine}\n`);
      return;
    }
  } catch (err) {
    fail((err as Error).message, 1);
  }
  const listen = parseListen(flags.listen);
  const retentionDays = Number(flags.recordingRetention);
  if (flags.recordingRetention.trim() === '' || !(retentionDays > 0) || !Number.isFinite(retentionDays)) {
    fail(`--recording-retention takes a number of days above 0 (default ${DEFAULT_RECORDING_RETENTION_DAYS}), got "${flags.recordingRetention}".`, 2);
  }
  const maxSpoolBytes = flags.maxSpool === undefined ? undefined : parseSizeFlag(flags.maxSpool, '--max-spool', { min: 1 });
  const perHost = Number(flags.maxChannelsPerHost);
  if (!/^\d+$/.test(flags.maxChannelsPerHost.trim()) || !(perHost >= 1)) {
    fail(`--max-channels-per-host takes a whole number of at least 1 (default ${DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST}), got "${flags.maxChannelsPerHost}".`, 2);
  }
  const web = webOptions(flags);
  const listenText = formatTarget(listen);
  const lock = lockDaemonPid(stateDir);
  if ('runningPid' in lock) fail(`another shellwire daemon or gateway (PID ${lock.runningPid}) is already serving the state dir ${stateDir}; stop it first, or give this one its own --state-dir.`, 1);
  process.on('exit', () => removeDaemonPid(lock.path));
  let reload = (): void => {};
  process.on('SIGHUP', () => reload());
  const { createLogger } = await import('../log.js');
  const logger = createLogger(flags.logLevel);
  let gateway: Gateway;
  // The console's code is loaded only with --web (Fastify itself is never bundled: web-console.ts).
  const webConsole = web ? (await import('../web/web-console.js')).startWebConsole : undefined;
  try {
    gateway = await Gateway.create({
      host: listen.host,
      port: listen.port,
      stateDir,
      logger,
      ...(flags.audit ? {} : { audit: false as const }),
      // Terminal sessions, and exec output for operators with record.output, in <state dir>/recordings:
      // where `audit verify --state-dir` and `recordings --state-dir` look.
      recordings: new FileRecordingStore(stateDir, { logger }),
      recordingRetentionDays: retentionDays,
      maxChannelsPerOperatorHost: perHost,
      ...(flags.inventory !== undefined ? { inventory: resolve(flags.inventory) } : {}),
      ...(maxSpoolBytes !== undefined ? { maxSpoolBytes } : {}),
      ...(web && webConsole ? { web, webConsole } : {}),
    });
    await gateway.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(web && (err as { port?: number }).port === web.port && web.port !== listen.port ? `${web.host}:${web.port} is already in use; pick another with --web HOST:PORT.` : `${listenText} (or --web's address) is already in use; pick another with --listen HOST:PORT or --web HOST:PORT.`, 1);
    if (code === 'EACCES') fail(`Not allowed to listen on ${listenText}; ports below 1024 need root.`, 1);
    fail(err instanceof ShellwireError ? err.message : String(err), 1);
  }
  const running = gateway!;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'stopping');
    setTimeout(() => process.exit(1), running.server.limits.shutdownGraceMs + 5_000).unref();
    void running.close().finally(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const address = formatTarget({ host: running.server.address.address, port: running.server.address.port });
  const inv = running.inventory;
  process.stdout.write(
    [
      `shellwire gateway listening on ${address}`,
      `host key fingerprint: ${running.server.identity.fingerprint}${running.server.created ? ' (new identity)' : ''}`,
      `recordings: ${recordingsDir(stateDir)} (kept ${retentionDays} day${retentionDays === 1 ? '' : 's'})`,
      `inventory: ${running.inventoryFile} (${inv.hosts.length} host${inv.hosts.length === 1 ? '' : 's'}${inv.file === null ? ', file missing' : ''})`,
      `gateway key (put it in each host's users.yaml with actAs): ${running.key.publicLine}`,
      ...(running.webUrl !== null ? [`web console: ${running.webUrl}`] : []),
      '',
    ].join('\n'),
  );
  reload = () => {
    running.server.reloadIdentity();
    const users = running.server.reloadUsers();
    if (!users.ok) warn(`users.yaml not reloaded, the old users stay in force:\n${users.error}`);
    const inventory = running.reloadInventory();
    if (!inventory.ok) warn(`inventory not reloaded, the old one stays in force:\n${inventory.error}`);
  };
}
