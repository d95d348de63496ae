/**
 * The buffered form of a remote command: collect stdout/stderr (up to `maxBuffer`),
 * then resolve with a `CommandResult`, or reject with a `CommandError` of the same shape
 * (execa-style) when the command failed, timed out, was canceled or overflowed.
 */
import { Readable } from 'node:stream';
import { CommandError, ErrorCode, RequestError, type CommandResult } from '../errors.js';
import type { RemoteProcess, ExitInfo } from './remote-process.js';
import type { SpawnOptions } from './spawn-options.js';
import { checkBoolean, checkMaxBuffer } from './option-checks.js';

/** Default cap on buffered output per stream, as execa's. */
export const DEFAULT_MAX_BUFFER = 100 * 1024 * 1024;

export interface BufferOptions {
  stdin?: string | Buffer | Uint8Array | Readable;
  /**
   * Bytes of output kept per stream (default `DEFAULT_MAX_BUFFER`, 100 MiB; `Infinity`: no
   * limit): more closes the command and rejects with `CommandError` `SW_ERR_MAX_BUFFER` (as
   * execa's `maxBuffer`). 0 keeps none, so any output overflows (as Node's `child_process`).
   */
  maxBuffer?: number;
  /** Abort: the remote command gets SIGTERM, then SIGKILL; already aborted, nothing starts. */
  signal?: AbortSignal;
  /** false: resolve with the result even when the command failed. Default true. */
  reject?: boolean;
  /** Timeout in milliseconds, for the error message (the server enforces it). */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs`. */
  timeout?: number;
}

export async function collectResult(proc: RemoteProcess, options: BufferOptions): Promise<CommandResult> {
  const maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER;
  let overflowed = false;
  const collect = (stream: Readable) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = new Promise<Buffer>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        if (size + chunk.length > maxBuffer) {
          if (size < maxBuffer) chunks.push(chunk.subarray(0, maxBuffer - size));
          size = maxBuffer;
          if (!overflowed) {
            overflowed = true;
            proc.close();
          }
          return;
        }
        size += chunk.length;
        chunks.push(chunk);
      });
      stream.on('end', () => resolve(Buffer.concat(chunks, Math.min(size, maxBuffer))));
      stream.on('error', reject);
    });
    return done;
  };
  const onAbort = () => proc.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  feedStdin(proc, options.stdin);
  try {
    const [exit, stdoutBytes, stderrBytes] = await Promise.all([proc.exited, collect(proc.stdout), collect(proc.stderr)]);
    const result: CommandResult = {
      command: proc.command,
      host: proc.host,
      exitCode: exit.exitCode,
      signal: exit.signal,
      stdout: stdoutBytes.toString('utf8'),
      stderr: stderrBytes.toString('utf8'),
      stdoutBytes,
      stderrBytes,
      durationMs: Math.round(exit.durationMs * 1000) / 1000,
      timedOut: exit.timedOut,
      canceled: exit.canceled && !overflowed,
    };
    if (exit.cwd !== undefined) result.cwd = exit.cwd;
    const failure = describeFailure(result, exit, overflowed, maxBuffer, options.timeoutMs ?? options.timeout);
    if (failure && options.reject !== false) throw new CommandError(failure.code, failure.message, result);
    return result;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Start a command with `start` and buffer it; a failure to start becomes a rejection. A
 * signal aborted before the start (`start` throws `canceledBeforeStart`) is a canceled
 * result, as an abort in flight gives: rejected, or resolved with `reject: false`.
 */
export function runBuffered(start: () => RemoteProcess, options: BufferOptions): Promise<CommandResult> {
  let proc: RemoteProcess;
  try {
    checkBufferOptions(options);
    proc = start();
  } catch (err) {
    if (err instanceof CommandError && err.code === ErrorCode.COMMAND_CANCELED && options.reject === false) return Promise.resolve(resultOf(err));
    return Promise.reject(err);
  }
  return collectResult(proc, options);
}

/** `exec()`'s own options, checked before anything is sent (see client/option-checks.ts). */
function checkBufferOptions(options: BufferOptions): void {
  checkMaxBuffer(options.maxBuffer);
  checkBoolean(options.reject, 'reject');
  const stdin: unknown = options.stdin;
  if (stdin !== undefined && typeof stdin !== 'string' && !(stdin instanceof Uint8Array) && !(stdin instanceof Readable)) {
    throw new RequestError(ErrorCode.BAD_REQUEST, `The stdin option must be a string, a Buffer or a Readable stream; got ${stdin === null ? 'null' : typeof stdin}.`);
  }
}

/**
 * The error for a command whose `signal` was aborted before it started: nothing was sent,
 * and the caller sees what an abort in flight gives (`SW_ERR_COMMAND_CANCELED`, `canceled`).
 */
export function canceledBeforeStart(command: string, host: string): CommandError {
  const result: CommandResult = {
    command, host, exitCode: null, signal: null, stdout: '', stderr: '', stdoutBytes: Buffer.alloc(0), stderrBytes: Buffer.alloc(0),
    durationMs: 0, timedOut: false, canceled: true,
  };
  return new CommandError(ErrorCode.COMMAND_CANCELED, `Command was canceled before it started (the signal was already aborted): ${command} (on ${host})`, result);
}

function resultOf(err: CommandError): CommandResult {
  return {
    command: err.command, host: err.host, exitCode: err.exitCode, signal: err.signal, stdout: err.stdout, stderr: err.stderr,
    stdoutBytes: err.stdoutBytes, stderrBytes: err.stderrBytes, durationMs: err.durationMs, timedOut: err.timedOut, canceled: err.canceled,
  };
}

export function feedStdin(proc: RemoteProcess, stdin: BufferOptions['stdin']): void {
  if (stdin === undefined) proc.stdin.end();
  else if (stdin instanceof Readable) stdin.pipe(proc.stdin);
  else proc.stdin.end(typeof stdin === 'string' ? Buffer.from(stdin) : Buffer.from(stdin));
}

function describeFailure(result: CommandResult, exit: ExitInfo, overflowed: boolean, maxBuffer: number, timeout?: number): { code: ErrorCode; message: string } | null {
  const where = `${result.command} (on ${result.host})`;
  let code: ErrorCode;
  let summary: string;
  if (overflowed) {
    code = ErrorCode.MAX_BUFFER;
    summary = `Command's output was larger than maxBuffer (${maxBuffer} bytes): ${where}`;
  } else if (exit.timedOut) {
    code = ErrorCode.COMMAND_TIMED_OUT;
    summary = `Command timed out after ${timeout ?? '?'} milliseconds: ${where}`;
  } else if (exit.canceled) {
    code = ErrorCode.COMMAND_CANCELED;
    summary = `Command was canceled: ${where}`;
  } else if (exit.signal) {
    code = ErrorCode.COMMAND_FAILED;
    summary = `Command was killed with ${exit.signal}: ${where}`;
  } else if (exit.exitCode !== 0) {
    code = ErrorCode.COMMAND_FAILED;
    summary = `Command failed with exit code ${exit.exitCode}: ${where}`;
  } else {
    return null;
  }
  const stderr = result.stderr.trim();
  return { code, message: stderr ? `${summary}\n${stderr.length > 2000 ? stderr.slice(-2000) : stderr}` : summary };
}

/** `exec()`'s options: how to start the command, and how to buffer its output. */
export interface ExecOptions extends SpawnOptions, BufferOptions {}
