/**
 * What a client offers to prove who it is, in this order:
 * 1. an explicit token (`token`, `tokenFile`, `$SHELLWIRE_TOKEN`);
 * 2. keys, ordered as ssh orders them: the `identity` file (from ssh-agent if it holds it),
 *    else the default key files that ssh-agent holds, then the agent's other keys, then
 *    default key files it does not hold (`$SHELLWIRE_HOME/id_ed25519`, `id_ecdsa`, `id_rsa`,
 *    then the same names in `~/.ssh`). A passphrase-protected default key is asked for only if the first
 *    login fails (ssh asks only after the agent's keys failed) and only by `askPassphrase`;
 * 3. a password, if one was given;
 * 4. for a daemon on this machine run by this account, the daemon's own token file, so a
 *    newcomer's `shellwire serve` + `shellwire shell localhost` needs no flags. That token
 *    logs in as the daemon's account, so it is not offered when another user is named
 *    (`nobody@localhost` must log in as nobody or fail, never quietly run as the daemon).
 * One HELLO carries them (up to MAX_AUTH_ATTEMPTS); the server takes the first that works.
 */
import { existsSync, statSync } from 'node:fs';
import { BoundedFileError, KEY_FILE_LIMIT, readBoundedText } from '../auth/bounded-file.js';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, AuthenticationError, UsageError } from '../errors.js';
import { defaultServerStateDir, shellwireHome, TOKEN_FILE } from '../auth/paths.js';
import {
  defaultSignatureAlgorithm, isPrivateKeyText, parsePrivateKey, parsePublicKey, PassphraseNeededError, publicKeyOfPrivateKey, signData, type SshPrivateKey, type SshPublicKey,
} from '../auth/ssh-key.js';
import { SshAgent } from '../auth/ssh-agent.js';
import { isLoopback } from './target.js';

export interface CredentialOptions {
  token?: string;
  tokenFile?: string;
  /** Path of an OpenSSH private key (Ed25519, ECDSA or RSA; OpenSSH or PEM format). */
  identity?: string;
  password?: string;
  env?: NodeJS.ProcessEnv;
  /** The user explicitly named (`USER@host`, `user`); the local daemon token is then offered only for this account's own name. */
  user?: string;
  /** `$SHELLWIRE_HOME`: where the default key and the local daemon's token are looked for. */
  home?: string;
  /** Asked for a key's passphrase (`attempt` 1 to 3); '' gives up on that key. Without it, encrypted key files are not used. */
  askPassphrase?: (keyFile: string, attempt: number) => Promise<string>;
  /** Told what is tried and why something is skipped (`-v`). */
  debug?: (message: string) => void;
}

/** A key that can sign a login: a key file read into memory, or a key held by ssh-agent. */
export interface KeyCredential {
  publicKey: SshPublicKey;
  /** The key file, or which ssh-agent key: for `-v` and error messages. */
  source: string;
  /** The SSH-encoded signature of `data` and the algorithm it was made with. */
  sign(data: Buffer): Promise<{ algorithm: string; signature: Buffer }>;
}

/** A passphrase-protected default key, unlocked only when the first login failed. */
export interface LockedKey {
  path: string;
  unlock(): Promise<KeyCredential | null>;
}

export interface Credentials {
  /** Tokens the caller named (option, file, environment). */
  tokens: string[];
  /** The local daemon's token, found on this machine (tried last). */
  localToken: string | null;
  keys: KeyCredential[];
  lockedKeys: LockedKey[];
  password: string | null;
  /** Credentials that could not be used and why (unreachable agent, skipped key): told when the login fails. */
  notes: string[];
}

