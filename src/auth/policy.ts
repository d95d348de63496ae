/**
 * Per-user policy decisions: which channel kinds a user may open, which commands may run,
 * which environment variables a client may set, and where commands may start. A denial
 * names the rule that denied it, so the operator knows what to change. docs/policy.md
 * states what each rule guarantees.
 */
import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { decodeOsBytes, encodeOsBytes } from '../protocol/os-bytes.js';
import { isOpenOf, type OpenRequest } from '../protocol/messages.js';
import type { ChannelPermission, UserPolicy } from './users-config.js';
import { allowMatches, denyMatches, type CommandCandidate } from './command-rule.js';
import { splitCommandWords, resolveExecutable, normalizePathWord } from '../process/command-words.js';
import { shellQuote } from '../process/command-spec.js';

export type PolicyDecision =
  | { allowed: true; /** For a user with command rules: the request rewritten to run this argv, without a shell. */ request?: OpenRequest }
  | { allowed: false; reason: string };

/** The permission an OPEN needs: a terminal is `pty`, session commands need `session`. */
export function permissionFor(request: OpenRequest): ChannelPermission | null {
  if (isOpenOf(request, 'exec')) return request.params.pty ? 'pty' : request.params.session !== undefined ? 'session' : 'exec';
  if (isOpenOf(request, 'session')) return 'session';
  if (isOpenOf(request, 'file')) return 'file';
  return null;
}

/**
 * The command text for logs and the audit trail: `command` as sent, or `argv` shell-quoted, so
 * its word boundaries survive (`sh -c TEXT` runs the same argv; the audit rows keep the exact
 * argv in `detail.argv` too).
 */
export function commandText(request: OpenRequest): string | null {
  if (!isOpenOf(request, 'exec')) return null;
  const { command, argv } = request.params;
  if (command !== undefined) return command;
  if (argv !== undefined) return argvText(argv);
  return null;
}

