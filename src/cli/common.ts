/** What every connecting command shares: credential and host-key flags, error reporting, exit codes. */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { connect, type ConnectOptions } from '../client/connect.js';
import type { Connection } from '../client/connection.js';
import { parseTarget } from '../client/target.js';
import { ShellwireError, HostVerificationError } from '../errors.js';
import { readSecretLine } from './prompt.js';
import { terminate, terminationExitCode } from './lifecycle.js';
import { parseDuration, parseSize, durationForms, sizeForms, type DurationUnit } from './units.js';

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
}

export function addConnectFlags(command: Command): Command {
  return command
    .option('-i, --identity <keyfile>', 'OpenSSH Ed25519 private key (default $SHELLWIRE_HOME/id_ed25519, then ~/.ssh/id_ed25519)')
    .option('--password', 'log in with a password (asked on the terminal, or read from stdin\'s first line)')
    .option('--token-file <file>', 'read the access token from FILE (else $SHELLWIRE_TOKEN, else the local daemon\'s token)')
    .option('--accept-new-host', 'trust and remember a host not yet in known_hosts (changed keys are still refused)')
    .option('--connect-timeout <duration>', 'give up connecting after this long (seconds, or 500ms, 1m)', '10');
}

export async function connectFromFlags(targetText: string, flags: ConnectFlags): Promise<Connection> {
  const target = parseTarget(targetText);
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  const options: ConnectOptions = {
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : interactive ? 'ask' : 'strict',
    confirmHost: askAboutHost,
    connectTimeoutMs: parseSeconds(flags.connectTimeout ?? '10', '--connect-timeout') * 1000,
  };
  if (flags.tokenFile) options.tokenFile = flags.tokenFile;
  if (flags.identity) options.identity = flags.identity;
  if (flags.password) options.password = process.env.SHELLWIRE_PASSWORD ?? (await readSecretLine(`${target.user ?? process.env.USER ?? ''}@${target.host}'s password: `));
  return connect(target, options);
}

async function askAboutHost(host: string, fingerprint: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // On a terminal readline takes Ctrl-C as a key: without this it would only pause.
  rl.on('SIGINT', () => terminate('SIGINT'));
  try {
    const answer = await new Promise<string>((resolve) =>
      rl.question(
        `The authenticity of host '${host}' can't be established.\nIts key fingerprint is ${fingerprint}.\nAre you sure you want to continue connecting (yes/no)? `,
        resolve,
      ),
    );
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
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
  process.stderr.write(`shellwire: ${message}\n`);
  process.exit(code);
}

export function reportError(err: unknown): never {
  if (err instanceof HostVerificationError) fail(err.message);
  if (err instanceof ShellwireError) fail(`${err.message} [${err.code}]`);
  fail(err instanceof Error ? err.message : String(err), 1);
}
