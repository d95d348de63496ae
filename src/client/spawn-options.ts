/**
 * Checks a library caller's command options before anything is sent, so a mistake is a
 * clear local error instead of an OPEN the daemon must refuse (docs/protocol.md §4).
 */
import { ErrorCode, RequestError } from '../errors.js';
import { ALLOWED_SIGNALS } from '../protocol/messages.js';

const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function bad(message: string): RequestError {
  return new RequestError(ErrorCode.BAD_REQUEST, message);
}

/** The command: a non-empty string for `/bin/sh -c`, or a non-empty argv of strings. */
export function checkCommand(command: unknown): void {
  if (command === null) return;
  if (typeof command === 'string') {
    if (command.includes('\0')) throw bad('The command must not contain NUL bytes.');
    return;
  }
  if (!Array.isArray(command) || command.length === 0) throw bad('The command must be a string or a non-empty argv array (got an empty argv).');
  command.forEach((arg, i) => {
    if (typeof arg !== 'string') throw bad(`argv[${i}] must be a string, got ${typeof arg}.`);
    if (arg.includes('\0')) throw bad(`argv[${i}] must not contain NUL bytes.`);
  });
}

/** `timeout`: milliseconds as a non-negative integer; 0 means none (as in execa). Returns what to send. */
export function checkTimeout(timeout: unknown): number | undefined {
  if (timeout === undefined || timeout === 0) return undefined;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > MAX_TIMEOUT_MS) {
    throw bad(`The timeout option must be a non-negative integer of milliseconds up to ${MAX_TIMEOUT_MS} (0 for none), got ${String(timeout)}.`);
  }
  return timeout;
}

export function checkEnv(env: unknown): void {
  if (env === undefined) return;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw bad('The env option must be an object of NAME: "value" strings.');
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw bad(`env name ${JSON.stringify(name)} is not a portable variable name (letters, digits and "_", not starting with a digit).`);
    if (typeof value !== 'string') throw bad(`env.${name} must be a string, got ${typeof value}.`);
    if (value.includes('\0')) throw bad(`env.${name} must not contain NUL bytes.`);
  }
}

export function checkCwd(cwd: unknown): void {
  if (cwd === undefined) return;
  if (typeof cwd !== 'string' || cwd === '' || cwd.includes('\0')) throw bad(`The cwd option must be a non-empty path string, got ${JSON.stringify(cwd)}.`);
}

export function checkTerminalSize(cols: unknown, rows: unknown): void {
  for (const [name, value] of [['cols', cols], ['rows', rows]] as const) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) throw bad(`Terminal ${name} must be an integer from 1 to 65535, got ${String(value)}.`);
  }
}

export function checkPty(pty: unknown): void {
  if (pty === undefined) return;
  if (typeof pty !== 'object' || pty === null) throw bad('The pty option must be { term, cols, rows }.');
  const p = pty as Record<string, unknown>;
  if (typeof p.term !== 'string' || p.term === '' || p.term.includes('\0')) throw bad('pty.term must be a terminal type such as "xterm-256color".');
  checkTerminalSize(p.cols, p.rows);
}

export function checkSignal(signal: unknown): void {
  if (!(ALLOWED_SIGNALS as readonly unknown[]).includes(signal)) throw bad(`Cannot send signal ${String(signal)}; use one of ${ALLOWED_SIGNALS.join(', ')}.`);
}
