/** `shellwire serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully. */
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { lockDaemonPid, removeDaemonPid, DAEMON_LOCK_FILE } from '../auth/daemon-pid.js';
import { Server, DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { ClassicServer, DEFAULT_CLASSIC_HOST } from '../server/classic-server.js';
import { DEFAULT_LIMITS } from '../server/limits.js';
import { formatTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { fail, warn } from './common.js';
import { escapeControls } from '../client/display-text.js';
import { keepRunningOnBrokenPipe } from './stdio.js';
import { defaultServerStateDir } from '../auth/paths.js';
import { ensurePrivateDir } from '../auth/secret-file.js';
import { runningAsRoot } from '../auth/os-account.js';
import { LOG_LEVELS } from '../log-levels.js';
import { DEFAULT_NATS_PREFIX } from '../protocol/nats-subjects.js';
import { hostname } from 'node:os';
import type { NatsAgent } from '../server/nats-agent.js';
import { VERSION } from './program.js';
import {
  SERVE_SETTINGS, SERVE_CONFIG_FILE, SYSTEM_SERVE_CONFIG, loadServeConfig, parseSetting, isBadValue,
  type ServeConfig, type ServeSettings, type SettingKey, type RawValue,
} from './serve-config.js';

interface ServeFlags {
  config?: string;
  listen: string | false;
  stateDir?: string;
  maxConnections: string;
  maxChannels: string;
  maxStartups: string;
  maxStartupsPerSource: string;
  handshakeTimeout: string;
  killGrace: string;
  outputGrace: string;
  shutdownGrace: string;
  logLevel: string;
  audit: boolean;
  auditFailure: string;
  announce?: boolean;
  classicPort?: string;
  classicListen?: string;
  fileRoot?: string[];
  containment: string;
  spawner: string;
  nats?: string;
  natsCreds?: string;
  natsPrefix?: string;
  name?: string;
  labels?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the shellwire daemon (TLS 1.3; makes its key, certificate and access token on first start)')
    .option('--config <file>', `settings file (default ${SYSTEM_SERVE_CONFIG} as root, else <state-dir>/${SERVE_CONFIG_FILE}); flags override it`)
    .option('--listen <addr>', `HOST:PORT, [IPv6]:PORT, PORT (on ${DEFAULT_HOST}) or :PORT (every interface)`, `${DEFAULT_HOST}:${DEFAULT_PORT}`)
    .option('--no-listen', 'no TCP port: an agent reached only through NATS (--nats)')
    .option('--state-dir <dir>', 'where the host key, certificate and token live (default $SHELLWIRE_HOME/server)')
    .option('--max-connections <n>', 'concurrent client connections', String(DEFAULT_LIMITS.maxConnections))
    .option('--max-channels <n>', 'concurrent commands per connection', String(DEFAULT_LIMITS.maxChannels))
    .option('--max-startups <start:rate:full>', 'unauthenticated connections, as sshd\'s MaxStartups: past START the oldest silent one is dropped with RATE% chance (100% at FULL), and handshake deadlines shrink', formatStartups(DEFAULT_LIMITS.maxStartups))
    .option('--max-startups-per-source <n>', 'unauthenticated connections from one address, or "none"; more are dropped at once (one address may be many users: NAT, a bastion)', 'none')
    .option('--handshake-timeout <duration>', 'time a client has to authenticate (seconds, or 500ms, 1m)', String(DEFAULT_LIMITS.handshakeTimeoutMs / 1000))
    .option('--kill-grace <duration>', 'SIGTERM-to-SIGKILL delay for closed, disconnected or timed-out commands', String(DEFAULT_LIMITS.killGraceMs / 1000))
    .option('--output-grace <duration>', 'after a command exits, how long what it left running may hold its output open before the channel ends anyway', String(DEFAULT_LIMITS.outputGraceMs / 1000))
    .option('--shutdown-grace <duration>', 'on SIGTERM, how long running commands may finish before they are killed', String(DEFAULT_LIMITS.shutdownGraceMs / 1000))
    .option('--classic-port <port>', 'also speak the classic plaintext protocol (nc, the socket tutorial\'s client) on PORT; off by default')
    .option('--classic-listen <addr>', `address for --classic-port (default ${DEFAULT_CLASSIC_HOST}; plaintext, so think twice beyond loopback)`)
    .option('--announce', 'answer UDP discovery probes (same port number) with name, port and fingerprint; rate-limited')
    .option('--file-root <dir>', 'a directory file transfers with the daemon token may use (repeatable; default: any path, as its commands may go anywhere)', (dir: string, dirs: string[] | undefined) => [...(dirs ?? []), dir])
    .option('--containment <mode>', 'auto (a cgroup per command where cgroup v2 is writable), cgroup, or process-group (setsid escapes); see docs/processes.md', 'auto')
    .option('--spawner <on|off>', 'on: commands are forked by a small helper process, so starting one costs the same however many connections the daemon holds; off: the daemon forks them itself (debugging, measuring); see docs/processes.md', 'on')
    .option('--nats <urls>', 'agent mode: connect out to these NATS servers (nats://A:4222,nats://B:4222) and serve clients that come through them (shellwire exec --via nats://… NAME); reconnects forever; see docs/nats.md')
    .option('--nats-creds <file>', 'NATS credentials: a .creds file (user JWT + seed, from nsc) or an nkey seed file')
    .option('--name <name>', 'the agent\'s name on NATS (A-Z a-z 0-9 _ -; default: this host\'s name up to the first dot)')
    .option('--labels <k=v,...>', 'labels the agent announces on NATS, for target expressions (role=web,dc=ams; @G means group=G)')
    .option('--nats-prefix <prefix>', `subject prefix on NATS, so several fleets share a cluster (default ${DEFAULT_NATS_PREFIX})`)
    .option('--no-audit', 'do not keep the audit log (<state-dir>/audit.sqlite); for benchmarks and throwaway daemons')
    .option('--audit-failure <action>', 'while the audit log cannot be written (disk full, I/O error): "refuse" new commands, or "continue" serving (rows wait in memory; a gap row marks the outage)', 'refuse')
    .option('--log-level <level>', `${LOG_LEVELS.join(', ')} (JSON logs on stderr; default $SHELLWIRE_LOG_LEVEL, else info)`, 'info')
    .action(async (flags: ServeFlags, command: Command) => runServe(resolveSettings(flags, command)));
}

function formatStartups(s: { start: number; rate: number; full: number }): string {
  return `${s.start}:${s.rate}:${s.full}`;
}

/** The commander attribute each setting's flag fills (the same name, but for --file-root). */
const FLAG_ATTRIBUTE: Record<SettingKey, keyof ServeFlags> = {
  listen: 'listen', stateDir: 'stateDir', maxConnections: 'maxConnections', maxChannels: 'maxChannels', maxStartups: 'maxStartups',
  maxStartupsPerSource: 'maxStartupsPerSource', handshakeTimeout: 'handshakeTimeout', killGrace: 'killGrace', outputGrace: 'outputGrace',
  shutdownGrace: 'shutdownGrace', logLevel: 'logLevel', audit: 'audit', auditFailure: 'auditFailure', announce: 'announce',
  classicPort: 'classicPort', classicListen: 'classicListen', fileRoots: 'fileRoot', containment: 'containment',
  spawner: 'spawner', nats: 'nats', natsCreds: 'natsCreds', natsPrefix: 'natsPrefix', name: 'name', labels: 'labels',
};

/**
 * Flags over the config file over the environment (SHELLWIRE_LOG_LEVEL) over defaults, each
 * value checked by the one parser its flag and config key share (serve-config.ts).
 */
function resolveSettings(flags: ServeFlags, command: Command): ServeSettings {
  const fromCli = (key: SettingKey) => command.getOptionValueSource(FLAG_ATTRIBUTE[key]) === 'cli';
  // The state dir (from the command line) says where a non-root daemon's config file is.
  const cliStateDir = flags.stateDir === undefined ? undefined : resolve(flags.stateDir);
  const configPath = flags.config ?? (runningAsRoot() ? SYSTEM_SERVE_CONFIG : join(cliStateDir ?? defaultServerStateDir(), SERVE_CONFIG_FILE));
  let config: ServeConfig | null;
  try {
    config = loadServeConfig(configPath, flags.config !== undefined);
  } catch (err) {
    fail(`${(err as Error).message}\n(see "shellwire serve --help" for the settings; flags override the file)`, 2);
  }
  const settings: Partial<Record<SettingKey, unknown>> = {};
  for (const key of Object.keys(SERVE_SETTINGS) as SettingKey[]) {
    const flagValue = flags[FLAG_ATTRIBUTE[key]] as RawValue | undefined;
    const fileValue = config?.values[key];
    const envValue = key === 'logLevel' ? process.env.SHELLWIRE_LOG_LEVEL || undefined : undefined;
    const value = fromCli(key) ? flagValue : fileValue ?? envValue ?? flagValue;
    if (value === undefined) continue;
    try {
      settings[key] = parseSetting(key, value);
    } catch (err) {
      if (!isBadValue(err)) throw err;
      const where = fromCli(key) ? SERVE_SETTINGS[key].flag : fileValue !== undefined ? `${key} in ${config!.path}` : `SHELLWIRE_LOG_LEVEL`;
      fail(`${where} ${err.message}, got "${String(value)}".`, 2);
    }
  }
  if (settings.classicListen !== undefined && settings.classicPort === undefined) fail('--classic-listen needs --classic-port (in serve.yaml: classicListen needs classicPort).', 2);
  if (settings.listen === null && settings.nats === undefined) fail('--no-listen leaves nothing to serve: give --nats URLS too (an agent reached through NATS), or a --listen address.', 2);
  for (const key of ['natsCreds', 'natsPrefix', 'name', 'labels'] as const) {
    if (settings[key] !== undefined && settings.nats === undefined) fail(`${SERVE_SETTINGS[key].flag} is for agent mode: it needs --nats URLS (in serve.yaml: nats).`, 2);
  }
  const s = settings as Record<string, unknown>;
  return {
    listen: s.listen,
    stateDir: s.stateDir,
    maxConnections: s.maxConnections,
    maxChannels: s.maxChannels,
    maxStartups: s.maxStartups,
    maxStartupsPerSource: s.maxStartupsPerSource,
    handshakeTimeoutMs: s.handshakeTimeout,
    killGraceMs: s.killGrace,
    outputGraceMs: s.outputGrace,
    shutdownGraceMs: s.shutdownGrace,
    logLevel: s.logLevel,
    audit: s.audit ?? true,
    auditFailure: s.auditFailure,
    announce: s.announce ?? false,
    classicPort: s.classicPort,
    classicListen: s.classicListen,
    fileRoots: s.fileRoots,
    containment: s.containment,
    spawner: s.spawner ?? 'on',
    nats: s.nats,
    natsCreds: s.natsCreds,
    natsPrefix: s.natsPrefix,
    name: s.name,
    labels: s.labels,
  } as ServeSettings;
}

/** The host's name up to its first dot, made a NATS subject token (or `--name` is needed). */
function defaultAgentName(): string {
  const name = hostname().split('.')[0]!.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  if (name === '' || /^-+$/.test(name)) fail(`cannot make an agent name of this host's name "${hostname()}": give one with --name NAME.`, 2);
  return name;
}

/** After a second SIGTERM/SIGINT, how long killing the running commands may take before the daemon exits anyway. */
const FORCED_EXIT_MS = 2_000;
/** After the shutdown grace, how long closing may still take (goodbyes, process-group kills, the audit flush). */
const SHUTDOWN_SLACK_MS = 5_000;

async function runServe(settings: ServeSettings): Promise<void> {
  // Nobody reading the banner or the logs is no reason to stop serving (issue 8 item 16).
  keepRunningOnBrokenPipe();
  const listenText = settings.listen ? formatTarget(settings.listen) : 'no TCP port';
  // One daemon per state dir. Taken before anything in it is made or opened; the pid file
  // it leaves also lets `shellwire user/key/token` ask this daemon to reload (SIGHUP), so
  // SIGHUP must not kill us (its default) before the server exists.
  const stateDir = settings.stateDir ?? defaultServerStateDir();
  let server: Server | undefined;
  let reload = (): void => {};
  process.on('SIGHUP', () => reload());
  try {
    ensurePrivateDir(stateDir);
  } catch (err) {
    fail((err as Error).message, 1);
  }
  const lock = lockDaemonPid(stateDir);
  if ('runningPid' in lock) {
    fail(
      lock.runningPid > 0
        ? `another shellwire daemon (PID ${lock.runningPid}) is already serving the state dir ${stateDir}; stop it first (kill ${lock.runningPid}, or systemctl stop shellwire), or give this one its own --state-dir.`
        : `cannot lock the state dir ${stateDir} (${join(stateDir, DAEMON_LOCK_FILE)} keeps changing); is another daemon starting?`,
      1,
    );
  }
  process.on('exit', () => removeDaemonPid(lock.path));
  const { createLogger } = await import('../log.js');
  const logger = createLogger(settings.logLevel);
  const classic = settings.classicPort === undefined ? undefined : { host: settings.classicListen ?? DEFAULT_CLASSIC_HOST, port: settings.classicPort };
  try {
    server = await Server.create({
      ...(settings.audit ? {} : { audit: false as const }),
      auditFailure: settings.auditFailure,
      ...(settings.listen ? { host: settings.listen.host, port: settings.listen.port } : {}),
      stateDir,
      logger,
      containment: settings.containment,
      spawner: settings.spawner === 'on',
      ...(settings.fileRoots ? { fileRoots: settings.fileRoots } : {}),
      limits: {
        maxConnections: settings.maxConnections,
        maxChannels: settings.maxChannels,
        maxStartups: settings.maxStartups,
        maxStartupsPerSource: settings.maxStartupsPerSource,
        handshakeTimeoutMs: settings.handshakeTimeoutMs,
        killGraceMs: settings.killGraceMs,
        outputGraceMs: settings.outputGraceMs,
        shutdownGraceMs: settings.shutdownGraceMs,
      },
    });
    if (settings.listen) await server.listen();
    if (settings.announce && settings.listen) {
      const { startAnnouncer } = await import('../fleet/discovery.js');
      const started = server;
      await startAnnouncer({ host: started.address.address, port: started.address.port, fingerprint: started.identity.fingerprint, logger })
        .catch((err: Error) => fail(`--announce: cannot answer discovery probes on UDP ${listenText}: ${err.message}`, 1));
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`${listenText} is already in use; is another daemon running? Pick another with --listen HOST:PORT.`, 1);
    if (code === 'EACCES') fail(`Not allowed to listen on ${listenText}; ports below 1024 need root.`, 1);
    if (code === 'EADDRNOTAVAIL') fail(`Cannot listen on ${listenText}: no interface of this host has that address.`, 1);
    fail(err instanceof ShellwireError ? err.message : String(err), 1);
  }
  const running: Server = server!;
  let classicServer: ClassicServer | undefined;
  if (classic) {
    classicServer = new ClassicServer({
      token: running.token,
      host: classic.host,
      port: classic.port,
      logger,
      containers: running.containers,
      ...(running.spawner ? { spawner: running.spawner } : {}),
      audit: running.audit,
      limits: { authTimeoutMs: running.limits.handshakeTimeoutMs, killGraceMs: running.limits.killGraceMs, outputGraceMs: running.limits.outputGraceMs },
    });
    try {
      await classicServer.listen();
      running.attach(classicServer);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const where = formatTarget(classic);
      if (code === 'EADDRINUSE') fail(`${where} (--classic-port) is already in use.`, 1);
      if (code === 'EACCES') fail(`Not allowed to listen on ${where} (--classic-port); ports below 1024 need root.`, 1);
      fail(`Cannot listen on ${where} (--classic-port): ${String(err)}`, 1);
    }
  }
  // Before the banner: whoever reads it may stop us at once (a SIGTERM with no handler kills).
  let stopping = false;
  let agent: NatsAgent | undefined;
  // The agent says `gone` (watchers drop it at once) and stops taking tunnels before the server stops.
  const closeAgent = async (): Promise<void> => {
    const a = agent;
    agent = undefined;
    if (!a) return;
    await a.close().catch(() => {});
    await a.nc.close().catch(() => {});
  };
  // Shutdown finishes in bounded time whatever hangs (a stuck connection, a stuck stderr):
  // every path ends in process.exit, and the timers are unref'd so a clean stop exits sooner.
  const exitWithin = (ms: number, code: number) => setTimeout(() => process.exit(code), ms).unref();
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: killing running commands now');
      exitWithin(FORCED_EXIT_MS, 1);
      void closeAgent().then(() => running.close(0)).finally(() => process.exit(0));
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    exitWithin(running.limits.shutdownGraceMs + SHUTDOWN_SLACK_MS, 1);
    void closeAgent().then(() => running.close()).finally(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const address = settings.listen ? formatTarget({ host: running.address.address, port: running.address.port }) : null;
  process.stdout.write(
    address === null
      ? [`shellwire daemon with no TCP port (agent mode: reached through NATS only)`, `host key fingerprint: ${running.identity.fingerprint}${running.created ? ' (new identity)' : ''}`, ''].join('\n')
      : [
      `shellwire daemon listening on ${address}`,
      `host key fingerprint: ${running.identity.fingerprint}${running.created ? ' (new identity)' : ''}`,
      `access token: ${running.tokenFile}`,
      // The client finds the token by itself only in the default state dir.
      running.stateDir === defaultServerStateDir()
        ? `  same user on this machine: shellwire shell ${address}`
        : `  same user on this machine: shellwire shell --token-file ${running.tokenFile} ${address}`,
      `  elsewhere: copy the token file, then shellwire exec --token-file FILE --accept-new-host ${address} -- COMMAND`,
      ...(classicServer
        ? [`classic plaintext port on ${formatTarget({ host: classicServer.address.address, port: classicServer.address.port })}: send the token as the first line, then commands`]
        : []),
      '',
    ].join('\n'),
  );
  if (settings.nats) {
    const name = settings.name ?? defaultAgentName();
    const { startNatsAgent } = await import('../server/nats-agent-start.js');
    void startNatsAgent({ server: running, servers: settings.nats, credsFile: settings.natsCreds, prefix: settings.natsPrefix, name, labels: settings.labels ?? {}, log: logger, version: VERSION, say: (line) => process.stderr.write(`nats: ${escapeControls(line)}\n`) })
      .then((started) => {
        if (stopping) return void started.close().then(() => started.nc.close());
        agent = started;
        process.stdout.write(`nats: agent ${name} connected to nats://${started.nc.getServer()} (fingerprint ${running.identity.fingerprint})\n`);
      })
      .catch((err: unknown) => fail(`--nats: ${err instanceof Error ? err.message : String(err)}`, 1));
  }
  reload = () => {
    // After `shellwire rotate-host-key`: new connections get the new key (logged either way).
    running.reloadIdentity();
    const result = running.reloadUsers();
    if (!result.ok) warn(`users.yaml not reloaded, the old users stay in force:\n${result.error}`);
  };
}
