/**
 * Users and policy: one readable YAML file, `<state-dir>/users.yaml`. Every error names
 * the line and the field, so an operator can fix the file without guessing.
 *
 *   settings:
 *     passwordLogin: false          # classic user/password login, off by default
 *   users:
 *     alice:
 *       runAs: alice                # OS account (daemon must be root to switch)
 *       home: /home/alice           # default cwd; default: the account's home
 *       channels: [exec, session, pty, file]   # with commands: only exec and file (default)
 *       commands: { allow: ["git status", "ls ..."], deny: ["ls /etc"] }   # docs/policy.md
 *       fileRoots: [/home/alice, /srv/share]   # default: / without commands, else the home
 *       keys: ["ssh-ed25519 AAAA… alice@laptop"]
 *       tokens: [{ name: ci, sha256: <hex>, expires: 2027-01-01T00:00:00Z }]
 *       password: scrypt$…          # shellwire user passwd alice
 *     gateway:
 *       keys: ["ssh-ed25519 AAAA… shellwire-gateway@bastion"]
 *       actAs: [deploy]             # users a gateway's key may act as (docs/gateway.md)
 */
import { BoundedFileError, CONFIG_FILE_LIMIT, readBoundedText } from './bounded-file.js';
import { join } from 'node:path';
import { parseDocument, LineCounter, type Document } from 'yaml';
import { ErrorCode, UsageError } from '../errors.js';
import { parseIsoDateTime } from '../iso-time.js';
import { parsePublicKey, type SshPublicKey } from './ssh-key.js';
import { isPasswordHash } from './password.js';
import { lookupAccount, daemonAccount, runningAsRoot, type OsAccount } from './os-account.js';
import { compileCommandRule, type CommandRule } from './command-rule.js';

export const USERS_FILE = 'users.yaml';
export const CHANNEL_PERMISSIONS = ['exec', 'session', 'pty', 'file'] as const;
export type ChannelPermission = (typeof CHANNEL_PERMISSIONS)[number];

export type { CommandRule };

export interface TokenEntry {
  name: string;
  sha256: Buffer;
  expires: Date | null;
}

export interface UserPolicy {
  name: string;
  keys: SshPublicKey[];
  tokens: TokenEntry[];
  passwordHash: string | null;
  /** The OS account commands run as. */
  account: OsAccount;
  /** True when `account` is not the daemon's own (the daemon switches uid/gid). */
  switchAccount: boolean;
  home: string;
  channels: ReadonlySet<ChannelPermission>;
  allow: CommandRule[] | null;
  deny: CommandRule[];
  /**
   * Where file channels may go (paths resolved, symlinks followed, must stay inside). `["/"]`
   * (anywhere the account may go) for a user who may run any command; see docs/policy.md.
   */
  fileRoots: string[];
  /** The setting that decides `fileRoots`, named in refusals so the operator knows what to change. */
  fileRootsFrom?: string;
  /**
   * Users of the same file this one may act as on an operator's behalf (a gateway's key:
   * OPEN `onBehalfOf`), with their policies as loaded with this one. None of them has an
   * `actAs` of its own: a gateway cannot chain.
   */
  actAs?: ReadonlyMap<string, UserPolicy>;
  /** A gateway's users.yaml only (docs/gateway.md): where the operator may go and as whom. */
  gateway?: GatewayUserPolicy;
}

/** The gateway-only fields of a user (`hosts`, `as`, `record`, `recordings`, `audit`). */
export interface GatewayUserPolicy {
  /** Target expressions over the gateway's inventory; empty: no host (deny by default). */
  hosts: string[];
  /** The host user the operator acts as (`onBehalfOf.user`); default the operator's own name. */
  as: string;
  /** Record terminal input / exec output (both off by default: input carries passwords). */
  record: { input: boolean; output: boolean };
  /** Whose recordings the operator may list and replay: her own (default) or everyone's. */
  recordings: 'own' | 'all';
  /** Whose rows of the gateway's audit log the operator may read (op `audit`, the web console): her own (default) or everyone's. */
  audit: 'own' | 'all';
}

/** How to read users.yaml: a gateway's file may hold the gateway-only fields. */
export interface UsersConfigOptions {
  gateway?: boolean;
}


export interface UsersConfig {
  path: string | null;
  passwordLogin: boolean;
  users: ReadonlyMap<string, UserPolicy>;
}

export function usersConfigPath(stateDir: string): string {
  return join(stateDir, USERS_FILE);
}

/** Channel kinds a shell runs in: no command rule can hold there, so they exclude rules. */
const SHELL_CHANNELS: readonly ChannelPermission[] = ['session', 'pty'];

