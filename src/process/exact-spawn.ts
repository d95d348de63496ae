/**
 * Exact bytes for a command line (docs/processes.md, "Bytes"). Argv words, the working
 * directory and the environment arrive as OS byte strings (protocol/os-bytes.ts): bytes that
 * are not UTF-8 are lone surrogates U+DC80..U+DCFF. Node's spawn (and node-pty's) encodes
 * every JS string as UTF-8, which turns each of those into EF BF BD: `caf\xe9` would run as
 * `caf\xef\xbf\xbd`. So a line that holds such a string is rewritten into one that carries
 * only well-formed strings, and rebuilds the bytes in the child before `exec`:
 *
 * - an environment name or value → the environment moves into argv: `/usr/bin/env -i --
 *   NAME=VALUE… FILE ARGS…` spawned with an empty environment (env(1) takes bytes).
 * - an argv word or the cwd → `/bin/sh -c DECODER` with every word as `r<text>` (passed as
 *   is) or `b<octal escapes>` (rebuilt with `printf '%b'`), which `cd`s and `exec`s.
 *
 * Lines of well-formed strings — nearly all — are spawned unchanged, at no cost. The decoder
 * costs one /bin/sh exec plus one fork per escaped word: measured on the 2-core test machine,
 * `sh -c true` took 4.2 ms per spawn, 6.7 ms with one escaped argv word and 8.8 ms with one
 * escaped env value (env(1) is one more exec, and its assignment one more escaped word). Order matters for run-as: the
 * caller's line is already `setpriv … env -i NAME=VALUE… CMD`, so the decoder (run as root,
 * before setpriv) only rebuilds words; the client's variables still reach the environment
 * only through env(1), after the privilege drop.
 */
import { encodeOsBytes } from '../protocol/os-bytes.js';

/** coreutils env: applies an environment given as argv words (bytes, any names). */
export const ENV_PROGRAM = '/usr/bin/env';
const SHELL = '/bin/sh';

export interface SpawnLine {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
}

/** A lone surrogate: a byte that is not UTF-8 (in an OS string), which spawn cannot carry. */
const LONE_SURROGATE = /\p{Cs}/u;

/** True when spawn would not pass `text` exactly (it holds escaped non-UTF-8 bytes). */
export function needsBytes(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * `$0`: "shellwire"; `$1`: the cwd item; `$2…`: the argv items. Each item is `r` + the text,
 * or `b` + octal escapes for `printf '%b'` (an `x` is appended and removed because command
 * substitution strips trailing newlines). `cd ./rel` keeps CDPATH out of it; OLDPWD is put
 * back as it was, so the command's environment differs from a plain spawn only in PWD, which
 * now names the directory it starts in. Its variables are `__sw_*` (reserved, as in the
 * session wrapper), and unset before the exec.
 */
export const BYTES_DECODER = [
  '__sw_d() { case $1 in b*) __sw_v=$(printf \'%bx\' "${1#b}"); __sw_v=${__sw_v%x};; *) __sw_v=${1#?};; esac; }',
  '__sw_o=${OLDPWD+x}; __sw_p=$OLDPWD',
  '__sw_d "$1"; shift',
  'case $__sw_v in /*) ;; *) __sw_v=./$__sw_v;; esac',
  'cd "$__sw_v" || exit 126',
  'if [ -n "$__sw_o" ]; then OLDPWD=$__sw_p; else unset OLDPWD; fi',
  '__sw_n=$#',
  'while [ "$__sw_n" -gt 0 ]; do __sw_d "$1"; shift; set -- "$@" "$__sw_v"; __sw_n=$((__sw_n - 1)); done',
  'unset -f __sw_d; unset __sw_o __sw_p __sw_v __sw_n',
  'exec "$@"',
].join('\n');

/** Bytes kept as they are in a `b` item; everything else becomes `\0ooo`. */
const PLAIN_BYTE = /[A-Za-z0-9._/,:=+@%-]/;

function decoderItem(text: string): string {
  if (!needsBytes(text)) return `r${text}`;
  let out = 'b';
  for (const byte of encodeOsBytes(text)) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && PLAIN_BYTE.test(ch) ? ch : `\\0${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/**
 * The line to spawn so that the child gets exactly `line`'s bytes. `wrap` (the cgroup
 * wrapper, containment.ts) is applied between the two steps: the environment has moved into
 * argv by then, and the decoder, which runs first, rebuilds the wrapper's words too.
 * Throws for a command name env(1) would take for an assignment.
 */
export function exactSpawnLine(line: SpawnLine, wrap?: (line: SpawnLine) => { file: string; args: string[] }): SpawnLine {
  let out = line;
  if (Object.entries(line.env).some(([name, value]) => needsBytes(name) || needsBytes(value))) {
    if (line.file.includes('=') && !line.file.includes('/')) throw new Error(`A command name cannot contain "=" (${line.file}); give its path.`);
    const assignments = Object.entries(line.env).map(([name, value]) => `${name}=${value}`);
    out = { file: ENV_PROGRAM, args: ['-i', '--', ...assignments, line.file, ...line.args], cwd: line.cwd, env: {} };
  }
  if (wrap) out = { ...out, ...wrap(out) };
  const words = [out.file, ...out.args];
  if (!needsBytes(out.cwd) && !words.some(needsBytes)) return out;
  return { file: SHELL, args: ['-c', BYTES_DECODER, 'shellwire', decoderItem(out.cwd), ...words.map(decoderItem)], cwd: '/', env: out.env };
}