/** Default key file names, in ssh's order; `shellwire keygen -t TYPE` writes `$SHELLWIRE_HOME/id_TYPE`. */
export const DEFAULT_KEY_NAMES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** Passphrase prompts per key file before giving up on it (ssh's NumberOfPasswordPrompts). */
export const PASSPHRASE_PROMPTS = 3;

interface KeyFile {
  path: string;
  text: string;
  /** Parsed when the file is not encrypted. */
  key: SshPrivateKey | null;
  /** Known without decrypting (OpenSSH header or the .pub file), to find the key in ssh-agent. */
  publicKey: SshPublicKey | null;
  /** Why the key needs a passphrase (null when `key` is set). */
  locked: PassphraseNeededError | null;
}

interface CacheEntry {
  mtimeMs: number;
  size: number;
  file: KeyFile;
  /** The passphrase prompt's outcome, shared by concurrent connections. */
  unlocked?: Promise<SshPrivateKey | null>;
}

// Key files by path, reused while their size and mtime are unchanged: a fan-out would
// otherwise read the same file, and ask for the same passphrase, once per host.
const fileCache = new Map<string, CacheEntry>();

function readKeyFile(path: string): { file: KeyFile; entry: CacheEntry } {
  const stat = statSync(path);
  const cached = fileCache.get(path);
  if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return { file: cached.file, entry: cached };
  const text = readBoundedText(path, 'Identity file', KEY_FILE_LIMIT);
  let file: KeyFile;
  try {
    const key = parsePrivateKey(text, path);
    file = { path, text, key, publicKey: key.publicKey, locked: null };
  } catch (err) {
    if (!(err instanceof PassphraseNeededError)) throw err;
    let pubText: string | undefined;
    try {
      pubText = readBoundedText(`${path}.pub`, 'Public key file', KEY_FILE_LIMIT);
    } catch {
      // no .pub beside it: the key can still be unlocked, just not found in the agent first
    }
    file = { path, text, key: null, publicKey: publicKeyOfPrivateKey(text, path, pubText), locked: err };
  }
  const entry: CacheEntry = { mtimeMs: stat.mtimeMs, size: stat.size, file };
  fileCache.set(path, entry);
  return { file, entry };
}

/** Ask up to PASSPHRASE_PROMPTS times; null when the user gave up or never got it right. */
function unlock(file: KeyFile, entry: CacheEntry, ask: NonNullable<CredentialOptions['askPassphrase']>, note: (m: string) => void): Promise<SshPrivateKey | null> {
  entry.unlocked ??= (async () => {
    for (let attempt = 1; attempt <= PASSPHRASE_PROMPTS; attempt += 1) {
      const passphrase = await ask(file.path, attempt);
      if (passphrase === '') {
        note(`${file.path}: no passphrase given, key not used`);
        return null;
      }
      try {
        return parsePrivateKey(file.text, file.path, passphrase);
      } catch (err) {
        if (!/wrong passphrase/.test((err as Error).message)) throw err;
      }
    }
    note(`${file.path}: wrong passphrase (${PASSPHRASE_PROMPTS} tries), key not used`);
    return null;
  })();
  return entry.unlocked;
}

/** The key an identity file names when it is a public key (KEY.pub); null for anything else. */
function readPublicIdentity(path: string): SshPublicKey | null {
  let text: string;
  try {
    text = readBoundedText(path, 'Identity file', KEY_FILE_LIMIT);
  } catch {
    return null; // reported when it is read as a private key
  }
  if (isPrivateKeyText(text)) return null;
  try {
    return parsePublicKey(text, path);
  } catch {
    return null;
  }
}

function fromFile(key: SshPrivateKey, source: string): KeyCredential {
  const algorithm = defaultSignatureAlgorithm(key.publicKey.type);
  return { publicKey: key.publicKey, source, sign: async (data) => ({ algorithm, signature: signData(key, data, algorithm) }) };
}

function fromAgent(agent: SshAgent, publicKey: SshPublicKey, source: string): KeyCredential {
  return { publicKey, source, sign: (data) => agent.sign(publicKey, data) };
}

export async function resolveCredentials(host: string, options: CredentialOptions): Promise<Credentials> {
  const env = options.env ?? process.env;
  const debug = options.debug ?? (() => {});
  const notes: string[] = [];
  const note = (message: string) => {
    notes.push(message);
    debug(message);
  };
  const tokens: string[] = [];
  if (options.token) tokens.push(options.token);
  else if (options.tokenFile) {
    try {
      tokens.push(readBoundedText(options.tokenFile, 'Token file', KEY_FILE_LIMIT).trim());
    } catch (err) {
      if (err instanceof BoundedFileError) throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, err.message, { host, cause: err });
      throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `Cannot read token file ${options.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? err}.`, { host, cause: err });
    }
  } else if (env.SHELLWIRE_TOKEN) tokens.push(env.SHELLWIRE_TOKEN.trim());

  let agent: SshAgent | null = null;
  let agentKeys: SshPublicKey[] = [];
  if (env.SSH_AUTH_SOCK) {
    agent = new SshAgent(env.SSH_AUTH_SOCK);
    try {
      agentKeys = await agent.identities((why) => debug(`skipping ${why}`));
      debug(`ssh-agent at ${env.SSH_AUTH_SOCK}: ${agentKeys.length} usable key(s)`);
    } catch (err) {
      note(`${(err as Error).message} Trying other credentials.`);
      agent = null;
    }
  }
  const inAgent = (publicKey: SshPublicKey | null) => (publicKey ? agentKeys.find((k) => k.blob.equals(publicKey.blob)) : undefined);

  const keys: KeyCredential[] = [];
  const lockedKeys: LockedKey[] = [];
  const add = (credential: KeyCredential) => {
    if (!keys.some((k) => k.publicKey.blob.equals(credential.publicKey.blob))) keys.push(credential);
  };

  // `-i KEY.pub` names the key, as in ssh: ssh-agent signs with it; without the agent's copy,
  // the private key beside it (KEY) is used as `-i KEY` would.
  let identity = options.identity;
  if (identity) {
    const publicKey = readPublicIdentity(identity);
    if (publicKey) {
      const agentCopy = inAgent(publicKey);
      const privateFile = identity.endsWith('.pub') ? identity.slice(0, -'.pub'.length) : null;
      if (agentCopy && agent) {
        add(fromAgent(agent, agentCopy, `${identity} (held by ssh-agent)`));
        identity = undefined;
      } else if (privateFile && existsSync(privateFile)) {
        debug(`${identity} is a public key that ssh-agent does not hold; using the private key ${privateFile}`);
        identity = privateFile;
      } else {
        throw new AuthenticationError(
          ErrorCode.NO_CREDENTIALS,
          `${identity} is a public key (${publicKey.fingerprint}) and ${agent ? 'ssh-agent does not hold it' : 'no ssh-agent is reachable (SSH_AUTH_SOCK)'}: ` +
            `load it into the agent (ssh-add ${privateFile ?? 'KEY'}), or give the private key file instead.`,
          { host },
        );
      }
    }
  }
  if (identity) {
    let read;
    try {
      read = readKeyFile(identity);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new AuthenticationError(ErrorCode.NO_CREDENTIALS, `Cannot read identity file ${identity}: ${(err as NodeJS.ErrnoException).code ?? err}.`, { host, cause: err });
    }
    const { file, entry } = read;
    const agentCopy = inAgent(file.publicKey);
    if (agentCopy && agent) add(fromAgent(agent, agentCopy, `${file.path} (held by ssh-agent)`));
    else if (file.key) add(fromFile(file.key, file.path));
    else if (!options.askPassphrase) throw file.locked!;
    else {
      const key = await unlock(file, entry, options.askPassphrase, note);
      if (key) add(fromFile(key, file.path));
    }
  }

  // Default key files, only when no identity was named (as ssh's IdentityFile replaces them).
  const defaults: { file: KeyFile; entry: CacheEntry }[] = [];
  const home = options.home ?? shellwireHome(env);
  if (!options.identity) {
    const sshDir = join(env.HOME || homedir(), '.ssh');
    for (const path of DEFAULT_KEY_NAMES.map((name) => join(home, name)).concat(DEFAULT_KEY_NAMES.map((name) => join(sshDir, name)))) {
      try {
        defaults.push(readKeyFile(path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') note(`skipping default key ${path}: ${(err as Error).message}`);
      }
    }
  }
  for (const { file } of defaults) {
    const agentCopy = inAgent(file.publicKey);
    if (agentCopy && agent) add(fromAgent(agent, agentCopy, `${file.path} (held by ssh-agent)`));
  }
  for (const key of agentKeys) if (agent) add(fromAgent(agent, key, `ssh-agent key ${key.comment || key.fingerprint}`));
  for (const { file, entry } of defaults) {
    if (inAgent(file.publicKey)) continue;
    if (file.key) add(fromFile(file.key, file.path));
    else if (options.askPassphrase) {
      const ask = options.askPassphrase;
      lockedKeys.push({ path: file.path, unlock: async () => {
        const key = await unlock(file, entry, ask, note);
        return key ? fromFile(key, file.path) : null;
      } });
    } else note(`skipping ${file.path}: it is passphrase-protected and there is no terminal to ask for the passphrase on (add it to ssh-agent: ssh-add ${file.path})`);
  }

  const localTokenFile = join(defaultServerStateDir({ ...env, SHELLWIRE_HOME: home }), TOKEN_FILE);
  let localToken: string | null = null;
  const ownName = env.USER || userInfo().username;
  const namedOther = options.user !== undefined && options.user !== ownName;
  if (tokens.length === 0 && isLoopback(host) && !namedOther) {
    try {
      localToken = readBoundedText(localTokenFile, 'Token file', KEY_FILE_LIMIT).trim();
    } catch {
      // not our daemon, or not readable: other credentials may still work
    }
  }
  const password = options.password ?? null;
  if (tokens.length === 0 && localToken === null && keys.length === 0 && lockedKeys.length === 0 && password === null) {
    throw new AuthenticationError(
      ErrorCode.NO_CREDENTIALS,
      `No credentials for ${host}: no key in ssh-agent${env.SSH_AUTH_SOCK ? '' : ' (SSH_AUTH_SOCK is not set)'}, no ${DEFAULT_KEY_NAMES.join(', ')} in ${home} or ${join(env.HOME || homedir(), '.ssh')}, no token` +
        (namedOther ? ` (the daemon's own token logs in as its account, so it is not used for user "${options.user}")` : isLoopback(host) ? ` (nor the local daemon's in ${localTokenFile})` : '') + '.' +
        (notes.length > 0 ? ` Not used: ${notes.join('; ')}` : ''),
      { host, hint: 'Give a key (the identity option, ssh-agent, or a default key file) or a token (the token or tokenFile option, or SHELLWIRE_TOKEN); a daemon keeps its own token in <state-dir>/token.' },
    );
  }
  return { tokens, localToken, keys, lockedKeys, password, notes };
}
