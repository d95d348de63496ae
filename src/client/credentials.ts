/**
 * Finding the token to offer: explicit option, token file, `SHELLWIRE_TOKEN`, and — for
 * a daemon on this machine run by this account — the daemon's own token file, so a
 * newcomer's `shellwire serve` + `shellwire shell localhost` needs no flags.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, AuthenticationError } from '../errors.js';
import { defaultServerStateDir, TOKEN_FILE } from '../auth/paths.js';
import { isLoopback } from './target.js';

export interface CredentialOptions {
  token?: string;
  tokenFile?: string;
  env?: NodeJS.ProcessEnv;
}

export function resolveToken(host: string, options: CredentialOptions): string {
  const env = options.env ?? process.env;
  if (options.token) return options.token;
  if (options.tokenFile) {
    try {
      return readFileSync(options.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `Cannot read token file ${options.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? err}.`, { host, cause: err });
    }
  }
  if (env.SHELLWIRE_TOKEN) return env.SHELLWIRE_TOKEN.trim();
  const localTokenFile = join(defaultServerStateDir(env), TOKEN_FILE);
  if (isLoopback(host)) {
    try {
      return readFileSync(localTokenFile, 'utf8').trim();
    } catch {
      // fall through to the error below
    }
  }
  throw new AuthenticationError(
    ErrorCode.NO_CREDENTIALS,
    `No access token for ${host}. Pass --token-file FILE or set SHELLWIRE_TOKEN; the daemon keeps its token in <state-dir>/token` +
      (isLoopback(host) ? ` (looked in ${localTokenFile}).` : '.'),
    { host },
  );
}
