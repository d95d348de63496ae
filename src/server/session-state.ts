/**
 * A shell session's state: working directory, exported environment and `$?`, which persist
 * from one command to the next (`cd`, `export`, `unset`, `false; echo $?`). Each command runs in a fresh
 * `/bin/sh` started in that state; after the command, the shell writes its `$PWD` and
 * `env -0` to fd 3 (SESSION_WRAPPER, process/command-spec.ts), and we keep that as the new state. A fresh shell per command is what
 * makes Ctrl-C, timeouts and output boundaries exact; the cost is that shell functions,
 * aliases and unexported variables do not carry over (documented in the README).
 *
 * cwd and environment are OS byte strings (protocol/os-bytes.ts): the report is split on its
 * NUL and "=" bytes and each part decoded losslessly, so a directory or value that is not
 * UTF-8 is what the next command gets, byte for byte.
 */
import { constants } from 'node:os';

import { decodeOsBytes, splitAtNul } from '../protocol/os-bytes.js';

/** Upper bound on the state a command may report (cwd + environment). */
export const MAX_SESSION_STATE_BYTES = 1024 * 1024;

/**
 * The `$?` a session command leaves: its exit code, 128+N if a signal ended it, and 130 (as
 * for Ctrl-C) if the client closed it before it ended.
 */
export function sessionStatus(exit: { exitCode: number | null; signal: string | null } | null): number {
  if (exit === null) return 128 + constants.signals.SIGINT;
  if (exit.exitCode !== null) return exit.exitCode & 0xff;
  const number = exit.signal ? (constants.signals as Record<string, number>)[exit.signal] : undefined;
  return 128 + (number ?? 0);
}

export class SessionState {
  cwd: string;
  env: Record<string, string>;
  /** `$?` for the next command: the status of the session command that ended last. */
  status = 0;

  constructor(cwd: string, env: Record<string, string>) {
    this.cwd = cwd;
    this.env = env;
  }

  /** Apply the `PWD\0NAME=VALUE\0...` report; ignore a truncated or missing one (e.g. `exit` ran). */
  update(report: Buffer): boolean {
    if (report.length === 0 || report[report.length - 1] !== 0) return false;
    const parts = splitAtNul(report.subarray(0, report.length - 1));
    const cwd = decodeOsBytes(parts.shift() ?? Buffer.alloc(0));
    if (!cwd.startsWith('/')) return false;
    const env: Record<string, string> = {};
    for (const entry of parts) {
      const eq = entry.indexOf(0x3d); // "=": ASCII, never inside a multi-byte sequence
      if (eq <= 0) continue;
      const name = decodeOsBytes(entry.subarray(0, eq));
      if (name === '_' || name === 'SHLVL') continue;
      env[name] = decodeOsBytes(entry.subarray(eq + 1));
    }
    this.cwd = cwd;
    this.env = env;
    return true;
  }
}