/** One thing wrong in users.yaml: where (field path, line) and why. */
export interface ConfigProblem {
  field: (string | number)[];
  line: number | null;
  why: string;
}

/**
 * users.yaml does not hold: the message lists every problem as `FILE:LINE: FIELD: why`;
 * `problems` keeps them apart, so `shellwire user add` can name its flags instead of lines
 * of a file it has not written.
 */
export class UsersConfigError extends UsageError {
  override name = 'UsersConfigError';
  readonly problems: ConfigProblem[];
  constructor(message: string, problems: ConfigProblem[]) {
    super(ErrorCode.BAD_CONFIG, message);
    this.problems = problems;
  }
}

class ConfigErrors {
  #doc: Document;
  #lines: LineCounter;
  #path: string;
  messages: string[] = [];
  problems: ConfigProblem[] = [];
  constructor(doc: Document, lines: LineCounter, path: string) {
    this.#doc = doc;
    this.#lines = lines;
    this.#path = path;
  }
  add(path: (string | number)[], why: string): void {
    const node = this.#doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const parentNode = this.#doc.getIn(path.slice(0, -1), true) as { range?: [number, number, number] } | undefined;
    const offset = node?.range?.[0] ?? parentNode?.range?.[0];
    const line = offset === undefined ? null : this.#lines.linePos(offset).line;
    this.messages.push(`${this.#path}${line === null ? '' : `:${line}`}: ${fieldName(path)}: ${why}`);
    this.problems.push({ field: path, line, why });
  }
}

export function fieldName(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Load and check the config; a missing file is an empty config (only the daemon token works). */
export function loadUsersConfig(stateDir: string, options: UsersConfigOptions = {}): UsersConfig {
  const path = usersConfigPath(stateDir);
  let text: string;
  try {
    text = readBoundedText(path, 'users.yaml', CONFIG_FILE_LIMIT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { path: null, passwordLogin: false, users: new Map() };
    if (err instanceof BoundedFileError) throw err;
    throw new UsageError(ErrorCode.BAD_CONFIG, `Cannot read ${path}: ${(err as Error).message}`);
  }
  return parseUsersConfig(text, path, options);
}

export function parseUsersConfig(text: string, path: string, options: UsersConfigOptions = {}): UsersConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new UsageError(ErrorCode.BAD_CONFIG, doc.errors.map((e) => `${path}:${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`).join('\n'));
  }
  const errors = new ConfigErrors(doc, lines, path);
  const root = doc.toJS() ?? {};
  const users = new Map<string, UserPolicy>();
  let passwordLogin = false;
  if (typeof root !== 'object' || Array.isArray(root)) {
    errors.add([], 'the file must be a mapping with "settings" and "users"');
  } else {
    for (const key of Object.keys(root)) if (key !== 'settings' && key !== 'users') errors.add([key], 'unknown top-level key (expected "settings" or "users")');
    const settings = root.settings ?? {};
    if (typeof settings !== 'object' || Array.isArray(settings)) errors.add(['settings'], 'must be a mapping');
    else {
      for (const key of Object.keys(settings)) if (key !== 'passwordLogin') errors.add(['settings', key], 'unknown setting (expected "passwordLogin")');
      if (settings.passwordLogin !== undefined && typeof settings.passwordLogin !== 'boolean') errors.add(['settings', 'passwordLogin'], 'must be true or false');
      passwordLogin = settings.passwordLogin === true;
    }
    const usersNode = root.users ?? {};
    if (typeof usersNode !== 'object' || Array.isArray(usersNode)) errors.add(['users'], 'must be a mapping of user name to settings');
    else {
      const actAsOf = new Map<string, unknown>();
      for (const [name, entry] of Object.entries(usersNode)) {
        const user = checkUser(name, entry, errors, options);
        if (user) users.set(name, user);
        const raw = (entry as Record<string, unknown> | null)?.actAs;
        if (raw !== undefined) actAsOf.set(name, raw);
      }
      for (const [name, raw] of actAsOf) resolveActAs(name, raw, usersNode as Record<string, unknown>, users, errors);
    }
  }
  if (errors.messages.length > 0) throw new UsersConfigError(errors.messages.join('\n'), errors.problems);
  return { path, passwordLogin, users };
}

const USER_KEYS = new Set(['runAs', 'allowRoot', 'home', 'channels', 'commands', 'fileRoots', 'keys', 'tokens', 'password', 'actAs']);

/** Fields about the machine commands run on: a gateway's users.yaml refuses them (they are the host's). */
const HOST_ONLY_KEYS = ['runAs', 'home', 'fileRoots'] as const;

