/**
 * Command text → argv for principals with command rules, without a shell (docs/policy.md).
 *
 * The parser is strict on purpose: it accepts words separated by blanks, single quotes
 * (everything literal) and double quotes (literal, but `$`, backquote, `\` and `!` refused),
 * and refuses every character a shell would give a meaning to. What it returns is exactly
 * the argv that runs, so what the rules matched is what the kernel is given: there is no
 * second interpreter whose reading could differ from ours (the mistake of matching globs
 * against the string handed to `sh -c`).
 */
import { statSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { decodeOsBytes, encodeOsBytes } from '../protocol/os-bytes.js';

/** The PATH restricted commands are looked up in and run with; the client cannot change it. */
export const RESTRICTED_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type SplitResult = { ok: true; words: string[] } | { ok: false; reason: string };

// Unquoted, each of these means something to a shell: separators, pipes, redirections,
// substitutions, globs, brace/tilde expansion, comments, history, escapes, subshells.
const SHELL_SPECIAL = new Set([';', '&', '|', '<', '>', '(', ')', '$', '`', '\\', '*', '?', '[', ']', '{', '}', '~', '#', '!']);
const IN_DOUBLE_QUOTES_SPECIAL = new Set(['$', '`', '\\', '!']);

function describe(ch: string): string {
  if (ch === '\n') return 'a newline';
  if (ch === '\r') return 'a carriage return';
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f) return `control character 0x${code.toString(16).padStart(2, '0')}`;
  return `"${ch}"`;
}

/** Split `text` into words, or say which shell syntax it contains. */
export function splitCommandWords(text: string): SplitResult {
  const words: string[] = [];
  let word: string | null = null;
  const refuse = (ch: string, where: string): SplitResult => ({
    ok: false,
    reason: `${describe(ch)} ${where} is shell syntax, and commands of a user with command rules run without a shell; quote it ('…') or send an argv`,
  });
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\t') {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) return { ok: false, reason: `unterminated ${ch === "'" ? 'single' : 'double'} quote` };
      const inner = text.slice(i + 1, end);
      if (ch === '"') for (const c of inner) if (IN_DOUBLE_QUOTES_SPECIAL.has(c)) return refuse(c, 'inside double quotes');
      word = (word ?? '') + inner;
      i = end;
      continue;
    }
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return refuse(ch, 'outside quotes');
    if (SHELL_SPECIAL.has(ch)) return refuse(ch, 'outside quotes');
    // `NAME=value cmd` is an assignment to a shell, not a command named NAME=value.
    if (ch === '=' && words.length === 0) return refuse(ch, 'in the command name');
    word = (word ?? '') + ch;
  }
  if (word !== null) words.push(word);
  if (words.length === 0) return { ok: false, reason: 'the command is empty' };
  return { ok: true, words };
}

/**
 * `/a//b/./c/../d/` → `/a/b/d`: the lexical form rules are matched against and the
 * command is given. Symbolic links are not followed (docs/policy.md says so).
 */
export function normalizePathWord(word: string): string {
  if (!word.startsWith('/')) return word;
  const normal = posix.normalize(word);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

function isExecutableFile(path: string): boolean {
  try {
    // Paths are OS byte strings (docs/protocol.md §4.11): look up the bytes they name.
    const st = statSync(encodeOsBytes(path));
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** An absolute path for a command word: a bare name is looked up in RESTRICTED_PATH. */
export function resolveExecutable(word: string): string | null {
  if (word.includes('/')) {
    if (!word.startsWith('/')) return null;
    const path = normalizePathWord(word);
    return isExecutableFile(path) ? path : null;
  }
  for (const dir of RESTRICTED_PATH.split(':')) {
    const candidate = `${dir}/${word}`;
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** The file a path finally names (symlinks followed), or the path itself when it cannot be resolved. */
export function realPathOf(path: string): string {
  try {
    // .native: the JS realpathSync turns a Buffer path into a UTF-8 string and loses its bytes.
    return decodeOsBytes(realpathSync.native(encodeOsBytes(path), { encoding: 'buffer' }));
  } catch {
    return path;
  }
}
