/** `shellwire serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { writeDaemonPid, removeDaemonPid } from '../auth/daemon-pid.js';
import { isIP } from 'node:net';
import { Server, DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { ClassicServer, DEFAULT_CLASSIC_HOST } from '../server/classic-server.js';
import { DEFAULT_LIMITS } from '../server/limits.js';
import { parseTarget, formatTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { fail } from './common.js';
import { keepRunningOnBrokenPipe } from './stdio.js';
import { AUDIT_FAILURE_ACTIONS, type AuditFailureAction } from '../audit/daemon-audit.js';
import { defaultServerStateDir } from '../auth/paths.js';

interface ServeFlags {
  listen: string;
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
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the shellwire daemon (TLS 1.3; makes its key, certificate and access token on first start)')
    .option('--listen <addr>', 'HOST:PORT or [IPv6]:PORT to listen on', `${DEFAULT_HOST}:${DEFAULT_PORT}`)
    .option('--state-dir <dir>', 'where the host key, certificate and token live (default $SHELLWIRE_HOME/server)')
    .option('--max-connections <n>', 'concurrent client connections', String(DEFAULT_LIMITS.maxConnections))
    .option('--max-channels <n>', 'concurrent commands per connection', String(DEFAULT_LIMITS.maxChannels))
    .option('--max-startups <start:rate:full>', 'unauthenticated connections, as sshd\'s MaxStartups: past START the oldest silent one is dropped with RATE% chance (100% at FULL), and handshake deadlines shrink', formatStartups(DEFAULT_LIMITS.maxStartups))
    .option('--max-startups-per-source <n>', 'unauthenticated connections from one address, or "none"; more are dropped at once (one address may be many users: NAT, a bastion)', 'none')
    .option('--handshake-timeout <seconds>', 'time a client has to authenticate', String(DEFAULT_LIMITS.handshakeTimeoutMs / 1000))
    .option('--kill-grace <seconds>', 'SIGTERM-to-SIGKILL delay for closed, disconnected or timed-out commands', String(DEFAULT_LIMITS.killGraceMs / 1000))
    .option('--output-grace <seconds>', 'after a command exits, how long what it left running may hold its output open before the channel ends anyway', String(DEFAULT_LIMITS.outputGraceMs / 1000))
    .option('--shutdown-grace <seconds>', 'on SIGTERM, how long running commands may finish before they are killed', String(DEFAULT_LIMITS.shutdownGraceMs / 1000))
    .option('--classic-port <port>', 'also speak the classic plaintext protocol (nc, the socket tutorial\'s client) on PORT; off by default')
    .option('--classic-listen <addr>', `address for --classic-port (default ${DEFAULT_CLASSIC_HOST}; plaintext, so think twice beyond loopback)`)
    .option('--announce', 'answer UDP discovery probes (same port number) with name, port and fingerprint; rate-limited')
    .option('--file-root <dir>', 'a directory file transfers with the daemon token may use (repeatable; default: any path, as its commands may go anywhere)', (dir: string, dirs: string[] | undefined) => [...(dirs ?? []), dir])
    .option('--containment <mode>', 'auto (a cgroup per command where cgroup v2 is writable), cgroup, or process-group (setsid escapes); see docs/processes.md', 'auto')
    .option('--no-audit', 'do not keep the audit log (<state-dir>/audit.sqlite); for benchmarks and throwaway daemons')
    .option('--audit-failure <action>', 'while the audit log cannot be written (disk full, I/O error): "refuse" new commands, or "continue" serving (rows wait in memory; a gap row marks the outage)', 'refuse')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (JSON logs on stderr)', process.env.SHELLWIRE_LOG_LEVEL ?? 'info')
    .action(async (flags: ServeFlags) => runServe(flags));
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} takes a positive whole number, got "${text}".`, 2);
  return n;
}

function formatStartups(s: { start: number; rate: number; full: number }): string {
  return `${s.start}:${s.rate}:${s.full}`;
}

/** `START:RATE:FULL` (sshd's form), or one number N meaning N:100:N. */
function parseStartups(text: string): { start: number; rate: number; full: number } {
  const parts = text.split(':').map(Number);
  const [start, rate, full] = parts.length === 1 ? [parts[0]!, 100, parts[0]!] : parts;
  const whole = (n: number | undefined) => n !== undefined && Number.isInteger(n) && n >= 0;
  if ((parts.length !== 1 && parts.length !== 3) || !whole(start) || !whole(rate) || !whole(full) || start! < 1 || rate! > 100 || full! < start!) {
    fail(`--max-startups takes START:RATE:FULL (e.g. 10:30:100; RATE a percentage, FULL at least START) or one number, got "${text}".`, 2);
  }
  return { start: start!, rate: rate!, full: full! };
}

function seconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) fail(`${flag} takes a number of seconds, got "${text}".`, 2);
  return Math.round(n * 1000);
}

/** After a second SIGTERM/SIGINT, how long killing the running commands may take before the daemon exits anyway. */
const FORCED_EXIT_MS = 2_000;
/** After the shutdown grace, how long closing may still take (goodbyes, process-group kills, the audit flush). */
const SHUTDOWN_SLACK_MS = 5_000;

async function runServe(flags: ServeFlags): Promise<void> {
  // Nobody reading the banner or the logs is no reason to stop serving (issue 8 item 16).
  keepRunningOnBrokenPipe();
  let listen;
  try {
    listen = parseTarget(flags.listen, DEFAULT_PORT, { allowPortZero: true });
  } catch (err) {
    fail((err as Error).message, 2);
  }
  const classic = classicAddress(flags);
  if (!(AUDIT_FAILURE_ACTIONS as readonly string[]).includes(flags.auditFailure)) {
    fail(`--audit-failure takes ${AUDIT_FAILURE_ACTIONS.join(' or ')}, got "${flags.auditFailure}".`, 2);
  }
  if (!['auto', 'cgroup', 'process-group'].includes(flags.containment)) fail(`--containment takes auto, cgroup or process-group, got "${flags.containment}".`, 2);
  const { createLogger } = await import('../log.js');
  const logger = createLogger(flags.logLevel);
  let server: Server;
  try {
    server = await Server.create({
      ...(flags.audit ? {} : { audit: false as const }),
      auditFailure: flags.auditFailure as AuditFailureAction,
      host: listen.host,
      port: listen.port,
      ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
      logger,
      containment: flags.containment as 'auto' | 'cgroup' | 'process-group',
      ...(flags.fileRoot ? { fileRoots: flags.fileRoot.map((dir) => resolve(dir)) } : {}),
      limits: {
        maxConnections: positiveInt(flags.maxConnections, '--max-connections'),
        maxChannels: positiveInt(flags.maxChannels, '--max-channels'),
        maxStartups: parseStartups(flags.maxStartups),
        maxStartupsPerSource: flags.maxStartupsPerSource === 'none' ? Number.POSITIVE_INFINITY : positiveInt(flags.maxStartupsPerSource, '--max-startups-per-source'),
        handshakeTimeoutMs: seconds(flags.handshakeTimeout, '--handshake-timeout'),
        killGraceMs: seconds(flags.killGrace, '--kill-grace'),
        outputGraceMs: seconds(flags.outputGrace, '--output-grace'),
        shutdownGraceMs: seconds(flags.shutdownGrace, '--shutdown-grace'),
      },
    });
    await server.listen();
    if (flags.announce) {
      const { startAnnouncer } = await import('../fleet/discovery.js');
      await startAnnouncer({ host: server.address.address, port: server.address.port, fingerprint: server.identity.fingerprint, logger })
        .catch((err: Error) => fail(`--announce: cannot answer discovery probes on UDP ${flags.listen}: ${err.message}`, 1));
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`${flags.listen} is already in use; is another daemon running? Pick another with --listen HOST:PORT.`, 1);
    if (code === 'EACCES') fail(`Not allowed to listen on ${flags.listen}; ports below 1024 need root.`, 1);
    fail(err instanceof ShellwireError ? err.message : String(err), 1);
  }
  let classicServer: ClassicServer | undefined;
  if (classic) {
    classicServer = new ClassicServer({
      token: server.token,
      host: classic.host,
      port: classic.port,
      logger,
      containers: server.containers,
      audit: server.audit,
      limits: { authTimeoutMs: server.limits.handshakeTimeoutMs, killGraceMs: server.limits.killGraceMs, outputGraceMs: server.limits.outputGraceMs },
    });
    try {
      await classicServer.listen();
      server.attach(classicServer);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const where = formatTarget(classic);
      if (code === 'EADDRINUSE') fail(`${where} (--classic-port) is already in use.`, 1);
      if (code === 'EACCES') fail(`Not allowed to listen on ${where} (--classic-port); ports below 1024 need root.`, 1);
      fail(`Cannot listen on ${where} (--classic-port): ${String(err)}`, 1);
    }
  }
  const address = formatTarget({ host: server.address.address, port: server.address.port });
  process.stdout.write(
    [
      `shellwire daemon listening on ${address}`,
      `host key fingerprint: ${server.identity.fingerprint}${server.created ? ' (new identity)' : ''}`,
      `access token: ${server.tokenFile}`,
      // The client finds the token by itself only in the default state dir.
      server.stateDir === defaultServerStateDir()
        ? `  same user on this machine: shellwire shell ${address}`
        : `  same user on this machine: shellwire shell --token-file ${server.tokenFile} ${address}`,
      `  elsewhere: copy the token file, then shellwire exec --token-file FILE --accept-new-host ${address} -- COMMAND`,
      ...(classicServer
        ? [`classic plaintext port on ${formatTarget({ host: classicServer.address.address, port: classicServer.address.port })}: send the token as the first line, then commands`]
        : []),
      '',
    ].join('\n'),
  );
  // The pid file lets `shellwire user/key/token` ask this daemon to reload its users.
  // It holds our start time too, so a stale file never gets another process signalled.
  const pidFile = writeDaemonPid(server.stateDir);
  process.on('exit', () => removeDaemonPid(pidFile));
  process.on('SIGHUP', () => {
    const result = server.reloadUsers();
    if (!result.ok) process.stderr.write(`shellwire: users.yaml not reloaded, the old users stay in force:\n${result.error}\n`);
  });
  let stopping = false;
  // Shutdown finishes in bounded time whatever hangs (a stuck connection, a stuck stderr):
  // every path ends in process.exit, and the timers are unref'd so a clean stop exits sooner.
  const exitWithin = (ms: number, code: number) => setTimeout(() => process.exit(code), ms).unref();
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: killing running commands now');
      exitWithin(FORCED_EXIT_MS, 1);
      void server.close(0).finally(() => process.exit(0));
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    exitWithin(server.limits.shutdownGraceMs + SHUTDOWN_SLACK_MS, 1);
    void server.close().finally(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `--classic-port`/`--classic-listen` → where to listen, or undefined when off (the default). */
function classicAddress(flags: ServeFlags): { host: string; port: number } | undefined {
  if (flags.classicPort === undefined) {
    if (flags.classicListen !== undefined) fail('--classic-listen needs --classic-port.', 2);
    return undefined;
  }
  const port = Number(flags.classicPort);
  if (!/^\d+$/.test(flags.classicPort) || port < 1 || port > 65535) fail(`--classic-port takes a port from 1 to 65535, got "${flags.classicPort}".`, 2);
  const text = flags.classicListen ?? DEFAULT_CLASSIC_HOST;
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) {
    fail(`--classic-listen takes an address such as 127.0.0.1, 0.0.0.0 or ::1, got "${text}" (the port goes in --classic-port).`, 2);
  }
  return { host, port };
}