/** Fields only a gateway's users.yaml takes (docs/gateway.md): a daemon names where they belong. */
const GATEWAY_USER_KEYS = new Set(['hosts', 'as', 'record', 'recordings', 'audit']);

/**
 * `users.NAME.actAs`: names of users in this file, none of which has an `actAs` of its own
 * (a key that may act as a user who may act as others would be a chain nobody reviewed).
 * The policies are this file's, so a reload changes them for new logins only, as for any user.
 */
function resolveActAs(name: string, raw: unknown, usersNode: Record<string, unknown>, users: Map<string, UserPolicy>, errors: ConfigErrors): void {
  const at = (...p: (string | number)[]) => ['users', name, 'actAs', ...p];
  if (!Array.isArray(raw)) return errors.add(at(), 'must be a list of user names from this file, such as [deploy, ops]');
  const targets = new Map<string, UserPolicy>();
  raw.forEach((target, i) => {
    if (typeof target !== 'string' || !USER_NAME.test(target)) return errors.add(at(i), 'must be a user name from this file');
    if (!Object.hasOwn(usersNode, target)) return errors.add(at(i), `no user "${target}" in this file (add users.${target} with the policy to act under, or remove it from actAs)`);
    const entry = usersNode[target] as Record<string, unknown> | null;
    if (entry?.actAs !== undefined) {
      return errors.add(at(i), `"${target}" has an actAs of its own, and acting as a user who acts as others is not allowed (a gateway cannot chain); act as a user without actAs`);
    }
    const policy = users.get(target);
    if (policy) targets.set(target, policy);
  });
  const user = users.get(name);
  if (user) user.actAs = targets;
}

/** What a users.yaml user name may be; anything else names no user. */
export const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

