/** `shellwire serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully. */
import type { Command } from 'commander';
import { Server, DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { DEFAULT_LIMITS } from '../server/limits.js';
import { parseTarget, formatTarget } from '../client/target.js';
import { ShellwireError } from '../errors.js';
import { fail } from './common.js';

interface ServeFlags {
  listen: string;
  stateDir?: string;
  maxConnections: string;
  maxChannels: string;
  handshakeTimeout: string;
  killGrace: string;
  shutdownGrace: string;
  logLevel: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the shellwire daemon (TLS 1.3; makes its key, certificate and access token on first start)')
    .option('--listen <addr>', 'HOST:PORT or [IPv6]:PORT to listen on', `${DEFAULT_HOST}:${DEFAULT_PORT}`)
    .option('--state-dir <dir>', 'where the host key, certificate and token live (default $SHELLWIRE_HOME/server)')
    .option('--max-connections <n>', 'concurrent client connections', String(DEFAULT_LIMITS.maxConnections))
    .option('--max-channels <n>', 'concurrent commands per connection', String(DEFAULT_LIMITS.maxChannels))
    .option('--handshake-timeout <seconds>', 'time a client has to authenticate', String(DEFAULT_LIMITS.handshakeTimeoutMs / 1000))
    .option('--kill-grace <seconds>', 'SIGTERM-to-SIGKILL delay for closed, disconnected or timed-out commands', String(DEFAULT_LIMITS.killGraceMs / 1000))
    .option('--shutdown-grace <seconds>', 'on SIGTERM, how long running commands may finish before they are killed', String(DEFAULT_LIMITS.shutdownGraceMs / 1000))
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (JSON logs on stderr)', process.env.SHELLWIRE_LOG_LEVEL ?? 'info')
    .action(async (flags: ServeFlags) => runServe(flags));
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} takes a positive whole number, got "${text}".`, 2);
  return n;
}

function seconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) fail(`${flag} takes a number of seconds, got "${text}".`, 2);
  return Math.round(n * 1000);
}

async function runServe(flags: ServeFlags): Promise<void> {
  let listen;
  try {
    listen = parseTarget(flags.listen);
  } catch (err) {
    fail((err as Error).message, 2);
  }
  const { createLogger } = await import('../log.js');
  const logger = createLogger(flags.logLevel);
  let server: Server;
  try {
    server = await Server.create({
      host: listen.host,
      port: listen.port,
      ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
      logger,
      limits: {
        maxConnections: positiveInt(flags.maxConnections, '--max-connections'),
        maxChannels: positiveInt(flags.maxChannels, '--max-channels'),
        handshakeTimeoutMs: seconds(flags.handshakeTimeout, '--handshake-timeout'),
        killGraceMs: seconds(flags.killGrace, '--kill-grace'),
        shutdownGraceMs: seconds(flags.shutdownGrace, '--shutdown-grace'),
      },
    });
    await server.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') fail(`${flags.listen} is already in use; is another daemon running? Pick another with --listen HOST:PORT.`, 1);
    if (code === 'EACCES') fail(`Not allowed to listen on ${flags.listen}; ports below 1024 need root.`, 1);
    fail(err instanceof ShellwireError ? err.message : String(err), 1);
  }
  const address = formatTarget({ host: server.address.address, port: server.address.port });
  process.stdout.write(
    [
      `shellwire daemon listening on ${address}`,
      `host key fingerprint: ${server.identity.fingerprint}${server.created ? ' (new identity)' : ''}`,
      `access token: ${server.tokenFile}`,
      `  same user on this machine: shellwire shell ${address}`,
      `  elsewhere: copy the token file, then shellwire exec --token-file FILE --accept-new-host ${address} -- COMMAND`,
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: killing running commands now');
      void server.close(0).then(() => process.exit(0));
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    void server.close().then(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