/** `argv` as one shell command line that runs that argv. */
export function argvText(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** True when the user's commands are matched against rules (and so run without a shell). */
export function hasCommandRules(user: UserPolicy): boolean {
  return user.allow !== null || user.deny.length > 0;
}

// Environment rule (docs/policy.md#environment). Names any process may be fooled by:
// the dynamic loader's, glibc's "unsecure" ones, and those that make a shell run code.
const REFUSED_ENV = /^(LD_.*|BASH_FUNC_.*|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|IFS|GCONV_PATH|GLIBC_TUNABLES|LOCPATH|NLSPATH|HOSTALIASES|RESOLV_HOST_CONF|SHELLWIRE_.*)$/;
// With command rules, only these: anything else (PATH, PAGER, GIT_SSH_COMMAND, …) may make
// an allowed program run another one.
const RESTRICTED_ENV = /^(LANG|LANGUAGE|LC_[A-Z_]+|TZ|TERM|COLUMNS|LINES|NO_COLOR)$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkEnv(user: UserPolicy, env: Record<string, string> | undefined): PolicyDecision {
  for (const name of Object.keys(env ?? {})) {
    if (!ENV_NAME.test(name)) return { allowed: false, reason: `environment variable name ${JSON.stringify(name)} is not a portable name (letters, digits, "_")` };
    if (REFUSED_ENV.test(name)) return { allowed: false, reason: `environment variable ${name} may not be set by a client (it can make programs load or run other code; docs/policy.md#environment)` };
    if (hasCommandRules(user) && !RESTRICTED_ENV.test(name)) {
      return { allowed: false, reason: `user "${user.name}" has command rules, so only LANG, LANGUAGE, LC_*, TZ, TERM, COLUMNS, LINES and NO_COLOR may be set, not ${name}` };
    }
  }
  return { allowed: true };
}

/**
 * Where a decision is made. `daemon` (the default): the command runs on this machine, so its
 * program is looked up here, and its cwd must be inside the user's home or file roots here.
 * `gateway`: it runs on a host, as another user whose own policy the host applies (cwd, file
 * roots, its PATH); this machine's accounts, homes and files say nothing about it, so only
 * what is the operator's own is judged: channel kinds, environment names, and the command
 * words against her rules, as written (docs/gateway.md).
 */
export interface CheckPlace {
  where: 'daemon' | 'gateway';
}

export function checkOpen(user: UserPolicy, request: OpenRequest, place: CheckPlace = { where: 'daemon' }): PolicyDecision {
  const permission = permissionFor(request);
  if (permission && !user.channels.has(permission)) {
    return { allowed: false, reason: `user "${user.name}" may not open ${permission} channels (users.${user.name}.channels is [${[...user.channels].join(', ')}])` };
  }
  if (!isOpenOf(request, 'exec') && !isOpenOf(request, 'session')) return { allowed: true };
  const env = checkEnv(user, request.params.env);
  if (!env.allowed) return env;
  if (!isOpenOf(request, 'exec') || !hasCommandRules(user)) return { allowed: true };
  const params = request.params;
  if (params.pty || params.session !== undefined) {
    // A login shell or a session shell would bypass any command rule.
    return { allowed: false, reason: `user "${user.name}" has command rules, so commands run without a shell: no terminal, no session` };
  }
  if (place.where === 'gateway') {
    const words = params.argv ?? splitCommandWords(params.command ?? '');
    if (!Array.isArray(words) && !words.ok) return { allowed: false, reason: words.reason };
    const decision = checkCommandWordsAsWritten(user, Array.isArray(words) ? words : words.words, params.cwd ?? null);
    // The request goes on as the operator sent it: the host resolves and runs it.
    return decision.allowed ? { allowed: true } : decision;
  }
  const cwd = checkCwd(user, params.cwd ?? user.home);
  if (!cwd.allowed) return cwd;
  let words: string[];
  if (params.argv !== undefined) words = params.argv;
  else {
    const split = splitCommandWords(params.command ?? '');
    if (!split.ok) return { allowed: false, reason: split.reason };
    words = split.words;
  }
  const decision = checkCommandWords(user, words, params.cwd ?? user.home);
  if (!decision.allowed) return decision;
  // The exec channel runs `argv` when it is set (never `command` through a shell); `command`
  // stays only as the label the audit trail and logs show: what the client asked for.
  return { allowed: true, request: { ...request, params: { ...params, argv: decision.argv, command: commandText(request)! } } };
}

/** Match argv against the user's rules; on success, the argv to run (absolute program, normalised paths). */
export function checkCommandWords(user: UserPolicy, words: string[], cwd: string): { allowed: true; argv: string[] } | { allowed: false; reason: string } {
  const [first, ...rest] = words;
  if (first === undefined || first === '') return { allowed: false, reason: 'the command is empty' };
  if (first.includes('/') && !first.startsWith('/')) {
    return { allowed: false, reason: `a command given as a path must be absolute, not ${JSON.stringify(first)}` };
  }
  const name = normalizePathWord(first);
  const candidate: CommandCandidate = { name, file: resolveExecutable(name), args: rest.map(normalizePathWord), cwd };
  for (const rule of user.deny) {
    if (denyMatches(rule, candidate)) return { allowed: false, reason: `command denied by ${rule.where} ("${rule.pattern}")` };
  }
  if (user.allow !== null && !user.allow.some((rule) => allowMatches(rule, candidate))) {
    return { allowed: false, reason: `command matches no rule in users.${user.name}.commands.allow (${user.allow.map((r) => `"${r.pattern}"`).join(', ') || 'empty'})` };
  }
  if (candidate.file === null) return { allowed: false, reason: `${name}: no such program in the daemon's PATH for restricted users` };
  return { allowed: true, argv: [candidate.file, ...candidate.args] };
}

/**
 * Match argv against the user's rules at a gateway: the program is the host's (looked up in
 * its PATH there), so it is matched by the name as written — a rule with a path matches a
 * command written as that path — and relative arguments are resolved for deny rules only
 * against a cwd the operator gave (the host's default cwd is not known here). Nothing on
 * this machine is looked at.
 */
export function checkCommandWordsAsWritten(user: UserPolicy, words: string[], cwd: string | null): { allowed: true } | { allowed: false; reason: string } {
  const [first, ...rest] = words;
  if (first === undefined || first === '') return { allowed: false, reason: 'the command is empty' };
  if (first.includes('/') && !first.startsWith('/')) {
    return { allowed: false, reason: `a command given as a path must be absolute, not ${JSON.stringify(first)}` };
  }
  const name = normalizePathWord(first);
  const args = rest.map(normalizePathWord);
  const candidate: CommandCandidate = { name, file: name.startsWith('/') ? name : null, args, cwd, local: false };
  for (const rule of user.deny) {
    if (denyMatches(rule, candidate)) {
      return { allowed: false, reason: `command denied by ${rule.where} ("${rule.pattern}")` };
    }
  }
  if (user.allow !== null && !user.allow.some((rule) => allowMatches(rule, candidate))) {
    return { allowed: false, reason: `command matches no rule in users.${user.name}.commands.allow (${user.allow.map((r) => `"${r.pattern}"`).join(', ') || 'empty'})` };
  }
  return { allowed: true };
}

/** Compatibility: match a command line (split strictly, as the daemon does). */
export function checkCommand(user: UserPolicy, command: string, cwd: string = user.home): PolicyDecision {
  const split = splitCommandWords(command);
  if (!split.ok) return { allowed: false, reason: split.reason };
  const decision = checkCommandWords(user, split.words, cwd);
  return decision.allowed ? { allowed: true } : decision;
}

/** A restricted user's commands start inside their home or file roots, symlinks resolved. */
export function checkCwd(user: UserPolicy, cwd: string): PolicyDecision {
  if (!cwd.startsWith('/')) return { allowed: false, reason: `working directory ${JSON.stringify(cwd)} must be absolute` };
  const real = (path: string) => {
    try {
      // As bytes: a directory whose name is not UTF-8 must resolve to where it really leads.
      // .native: the JS realpathSync turns a Buffer path into a UTF-8 string and loses its bytes.
      return decodeOsBytes(realpathSync.native(encodeOsBytes(path), { encoding: 'buffer' }));
    } catch {
      return posix.normalize(path);
    }
  };
  const target = real(cwd);
  const roots = [user.home, ...user.fileRoots].map(real);
  if (roots.some((root) => target === root || target.startsWith(root.endsWith('/') ? root : `${root}/`))) return { allowed: true };
  return { allowed: false, reason: `working directory ${cwd} is outside user "${user.name}"'s home and file roots (${[...new Set(roots)].join(', ')})` };
}