function checkUser(name: string, entry: unknown, errors: ConfigErrors, options: UsersConfigOptions): UserPolicy | null {
  const at = (...p: (string | number)[]) => ['users', name, ...p];
  const before = errors.messages.length;
  if (!USER_NAME.test(name)) errors.add(at(), 'user names are letters, digits, "_", "." and "-" (up to 32)');
  const u = (entry ?? {}) as Record<string, unknown>;
  if (typeof u !== 'object' || Array.isArray(u)) {
    errors.add(at(), 'must be a mapping');
    return null;
  }
  for (const key of Object.keys(u)) {
    if (GATEWAY_USER_KEYS.has(key)) {
      if (!options.gateway) errors.add(at(key), `"${key}" belongs in a gateway's users.yaml (shellwire gateway), not a daemon's; on a host, let the gateway's key act as this user with "actAs"`);
    } else if (!USER_KEYS.has(key)) errors.add(at(key), `unknown field (expected one of ${[...USER_KEYS].join(', ')}${options.gateway ? `, ${[...GATEWAY_USER_KEYS].join(', ')}` : ''})`);
  }

  // A gateway's operator runs nothing on the gateway's machine: its accounts, homes and
  // files are not hers, and the host applies the acted-as user's own (docs/gateway.md).
  if (options.gateway) {
    for (const key of HOST_ONLY_KEYS) {
      if (u[key] !== undefined) errors.add(at(key), `"${key}" belongs in the hosts' users.yaml (under the user the gateway acts as), not a gateway's: nothing of an operator's runs on the gateway; choose that user with "as"`);
    }
  }
  const self = daemonAccount();
  let account = self;
  // A runAs that names no account is the one error about it: the daemon's own account
  // stands in below only for the checks that do not depend on it.
  let accountKnown = true;
  if (u.runAs !== undefined && !options.gateway) {
    if (typeof u.runAs !== 'string' || u.runAs === '') {
      errors.add(at('runAs'), 'must be an OS account name');
      accountKnown = false;
    } else {
      const found = lookupAccount(u.runAs);
      if (!found) {
        errors.add(at('runAs'), `no OS account "${u.runAs}" on this host (create it with useradd, or name another)`);
        accountKnown = false;
      } else account = found;
    }
  }
  if (u.allowRoot !== undefined && typeof u.allowRoot !== 'boolean') errors.add(at('allowRoot'), 'must be true or false');
  const switchAccount = account.uid !== self.uid;
  if (switchAccount && !runningAsRoot()) {
    errors.add(at('runAs'), `the daemon runs as "${self.name}", not root, so it cannot run commands as "${account.name}"; remove runAs or start the daemon as root`);
  }

  const home = u.home === undefined ? account.home : u.home;
  if (typeof home !== 'string' || !home.startsWith('/')) errors.add(at('home'), 'must be an absolute path');

  // A gateway's key acts on behalf of others: what it may do as itself must be said.
  let channels: Set<ChannelPermission> = new Set(u.actAs !== undefined ? [] : CHANNEL_PERMISSIONS);
  if (u.channels !== undefined) {
    if (!Array.isArray(u.channels)) errors.add(at('channels'), `must be a list of ${CHANNEL_PERMISSIONS.join(', ')}`);
    else {
      channels = new Set();
      u.channels.forEach((c, i) => {
        if (!(CHANNEL_PERMISSIONS as readonly unknown[]).includes(c)) errors.add(at('channels', i), `unknown channel kind ${JSON.stringify(c)} (expected ${CHANNEL_PERMISSIONS.join(', ')})`);
        else channels.add(c as ChannelPermission);
      });
    }
  }

  // A user who can open no channel (a gateway's key that only acts as others) runs nothing as
  // root, and neither does a gateway's operator: her commands run on the hosts, as `as`.
  if (!options.gateway && accountKnown && account.uid === 0 && runningAsRoot() && u.allowRoot !== true && channels.size > 0) {
    errors.add(at('runAs'), `commands would run as root; if that is really intended set "allowRoot: true" (shellwire user add NAME --allow-root), else name an account with runAs (--run-as ACCOUNT)`);
  }

  let allow: CommandRule[] | null = null;
  const deny: CommandRule[] = [];
  if (u.commands !== undefined) {
    const c = u.commands as Record<string, unknown>;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) errors.add(at('commands'), 'must be a mapping with "allow" and/or "deny" lists');
    else {
      for (const key of Object.keys(c)) if (key !== 'allow' && key !== 'deny') errors.add(at('commands', key), 'unknown field (expected "allow" or "deny")');
      const rules = (list: unknown, kind: 'allow' | 'deny'): CommandRule[] => {
        if (!Array.isArray(list)) {
          errors.add(at('commands', kind), 'must be a list of rules such as "git status" or "ls ..."');
          return [];
        }
        return list.flatMap((pattern, i) => {
          if (typeof pattern !== 'string' || pattern === '') {
            errors.add(at('commands', kind, i), 'must be a non-empty rule such as "git status" or "ls ..."');
            return [];
          }
          const rule = compileCommandRule(pattern, `users.${name}.commands.${kind}[${i}]`);
          if (typeof rule === 'string') {
            errors.add(at('commands', kind, i), rule);
            return [];
          }
          return [rule];
        });
      };
      if (c.allow !== undefined) allow = rules(c.allow, 'allow');
      if (c.deny !== undefined) deny.push(...rules(c.deny, 'deny'));
      if (u.channels === undefined) channels = u.actAs !== undefined ? channels : new Set(['exec', 'file']);
      else {
        for (const kind of SHELL_CHANNELS) {
          if (channels.has(kind)) errors.add(at('channels'), `"${kind}" runs a shell, which runs anything, so it cannot go with command rules; remove "${kind}" from channels or the commands rules`);
        }
      }
    }
  }

  // A user who may run any command can `cp` anywhere its account may: a file root would only
  // surprise. One with command rules, or with no command channel, keeps its home.
  const runsAnyCommand = u.commands === undefined && [...channels].some((c) => c !== 'file');
  let fileRoots = runsAnyCommand ? ['/'] : [typeof home === 'string' ? home : account.home];
  if (u.fileRoots !== undefined) {
    if (!Array.isArray(u.fileRoots)) errors.add(at('fileRoots'), 'must be a list of absolute paths');
    else {
      fileRoots = [];
      u.fileRoots.forEach((root, i) => {
        if (typeof root !== 'string' || !root.startsWith('/')) errors.add(at('fileRoots', i), 'must be an absolute path');
        else fileRoots.push(root);
      });
    }
  }

  const keys: SshPublicKey[] = [];
  if (u.keys !== undefined) {
    if (!Array.isArray(u.keys)) errors.add(at('keys'), 'must be a list of "ssh-ed25519 AAAA… comment" lines');
    else {
      u.keys.forEach((line, i) => {
        try {
          if (typeof line !== 'string') throw new Error('must be a string');
          keys.push(parsePublicKey(line));
        } catch (err) {
          errors.add(at('keys', i), (err as Error).message);
        }
      });
    }
  }

  const tokens: TokenEntry[] = [];
  if (u.tokens !== undefined) {
    if (!Array.isArray(u.tokens)) errors.add(at('tokens'), 'must be a list of { name, sha256, expires }');
    else {
      u.tokens.forEach((t: Record<string, unknown>, i) => {
        if (typeof t !== 'object' || t === null) return errors.add(at('tokens', i), 'must be a mapping { name, sha256, expires }');
        if (typeof t.name !== 'string' || t.name === '') errors.add(at('tokens', i, 'name'), 'must be a non-empty string');
        if (typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256)) errors.add(at('tokens', i, 'sha256'), 'must be 64 hex digits (made by: shellwire token create)');
        let expires: Date | null = null;
        if (t.expires !== undefined && t.expires !== null) {
          // Full ISO forms only: `expires: 90` would otherwise be read as the year 1990.
          expires = t.expires instanceof Date ? t.expires : typeof t.expires === 'string' ? parseIsoDateTime(t.expires) ?? null : null;
          if (expires === null || Number.isNaN(expires.getTime())) errors.add(at('tokens', i, 'expires'), 'must be an ISO date-time such as 2027-01-01T00:00:00Z');
        }
        if (typeof t.name === 'string' && typeof t.sha256 === 'string') tokens.push({ name: t.name, sha256: Buffer.from(t.sha256, 'hex'), expires });
      });
    }
  }

  let passwordHash: string | null = null;
  if (u.password !== undefined) {
    if (typeof u.password !== 'string' || !isPasswordHash(u.password)) errors.add(at('password'), 'must be a scrypt hash (set it with: shellwire user passwd NAME)');
    else passwordHash = u.password;
  }

  const gateway = options.gateway ? checkGatewayFields(name, u, errors, at) : undefined;

  if (errors.messages.length > before) return null;
  const fileRootsFrom = `users.${name}.fileRoots in the daemon's users.yaml (for a new user: shellwire user add ${name} --file-root DIR)`;
  return { name, keys, tokens, passwordHash, account, switchAccount, home: home as string, channels, allow, deny, fileRoots, fileRootsFrom, ...(gateway ? { gateway } : {}) };
}

