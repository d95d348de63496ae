/**
 * Editing users.yaml for the `user`, `key` and `token` commands: comments and order are
 * kept (yaml's Document API), the result is checked with the same validator the daemon
 * uses before it is written (atomically, 0600), and the running daemon is told to reload.
 */
import { existsSync, statSync } from 'node:fs';
import { CONFIG_FILE_LIMIT, readBoundedText } from './bounded-file.js';
import { createHash } from 'node:crypto';
import { parseDocument, visit, type Document } from 'yaml';
import { ErrorCode, UsageError } from '../errors.js';
import { fieldName, parseUsersConfig, usersConfigPath, USER_NAME, UsersConfigError, type UsersConfig, type UsersConfigOptions } from './users-config.js';
import { parsePublicKey } from './ssh-key.js';
import { writeSecretFile } from './secret-file.js';
import { generateToken } from './token.js';
import { DAEMON_PID_FILE, signalDaemon } from './daemon-pid.js';

export { DAEMON_PID_FILE };

const HEADER = `# shellwire users and policy (see README "Users and policy").
# Edit with: shellwire user|key|token …  — or by hand, then: kill -HUP $(cat daemon.pid)
`;

/**
 * The state dir must exist: a mistyped `--state-dir` must not quietly show "no users" or
 * start a users.yaml no daemon reads. `serve` creates it on its first start.
 */
export function requireStateDir(stateDir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(stateDir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UsageError(ErrorCode.STATE_DIR, `Cannot use the state dir ${stateDir}: ${(err as Error).message}`, { cause: err });
    isDir = false;
  }
  if (!isDir) {
    throw new UsageError(
      ErrorCode.STATE_DIR,
      `No daemon or gateway state dir at ${stateDir}. Pass the running daemon's (or gateway's) --state-dir, or start it once (shellwire serve, shellwire gateway) to create it.`,
    );
  }
}

function load(stateDir: string): Document {
  requireStateDir(stateDir);
  const path = usersConfigPath(stateDir);
  const text = existsSync(path) ? readBoundedText(path, 'users.yaml', CONFIG_FILE_LIMIT) : HEADER + 'users: {}\n';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new UsageError(ErrorCode.BAD_CONFIG, `${path}: ${doc.errors[0]!.message}`);
  if (!doc.has('users') || doc.get('users') === null) doc.set('users', doc.createNode({}));
  return doc;
}

/**
 * `options.gateway`: the file is a gateway's (shellwire gateway), checked by the gateway's
 * rules (operators' `hosts`, `as`, `record`), as the gateway itself loads it.
 */
function save(stateDir: string, doc: Document, options: UsersConfigOptions = {}): UsersConfig {
  const path = usersConfigPath(stateDir);
  // Block style reads best; only empty collections stay in flow style ({} / []).
  visit(doc, {
    Map: (_, node) => {
      node.flow = node.items.length === 0;
    },
    Seq: (_, node) => {
      node.flow = node.items.length === 0;
    },
  });
  const text = doc.toString({ lineWidth: 0 });
  const config = parseUsersConfig(text, path, options); // throws with line numbers before anything is written
  writeSecretFile(path, text);
  return config;
}

function requireUser(doc: Document, name: string): void {
  if (!doc.hasIn(['users', name])) throw new UsageError(ErrorCode.BAD_CONFIG, `No user "${name}"; add it with: shellwire user add ${name}`);
}

/** What `shellwire user add` sets; each maps to one users.yaml key (docs/policy.md). */
export interface NewUser {
  keys?: string[];
  runAs?: string;
  allowRoot?: boolean;
  home?: string;
  channels?: string[];
  /** commands.allow rules */
  allow?: string[];
  /** commands.deny rules */
  deny?: string[];
  fileRoots?: string[];
}

/** users.yaml key → the `shellwire user add` flag that sets it, for refusals. */
export const USER_ADD_FLAGS: Readonly<Record<string, string>> = {
  runAs: '--run-as',
  allowRoot: '--allow-root',
  home: '--home',
  channels: '--channels',
  commands: '--allow/--deny',
  fileRoots: '--file-root',
  keys: '--key',
};

/** Refuse a name users.yaml cannot hold before anything is written. */
export function checkUserName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw new UsageError(
      ErrorCode.BAD_CONFIG,
      `${JSON.stringify(name)} is not a valid user name (NAME in shellwire user add NAME): letters, digits, "_", "." and "-", up to 32 characters, starting with a letter or "_".`,
    );
  }
}

