/**
 * What a client offers to prove who it is, in this order:
 * 1. an explicit token (`token`, `tokenFile`, `$SHELLWIRE_TOKEN`);
 * 2. an Ed25519 identity: `identity`, else `$SHELLWIRE_HOME/id_ed25519`, else `~/.ssh/id_ed25519`;
 * 3. a password, if one was given;
 * 4. for a daemon on this machine run by this account, the daemon's own token file, so a
 *    newcomer's `shellwire serve` + `shellwire shell localhost` needs no flags. That token
 *    logs in as the daemon's account, so it is not offered when another user is named
 *    (`nobody@localhost` must log in as nobody or fail, never quietly run as the daemon).
 * One HELLO carries them all; the server takes the first that works.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, AuthenticationError, UsageError } from '../errors.js';
import { defaultServerStateDir, shellwireHome, TOKEN_FILE } from '../auth/paths.js';
import { parsePrivateKey, type SshPrivateKey } from '../auth/ssh-key.js';
import { isLoopback } from './target.js';

export interface CredentialOptions {
  token?: string;
  tokenFile?: string;
  /** Path of an OpenSSH Ed25519 private key (unencrypted). */
  identity?: string;
  password?: string;
  env?: NodeJS.ProcessEnv;
  /** The user explicitly named (`USER@host`, `user`); the local daemon token is then offered only for this account's own name. */
  user?: string;
}

export interface Credentials {
  /** Tokens the caller named (option, file, environment). */
  tokens: string[];
  /** The local daemon's token, found on this machine (tried last). */
  localToken: string | null;
  identity: SshPrivateKey | null;
  password: string | null;
}

// Parsed key files by path, reused while their size and mtime are unchanged: a fan-out
// would otherwise read and parse the same key once per host.
const keyCache = new Map<string, { mtimeMs: number; size: number; key: SshPrivateKey }>();

function readPrivateKey(path: string): SshPrivateKey {
  const stat = statSync(path);
  const cached = keyCache.get(path);
  if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.key;
  const key = parsePrivateKey(readFileSync(path, 'utf8'), path);
  keyCache.set(path, { mtimeMs: stat.mtimeMs, size: stat.size, key });
  return key;
}

export function resolveCredentials(host: string, options: CredentialOptions): Credentials {
  const env = options.env ?? process.env;
  const tokens: string[] = [];
  if (options.token) tokens.push(options.token);
  else if (options.tokenFile) {
    try {
      tokens.push(readFileSync(options.tokenFile, 'utf8').trim());
    } catch (err) {
      throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `Cannot read token file ${options.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? err}.`, { host, cause: err });
    }
  } else if (env.SHELLWIRE_TOKEN) tokens.push(env.SHELLWIRE_TOKEN.trim());

  let identity: SshPrivateKey | null = null;
  if (options.identity) {
    try {
      identity = readPrivateKey(options.identity);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `Cannot read identity file ${options.identity}: ${(err as NodeJS.ErrnoException).code ?? err}.`, { host, cause: err });
    }
  } else {
    for (const path of [join(shellwireHome(env), 'id_ed25519'), join(env.HOME || homedir(), '.ssh', 'id_ed25519')]) {
      try {
        identity = readPrivateKey(path);
        break;
      } catch (err) {
        // A default key that is missing, encrypted or of another type is simply not offered.
        if (!(err instanceof UsageError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
    }
  }

  const localTokenFile = join(defaultServerStateDir(env), TOKEN_FILE);
  let localToken: string | null = null;
  const ownName = env.USER || userInfo().username;
  const namedOther = options.user !== undefined && options.user !== ownName;
  if (tokens.length === 0 && isLoopback(host) && !namedOther) {
    try {
      localToken = readFileSync(localTokenFile, 'utf8').trim();
    } catch {
      // not our daemon, or not readable: other credentials may still work
    }
  }
  const password = options.password ?? null;
  if (tokens.length === 0 && localToken === null && !identity && password === null) {
    throw new AuthenticationError(
      ErrorCode.NO_CREDENTIALS,
      `No credentials for ${host}. Give a key (the identity option, or a key in ${join(shellwireHome(env), 'id_ed25519')}), ` +
        `or a token (the token or tokenFile option, or SHELLWIRE_TOKEN); the daemon keeps its own token in <state-dir>/token` +
        (namedOther ? ` (it logs in as the daemon's account, so it is not used for user "${options.user}").` : isLoopback(host) ? ` (looked in ${localTokenFile}).` : '.'),
      { host },
    );
  }
  return { tokens, localToken, identity, password };
}