/** A gateway user's `hosts`, `as`, `record`, `recordings` and `audit` (each optional; absent hosts = no host). */
function checkGatewayFields(name: string, u: Record<string, unknown>, errors: ConfigErrors, at: (...p: (string | number)[]) => (string | number)[]): GatewayUserPolicy {
  const hosts: string[] = [];
  if (u.hosts !== undefined && u.hosts !== null) {
    if (!Array.isArray(u.hosts)) errors.add(at('hosts'), 'must be a list of target expressions over the gateway inventory, such as ["@web", "env=staging", "!web07"]');
    else {
      u.hosts.forEach((h, i) => {
        if (typeof h !== 'string' || h.trim() === '') errors.add(at('hosts', i), 'must be a target expression such as "@web", "env=staging" or "!web07"');
        else hosts.push(h);
      });
    }
  }
  let as = name;
  if (u.as !== undefined) {
    if (typeof u.as !== 'string' || !USER_NAME.test(u.as)) errors.add(at('as'), 'must be a user name on the hosts (letters, digits, "_", "." and "-")');
    else as = u.as;
  }
  const record = { input: false, output: false };
  if (u.record !== undefined) {
    const r = u.record as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) errors.add(at('record'), 'must be a mapping { input: true|false, output: true|false }');
    else {
      for (const key of Object.keys(r)) {
        if (key !== 'input' && key !== 'output') errors.add(at('record', key), 'unknown field (expected "input" or "output")');
        else if (typeof r[key] !== 'boolean') errors.add(at('record', key), 'must be true or false');
        else record[key] = r[key] as boolean;
      }
    }
  }
  let recordings: 'own' | 'all' = 'own';
  if (u.recordings !== undefined) {
    if (u.recordings !== 'own' && u.recordings !== 'all') errors.add(at('recordings'), 'must be "own" (her own recordings, the default) or "all" (everyone\'s: for auditors)');
    else recordings = u.recordings;
  }
  let audit: 'own' | 'all' = 'own';
  if (u.audit !== undefined) {
    if (u.audit !== 'own' && u.audit !== 'all') errors.add(at('audit'), 'must be "own" (her own rows of the gateway\'s audit log, the default) or "all" (everyone\'s: for auditors)');
    else audit = u.audit;
  }
  return { hosts, as, record, recordings, audit };
}

/**
 * An operator's gateway fields; a user without them (or the gateway's own token) may reach
 * no host: deny by default, and acting as someone is never implied by a login alone.
 */
export function gatewayPolicyOf(user: UserPolicy): GatewayUserPolicy {
  return user.gateway ?? { hosts: [], as: user.name, record: { input: false, output: false }, recordings: 'own', audit: 'own' };
}