export function addUser(stateDir: string, name: string, options: NewUser, kind: UsersConfigOptions = {}): UsersConfig {
  checkUserName(name);
  const doc = load(stateDir);
  if (doc.hasIn(['users', name])) throw new UsageError(ErrorCode.BAD_CONFIG, `User "${name}" already exists; use: shellwire key add ${name} PUBKEYFILE`);
  const entry: Record<string, unknown> = {};
  if (options.runAs) entry.runAs = options.runAs;
  if (options.allowRoot) entry.allowRoot = true;
  if (options.home !== undefined) entry.home = options.home;
  if (options.channels !== undefined) entry.channels = options.channels;
  if (options.allow?.length || options.deny?.length) {
    entry.commands = { ...(options.allow?.length ? { allow: options.allow } : {}), ...(options.deny?.length ? { deny: options.deny } : {}) };
  }
  if (options.fileRoots?.length) entry.fileRoots = options.fileRoots;
  entry.keys = (options.keys ?? []).map((line) => parsePublicKey(line).line);
  doc.setIn(['users', name], doc.createNode(entry));
  try {
    return save(stateDir, doc, kind);
  } catch (err) {
    throw err instanceof UsersConfigError ? newUserRefused(stateDir, name, err) : err;
  }
}

/**
 * The new entry does not hold: name the `user add` flags, not lines of a file that was not
 * written (problems elsewhere in the file keep their lines: the entry is added at its end).
 */
function newUserRefused(stateDir: string, name: string, err: UsersConfigError): UsageError {
  const path = usersConfigPath(stateDir);
  const lines = err.problems.map((p) => {
    if (p.field[0] !== 'users' || p.field[1] !== name) return `${path}${p.line === null ? '' : `:${p.line}`}: ${fieldName(p.field)}: ${p.why}`;
    const key = p.field[2];
    const flag = typeof key === 'string' ? USER_ADD_FLAGS[key] : undefined;
    return `${fieldName(p.field)}${flag ? ` (${flag})` : ''}: ${p.why}`;
  });
  return new UsageError(ErrorCode.BAD_CONFIG, `user "${name}" not added (${path} unchanged):\n  ${lines.join('\n  ')}`);
}

export function removeUser(stateDir: string, name: string, kind: UsersConfigOptions = {}): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  doc.deleteIn(['users', name]);
  return save(stateDir, doc, kind);
}

export function addKey(stateDir: string, name: string, line: string, kind: UsersConfigOptions = {}): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  const key = parsePublicKey(line);
  const keys = (doc.getIn(['users', name, 'keys']) as { items?: unknown[] } | undefined)?.items ?? [];
  if (keys.some((k) => String((k as { value?: unknown }).value ?? k).split(/\s+/)[1] === key.line.split(' ')[1])) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `Key ${key.fingerprint} is already authorized for "${name}".`);
  }
  if (!doc.hasIn(['users', name, 'keys'])) doc.setIn(['users', name, 'keys'], doc.createNode([]));
  doc.addIn(['users', name, 'keys'], key.line);
  return save(stateDir, doc, kind);
}

export function setPassword(stateDir: string, name: string, hash: string, kind: UsersConfigOptions = {}): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  doc.setIn(['users', name, 'password'], hash);
  return save(stateDir, doc, kind);
}

/** Make a token for `user`; only its SHA-256 is stored, so the token is shown once. */
export function createToken(stateDir: string, user: string, options: { name?: string; expires?: Date }, kind: UsersConfigOptions = {}): { token: string; name: string; config: UsersConfig } {
  const doc = load(stateDir);
  requireUser(doc, user);
  const existing = ((doc.getIn(['users', user, 'tokens']) as { toJSON?: () => unknown } | undefined)?.toJSON?.() ?? []) as Array<{ name?: string }>;
  const name = options.name ?? `token-${existing.length + 1}`;
  if (existing.some((t) => t.name === name)) throw new UsageError(ErrorCode.BAD_CONFIG, `User "${user}" already has a token named "${name}"; revoke it first or pick another --name.`);
  const token = generateToken();
  const entry: Record<string, unknown> = { name, sha256: createHash('sha256').update(token, 'utf8').digest('hex') };
  if (options.expires) entry.expires = options.expires.toISOString();
  if (!doc.hasIn(['users', user, 'tokens'])) doc.setIn(['users', user, 'tokens'], doc.createNode([]));
  doc.addIn(['users', user, 'tokens'], doc.createNode(entry));
  return { token, name, config: save(stateDir, doc, kind) };
}

export function revokeToken(stateDir: string, user: string, name: string, kind: UsersConfigOptions = {}): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, user);
  const tokens = ((doc.getIn(['users', user, 'tokens']) as { toJSON?: () => unknown } | undefined)?.toJSON?.() ?? []) as Array<{ name?: string }>;
  const index = tokens.findIndex((t) => t.name === name);
  if (index < 0) throw new UsageError(ErrorCode.BAD_CONFIG, `User "${user}" has no token named "${name}" (have: ${tokens.map((t) => t.name).join(', ') || 'none'}).`);
  doc.deleteIn(['users', user, 'tokens', index]);
  return save(stateDir, doc, kind);
}

/** Ask the running daemon or gateway (pid file in the state dir, verified) to reload; false when none runs. */
export function signalDaemonReload(stateDir: string): boolean {
  return signalDaemon(stateDir);
}
