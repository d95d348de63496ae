/**
 * The kernel's limit on one argument or environment string (Linux MAX_ARG_STRLEN: 32 pages,
 * NUL included). A longer one makes execve fail with E2BIG: on pipes Node throws at spawn,
 * on a terminal node-pty's child prints "execvp(3) failed" as terminal output. Checked
 * before either, so both refuse it the same way (OPEN_FAIL SW_ERR_SPAWN_FAILED, §6.1).
 */
import type { SpawnLine } from './exact-spawn.js';

export const MAX_ARG_STRLEN = 32 * 4096;

/** Why `line` cannot be exec'd (one string too long), or null. */
export function argumentTooLong(line: Pick<SpawnLine, 'args' | 'env'>): string | null {
  for (const arg of line.args) {
    const bytes = Buffer.byteLength(arg) + 1;
    if (bytes > MAX_ARG_STRLEN) return `one of its arguments is ${bytes} bytes; the OS takes at most ${MAX_ARG_STRLEN} per argument (E2BIG)`;
  }
  for (const [name, value] of Object.entries(line.env)) {
    const bytes = Buffer.byteLength(name) + Buffer.byteLength(value) + 2;
    if (bytes > MAX_ARG_STRLEN) return `the environment variable ${name} is ${bytes} bytes; the OS takes at most ${MAX_ARG_STRLEN} per variable (E2BIG)`;
  }
  return null;
}
