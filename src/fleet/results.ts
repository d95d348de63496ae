/** What a fan-out run reports: per-host results, events, the summary, and how errors map to them. */
import type { ExitInfo } from '../client/remote-process.js';
import { AuthenticationError, ConnectionError, ErrorCode, HostVerificationError, ProtocolError } from '../errors.js';

/**
 * How one host ended. `ok` is the only success. Connection-side: `unreachable` (no TCP/TLS
 * or handshake), `host-key` (unknown or changed fingerprint), `auth` (token refused),
 * `lost` (the connection died while the command ran). Command-side: `failed` (non-zero
 * exit or signal), `timed-out`, `error` (the daemon refused to run it). `canceled` and
 * `skipped` (not started because of --fail-fast, --max-failures or a failed canary).
 */
export type HostStatus = 'ok' | 'failed' | 'timed-out' | 'error' | 'unreachable' | 'host-key' | 'auth' | 'lost' | 'canceled' | 'skipped';

/** One host's outcome; also the JSON Lines `result` object. */
export interface HostResult {
  host: string;
  /** `address:port` connected to. */
  address: string;
  status: HostStatus;
  exitCode: number | null;
  signal: string | null;
  /** From the start of connecting (or reusing the connection) to the end. */
  durationMs: number;
  /**
   * Output kept (up to `maxOutput` bytes per stream) as text: the bytes decoded as UTF-8,
   * with U+FFFD for bytes that are not. For the exact bytes, read `stdoutBytes`/`stderrBytes`.
   */
  stdout: string;
  stderr: string;
  /** The output kept, byte for byte (a prefix of what the command wrote when `truncated`). */
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
  /** More output arrived than was kept. */
  truncated: boolean;
  /** Why the host did not succeed, when it was not simply a non-zero exit. */
  error: { code: string; message: string } | null;
  /** Batch index (0 without batches; the canary is batch 0). */
  batch: number;
  /** put/get to many hosts: what this host's transfer copied (absent for commands). */
  transfer?: { files: number; directories: number; bytes: number; failures: number };
}

export interface FleetSummary {
  command: string;
  total: number;
  ok: number;
  /** failed + timed-out + error */
  failed: number;
  /** unreachable + host-key + auth + lost */
  unreachable: number;
  canceled: number;
  skipped: number;
  durationMs: number;
  /** Every host ran and succeeded. */
  success: boolean;
  /** Why hosts were left unstarted, if they were. */
  stoppedBy: null | 'fail-fast' | 'max-failures' | 'canary' | 'canceled';
  /** In target order. */
  results: HostResult[];
}

export type FleetEvent =
  | { type: 'batch'; batch: number; hosts: string[] }
  | { type: 'start'; host: string }
  | { type: 'output'; host: string; stream: 'stdout' | 'stderr'; data: Buffer }
  | { type: 'result'; host: string; result: HostResult }
  | { type: 'summary'; summary: FleetSummary };

/**
 * The summary of a run's results (in target order), counted the same for every kind of run
 * (runOn, runBroadcast): which statuses are failures and which unreachable is decided here.
 */
export function summarize(command: string, total: number, results: HostResult[], durationMs: number, stoppedBy: FleetSummary['stoppedBy']): FleetSummary {
  const count = (...statuses: HostStatus[]) => results.filter((r) => statuses.includes(r.status)).length;
  return {
    command,
    total,
    ok: count('ok'),
    failed: count('failed', 'timed-out', 'error'),
    unreachable: count('unreachable', 'host-key', 'auth', 'lost'),
    canceled: count('canceled'),
    skipped: count('skipped'),
    durationMs: Math.round(durationMs),
    success: results.length === total && results.every((r) => r.status === 'ok'),
    stoppedBy,
    results,
  };
}

export function isFailure(status: HostStatus): boolean {
  return status !== 'ok' && status !== 'skipped' && status !== 'canceled';
}

export function classifyConnectError(err: unknown): HostStatus {
  if (err instanceof HostVerificationError && err.code !== ErrorCode.TLS) return 'host-key';
  if (err instanceof AuthenticationError) return 'auth';
  if (err instanceof ConnectionError || err instanceof ProtocolError || err instanceof HostVerificationError) return 'unreachable';
  return 'error';
}

/** The output a host's result keeps: its bytes, and whether more arrived than was kept. */
export interface KeptOutput {
  bytes(): Buffer;
  truncated: boolean;
}

/** Put the kept output (bytes and text) into `result`. */
export function keepOutput(result: HostResult, stdout: KeptOutput, stderr: KeptOutput): void {
  result.stdoutBytes = stdout.bytes();
  result.stderrBytes = stderr.bytes();
  result.stdout = result.stdoutBytes.toString('utf8');
  result.stderr = result.stderrBytes.toString('utf8');
  result.truncated = stdout.truncated || stderr.truncated;
}

export function resultFromExit(
  result: HostResult,
  exit: ExitInfo,
  stdout: KeptOutput,
  stderr: KeptOutput,
  timeoutMs: number | undefined,
): HostResult {
  result.exitCode = exit.exitCode;
  result.signal = exit.signal;
  keepOutput(result, stdout, stderr);
  if (exit.timedOut) {
    result.status = 'timed-out';
    result.error = { code: ErrorCode.COMMAND_TIMED_OUT, message: `timed out after ${(timeoutMs ?? 0) / 1000} s; its processes were killed` };
  } else if (exit.canceled) {
    result.status = 'canceled';
    result.error = { code: ErrorCode.COMMAND_CANCELED, message: 'canceled; its processes were killed' };
  } else if (exit.signal !== null || exit.exitCode !== 0) {
    result.status = 'failed';
  }
  return result;
}
