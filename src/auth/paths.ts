/** Where shellwire keeps its state: `$SHELLWIRE_HOME` (default `~/.shellwire`). */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function shellwireHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.SHELLWIRE_HOME && env.SHELLWIRE_HOME.length > 0 ? env.SHELLWIRE_HOME : join(homedir(), '.shellwire');
}

/** The daemon's state dir when `--state-dir` is not given. */
export function defaultServerStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(shellwireHome(env), 'server');
}

export function knownHostsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(shellwireHome(env), 'known_hosts');
}

export const TOKEN_FILE = 'token';
export const HOST_KEY_FILE = 'host-key.pem';
export const HOST_CERT_FILE = 'host-cert.pem';
