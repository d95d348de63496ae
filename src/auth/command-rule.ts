/**
 * Command rules as word patterns, like sudoers (docs/policy.md):
 *
 *   allow: ["uptime", "git status", "ls ...", "cat /srv/logs/*"]
 *   deny:  ["ls /etc"]
 *
 * A rule is words separated by blanks. `*` and `?` in a word match within that one word
 * (so `echo *` is echo with exactly one argument); a last word `...` matches any further
 * arguments, including none. Allow rules match position by position: the guarantee. Deny
 * rules match a command when its name matches and every other rule word matches some
 * argument, in any order, as written or resolved against the working directory: they catch
 * `ls -a /etc`, `ls //etc`, `ls /tmp/../etc`, `/bin/ls /etc` — but a program that reaches
 * the same place another way (a symlink, `find /`, a script) is not caught, so deny-lists
 * are advisory and allow-lists are what a restriction guarantees.
 */
import { posix } from 'node:path';
import { normalizePathWord, realPathOf } from '../process/command-words.js';

export const ANY_FURTHER = '...';

export interface CommandRule {
  pattern: string;
  /** The command word's pattern, and whether it names a path (contains `/`). */
  command: RegExp;
  commandIsPath: boolean;
  args: RegExp[];
  anyFurther: boolean;
  /** Where it is written, e.g. `users.alice.commands.deny[0]`, for denial messages. */
  where: string;
}

/** What a rule is matched against: the argv that will run, and the file it runs. */
export interface CommandCandidate {
  /** The command word as the client wrote it (a bare name or an absolute path, normalised). */
  name: string;
  /** Absolute path of the executable (PATH lookup done), or null when none was found. */
  file: string | null;
  /** Arguments after the command word, absolute paths normalised. */
  args: string[];
  /**
   * Working directory, for resolving relative arguments against deny rules; null when it is
   * not known here (a gateway, where the host picks the default): arguments as written only.
   */
  cwd: string | null;
  /**
   * The file is on this machine (the default): deny rules also match where its symlinks
   * lead. False at a gateway, whose files are not the host's.
   */
  local?: boolean;
}

const RULE_FORBIDDEN = /[;&|<>()$`\\'"{}~#!\n\r\t\0]/;

/** `*` any run within the word, `?` one character; everything else literal. */
export function wordGlob(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[\\s\\S]*').replace(/\?/g, '[\\s\\S]');
  return new RegExp(`^${body}$`);
}

/** Compile one rule; a string is the reason it is not a valid rule. */
export function compileCommandRule(pattern: string, where: string): CommandRule | string {
  const bad = RULE_FORBIDDEN.exec(pattern);
  if (bad) return `rules are words, not shell text: ${JSON.stringify(bad[0])} is not allowed (write "ls ..." for ls with any arguments; see docs/policy.md)`;
  const words = pattern.split(' ').filter((w) => w !== '');
  if (words.length === 0) return 'must name a command';
  const anyFurther = words.at(-1) === ANY_FURTHER;
  if (anyFurther) words.pop();
  if (words.length === 0) return `"${ANY_FURTHER}" must follow a command name`;
  if (words.includes(ANY_FURTHER)) return `"${ANY_FURTHER}" may only be the last word`;
  const [command, ...args] = words.map(normalizePathWord) as [string, ...string[]];
  if (command.includes('/') && !command.startsWith('/')) return 'a command given as a path must be absolute';
  return { pattern, command: wordGlob(command), commandIsPath: command.includes('/'), args: args.map(wordGlob), anyFurther, where };
}

/** Allow rules: the command and each argument in its place (the guarantee). */
export function allowMatches(rule: CommandRule, c: CommandCandidate): boolean {
  if (rule.commandIsPath) {
    if (c.file === null || !rule.command.test(c.file)) return false;
  } else if (c.name.includes('/') || !rule.command.test(c.name)) {
    // A bare rule names a program found in the daemon's PATH, never a path the client chose.
    return false;
  }
  if (c.args.length < rule.args.length || (!rule.anyFurther && c.args.length !== rule.args.length)) return false;
  return rule.args.every((re, i) => re.test(c.args[i]!));
}

/** Deny rules: the command under any of its names, and each rule word somewhere among the arguments. */
export function denyMatches(rule: CommandRule, c: CommandCandidate): boolean {
  const names = new Set([c.name]);
  if (c.file !== null) {
    for (const path of c.local === false ? [c.file] : [c.file, realPathOf(c.file)]) {
      names.add(path);
      names.add(posix.basename(path));
    }
  }
  if (![...names].some((n) => rule.command.test(n))) return false;
  const cwd = c.cwd;
  const forms = c.args.flatMap((arg) => (arg.startsWith('/') || arg.startsWith('-') || cwd === null ? [arg] : [arg, normalizePathWord(posix.resolve(cwd, arg))]));
  return rule.args.every((re) => forms.some((form) => re.test(form)));
}
