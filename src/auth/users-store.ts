/**
 * Editing users.yaml for the `user`, `key` and `token` commands: comments and order are
 * kept (yaml's Document API), the result is checked with the same validator the daemon
 * uses before it is written (atomically, 0600), and the running daemon is told to reload.
 */
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parseDocument, visit, type Document } from 'yaml';
import { ErrorCode, UsageError } from '../errors.js';
import { parseUsersConfig, usersConfigPath, type UsersConfig } from './users-config.js';
import { parsePublicKey } from './ssh-key.js';
import { writeSecretFile } from './secret-file.js';
import { generateToken } from './token.js';
import { DAEMON_PID_FILE, signalDaemon } from './daemon-pid.js';

export { DAEMON_PID_FILE };

const HEADER = `# shellwire users and policy (see README "Users and policy").
# Edit with: shellwire user|key|token …  — or by hand, then: kill -HUP $(cat daemon.pid)
`;

function load(stateDir: string): Document {
  const path = usersConfigPath(stateDir);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : HEADER + 'users: {}\n';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new UsageError(ErrorCode.BAD_CONFIG, `${path}: ${doc.errors[0]!.message}`);
  if (!doc.has('users') || doc.get('users') === null) doc.set('users', doc.createNode({}));
  return doc;
}

function save(stateDir: string, doc: Document): UsersConfig {
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
  const config = parseUsersConfig(text, path); // throws with line numbers before anything is written
  writeSecretFile(path, text);
  return config;
}

function requireUser(doc: Document, name: string): void {
  if (!doc.hasIn(['users', name])) throw new UsageError(ErrorCode.BAD_CONFIG, `No user "${name}"; add it with: shellwire user add ${name}`);
}

export function addUser(stateDir: string, name: string, options: { keys?: string[]; runAs?: string; allowRoot?: boolean }): UsersConfig {
  const doc = load(stateDir);
  if (doc.hasIn(['users', name])) throw new UsageError(ErrorCode.BAD_CONFIG, `User "${name}" already exists; use: shellwire key add ${name} PUBKEYFILE`);
  const entry: Record<string, unknown> = {};
  if (options.runAs) entry.runAs = options.runAs;
  if (options.allowRoot) entry.allowRoot = true;
  entry.keys = (options.keys ?? []).map((line) => parsePublicKey(line).line);
  doc.setIn(['users', name], doc.createNode(entry));
  return save(stateDir, doc);
}

export function removeUser(stateDir: string, name: string): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  doc.deleteIn(['users', name]);
  return save(stateDir, doc);
}

export function addKey(stateDir: string, name: string, line: string): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  const key = parsePublicKey(line);
  const keys = (doc.getIn(['users', name, 'keys']) as { items?: unknown[] } | undefined)?.items ?? [];
  if (keys.some((k) => String((k as { value?: unknown }).value ?? k).split(/\s+/)[1] === key.line.split(' ')[1])) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `Key ${key.fingerprint} is already authorized for "${name}".`);
  }
  if (!doc.hasIn(['users', name, 'keys'])) doc.setIn(['users', name, 'keys'], doc.createNode([]));
  doc.addIn(['users', name, 'keys'], key.line);
  return save(stateDir, doc);
}

export function setPassword(stateDir: string, name: string, hash: string): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, name);
  doc.setIn(['users', name, 'password'], hash);
  return save(stateDir, doc);
}

/** Make a token for `user`; only its SHA-256 is stored, so the token is shown once. */
export function createToken(stateDir: string, user: string, options: { name?: string; expires?: Date }): { token: string; name: string; config: UsersConfig } {
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
  return { token, name, config: save(stateDir, doc) };
}

export function revokeToken(stateDir: string, user: string, name: string): UsersConfig {
  const doc = load(stateDir);
  requireUser(doc, user);
  const tokens = ((doc.getIn(['users', user, 'tokens']) as { toJSON?: () => unknown } | undefined)?.toJSON?.() ?? []) as Array<{ name?: string }>;
  const index = tokens.findIndex((t) => t.name === name);
  if (index < 0) throw new UsageError(ErrorCode.BAD_CONFIG, `User "${user}" has no token named "${name}" (have: ${tokens.map((t) => t.name).join(', ') || 'none'}).`);
  doc.deleteIn(['users', user, 'tokens', index]);
  return save(stateDir, doc);
}

/** Ask the running daemon (pid file in the state dir, verified) to reload; false when none runs. */
export function signalDaemonReload(stateDir: string): boolean {
  return signalDaemon(stateDir);
}

/** `30d`, `12h`, `90m`, `3600s` or an ISO date → a Date. */
export function parseExpiry(text: string, now: Date = new Date()): Date {
  const match = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  if (match) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[match[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() + Number(match[1]) * unit);
  }
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new UsageError(ErrorCode.BAD_CONFIG, `--expires takes a duration like 30d, 12h, 90m, or an ISO date; got "${text}".`);
  return date;
}
