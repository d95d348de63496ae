/** What every connecting command shares: credential and host-key flags, error reporting, exit codes. */
import type { Command } from 'commander';
import { connect, type ConnectOptions } from '../client/connect.js';
import type { Connection } from '../client/connection.js';
import { parseTarget } from '../client/target.js';
import { ShellwireError, HostVerificationError, ErrorCode } from '../errors.js';
import { knownHostsPath } from '../auth/paths.js';
import { askYesNo, readSecretLine } from './prompt.js';
import { terminate, terminationExitCode } from './lifecycle.js';

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
    .option('--connect-timeout <seconds>', 'give up connecting after this many seconds', '10');
}

export async function connectFromFlags(targetText: string, flags: ConnectFlags): Promise<Connection> {
  const target = parseTarget(targetText);
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  const options: ConnectOptions = {
    hostKeyPolicy: flags.acceptNewHost ? 'accept-new' : interactive ? 'ask' : 'strict',
    confirmHost: askAboutHost,
    onHostKeyAdded: reportHostAdded,
    connectTimeoutMs: parseSeconds(flags.connectTimeout ?? '10', '--connect-timeout') * 1000,
  };
  if (flags.tokenFile) options.tokenFile = flags.tokenFile;
  if (flags.identity) options.identity = flags.identity;
  if (flags.password) options.password = process.env.SHELLWIRE_PASSWORD ?? (await readSecretLine(`${target.user ?? process.env.USER ?? ''}@${target.host}'s password: `));
  return connect(target, options);
}

async function askAboutHost(host: string, fingerprint: string): Promise<boolean> {
  // askYesNo: a piped answer is one line (its \r stripped), and the end of input means "no".
  return askYesNo(
    `The authenticity of host '${host}' can't be established.\nIts key fingerprint is ${fingerprint}.\nAre you sure you want to continue connecting (yes/no)? `,
    { onInterrupt: () => terminate('SIGINT') },
  );
}

export function parseSeconds(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) fail(`${flag} takes a positive number of seconds, got "${text}".`, 2);
  return value;
}

/** Print a one-line error (the full text for host-key warnings) and exit. */
export function fail(message: string, code: number = EXIT_CONNECTION_FAILURE): never {
  // Ending on a signal: the error is the connection we destroyed ourselves; say nothing.
  const terminating = terminationExitCode();
  if (terminating !== null) process.exit(terminating);
  process.stderr.write(`shellwire: ${message}\n`);
  process.exit(code);
}

/** ssh's note after a first contact was trusted (answered yes, or --accept-new-host). */
export function reportHostAdded(host: string): void {
  process.stderr.write(`Warning: Permanently added '${host}' to the list of known hosts.\n`);
}

/**
 * The library's errors name its options (`hostKeyPolicy: 'accept-new'`, `identity`); a CLI
 * user needs the flag or command instead, so each code gets its CLI hint here.
 */
function cliHint(err: ShellwireError): string | null {
  const host = err.host !== undefined ? shellQuote(err.host) : 'HOST';
  switch (err.code) {
    case ErrorCode.HOST_KEY_UNKNOWN:
      return `Once the fingerprint is checked, connect again with --accept-new-host, or pin it first: shellwire known-hosts add ${host}`;
    case ErrorCode.HOST_KEY_CHANGED: {
      const file = err instanceof HostVerificationError ? err.knownHostsFile : undefined;
      if (file === undefined) return null;
      const fileFlag = file === knownHostsPath() ? '' : ` -f ${shellQuote(file)}`;
      return `If you know the key changed, remove the old one with:\n  shellwire known-hosts remove${fileFlag} ${host}`;
    }
    case ErrorCode.AUTH_FAILED:
      return 'Check the user (USER@HOST), the key (-i KEYFILE) or the token (--token-file FILE or SHELLWIRE_TOKEN).';
    case ErrorCode.NO_CREDENTIALS:
      return 'Use a key (-i KEYFILE; make one with: shellwire keygen) or a token (--token-file FILE or SHELLWIRE_TOKEN).';
    default:
      return null;
  }
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./[\]-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

export function reportError(err: unknown): never {
  if (err instanceof ShellwireError) {
    const hint = cliHint(err);
    // Host-key banners stand alone, as ssh prints them; other errors are one line with their code.
    if (err instanceof HostVerificationError && err.code !== ErrorCode.TLS) fail(hint ? `${err.message}\n${hint}` : err.message);
    fail(`${err.message}${hint ? ` ${hint}` : ''} [${err.code}]`);
  }
  fail(err instanceof Error ? err.message : String(err), 1);
}
