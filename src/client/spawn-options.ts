/**
 * Checks a library caller's command options before anything is sent, so a mistake is a
 * clear local error instead of an OPEN the daemon must refuse (docs/protocol.md §4).
 */
import { ErrorCode, RequestError } from '../errors.js';
import { ALLOWED_SIGNALS } from '../protocol/messages.js';
import { OsBytesError, decodeOsBytes, encodeOsBytes } from '../protocol/os-bytes.js';

/**
 * An OS byte string given as a string or as exact bytes (docs/protocol.md §4.11). A Buffer
 * (any Uint8Array) is decoded losslessly; a string must name bytes (`decodeOsBytes` output,
 * or any well-formed text).
 */
export type OsText = string | Uint8Array;

/** The command timeout a caller gave: `timeoutMs`, else the deprecated `timeout` (both ms). */
export function timeoutOption(options: { timeoutMs?: number; timeout?: number }): { value: unknown; option: string } {
  return options.timeoutMs !== undefined ? { value: options.timeoutMs, option: 'timeoutMs' } : { value: options.timeout, option: 'timeout' };
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function bad(message: string): RequestError {
  return new RequestError(ErrorCode.BAD_REQUEST, message);
}

/** The text of an OS byte string, or a BAD_REQUEST naming `what`. */
function osText(value: unknown, what: string): string {
  if (value instanceof Uint8Array) return decodeOsBytes(value);
  if (typeof value !== 'string') throw bad(`${what} must be a string or a Buffer, got ${typeof value}.`);
  try {
    encodeOsBytes(value);
  } catch (err) {
    if (!(err instanceof OsBytesError)) throw err;
    throw bad(`${what} is not an OS byte string (unpaired surrogate at index ${err.index}); pass the bytes as a Buffer.`);
  }
  return value;
}

/**
 * The command: a string (or Buffer) for `/bin/sh -c`, or a non-empty argv of strings or
 * Buffers. Returns it as OS byte strings, ready for OPEN.
 */
export function checkCommand(command: unknown): string | string[] | null {
  if (command === null) return null;
  if (typeof command === 'string' || command instanceof Uint8Array) {
    const text = osText(command, 'The command');
    if (text.includes('\0')) throw bad('The command must not contain NUL bytes.');
    return text;
  }
  if (!Array.isArray(command) || command.length === 0) throw bad('The command must be a string, a Buffer or a non-empty argv array (got an empty argv).');
  return command.map((arg: unknown, i) => {
    const text = osText(arg, `argv[${i}]`);
    if (text.includes('\0')) throw bad(`argv[${i}] must not contain NUL bytes.`);
    return text;
  });
}

/**
 * `timeoutMs` (or its deprecated alias `timeout`, named by `option` in the error): milliseconds
 * as a non-negative integer; 0 means none (as in execa). Returns what to send.
 */
export function checkTimeout(timeout: unknown, option = 'timeoutMs'): number | undefined {
  if (timeout === undefined || timeout === 0) return undefined;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > MAX_TIMEOUT_MS) {
    throw bad(`The ${option} option must be a non-negative integer of milliseconds up to ${MAX_TIMEOUT_MS} (0 for none), got ${String(timeout)}.`);
  }
  return timeout;
}

/** `env`: NAME → value (string or Buffer). Returns it with OS byte strings as values. */
export function checkEnv(env: unknown): Record<string, string> | undefined {
  if (env === undefined) return undefined;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw bad('The env option must be an object of NAME: "value" strings (or Buffers).');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw bad(`env name ${JSON.stringify(name)} is not a portable variable name (letters, digits and "_", not starting with a digit).`);
    const text = osText(value, `env.${name}`);
    if (text.includes('\0')) throw bad(`env.${name} must not contain NUL bytes.`);
    out[name] = text;
  }
  return out;
}

/** `cwd`: a non-empty path (string or Buffer). Returns it as an OS byte string. */
export function checkCwd(cwd: unknown): string | undefined {
  if (cwd === undefined) return undefined;
  const text = typeof cwd === 'string' || cwd instanceof Uint8Array ? osText(cwd, 'The cwd option') : '';
  if (text === '' || text.includes('\0')) throw bad(`The cwd option must be a non-empty path string or Buffer, got ${JSON.stringify(cwd)}.`);
  return text;
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

export interface SpawnOptions {
  /** Environment variables added to the remote command's environment (values: text or exact bytes). */
  env?: Record<string, OsText>;
  /** Working directory (default: the user's home, or the session's cwd); text or exact bytes. */
  cwd?: OsText;
  /** Kill the command (SIGTERM to its group, then SIGKILL) after this many milliseconds (0: never). */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs` (the same milliseconds; `timeoutMs` wins when both are given). */
  timeout?: number;
  /** Run on a pseudo-terminal of this type and size (stdout and stderr arrive merged on stdout). */
  pty?: { term: string; cols: number; rows: number };
  /**
   * Abort: the command is closed (the daemon sends SIGTERM, then SIGKILL, to its group). A
   * signal already aborted starts nothing: `spawn` throws, `exec` rejects, with
   * `CommandError` `SW_ERR_COMMAND_CANCELED`.
   */
  signal?: AbortSignal;
}
