/**
 * A command's start and end, built once and used twice: for the audit row (`commandStartEvent`,
 * `commandEndEvent`) and for the daemon's log line (`commandEndLogFields`), so the two never
 * disagree on an exit code, a duration or a byte count.
 */
import type { AuditEvent } from './audit-event.js';

export interface CommandRecord {
  channel: number;
  /** The command text as run (an OS byte string; an argv shell-quoted), or its label (`(login shell)`). */
  command: string;
  /** The exact argv run, for a command run without a shell (`detail.argv` of its rows). */
  argv?: readonly string[];
  cwd: string;
  startedAt: Date;
  /** Names of the environment variables the client set (values are not recorded: they may be secrets). */
  env?: string[];
}

/** How a command ended, as the channel saw it. */
export interface CommandOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Bytes the client sent to the command's stdin. */
  bytesIn: number;
  /** Bytes of output sent to the client (stdout and stderr). */
  bytesOut: number;
}

export interface CommandEnd extends CommandRecord, CommandOutcome {
  endedAt: Date;
  durationMs: number;
}

/**
 * The end of `started`, now. `startedMs` is `performance.now()` at the start (a monotonic
 * clock: the duration survives a wall clock step); `endedAt` is the wall clock.
 */
export function endCommand(started: CommandRecord, startedMs: number, outcome: CommandOutcome, nowMs: number = performance.now()): CommandEnd {
  return { ...started, ...outcome, endedAt: new Date(), durationMs: Math.round(nowMs - startedMs) };
}

export function commandStartEvent(command: CommandRecord): AuditEvent {
  return {
    kind: 'command-start',
    cwd: command.cwd,
    command: command.command,
    startedAt: command.startedAt,
    detail: { channel: command.channel, ...(command.argv ? { argv: [...command.argv] } : {}), ...(command.env?.length ? { env: command.env } : {}) },
  };
}

export function commandEndEvent(end: CommandEnd): AuditEvent {
  return {
    kind: 'command-end',
    cwd: end.cwd,
    command: end.command,
    startedAt: end.startedAt,
    endedAt: end.endedAt,
    exitCode: end.exitCode,
    signal: end.signal,
    bytesIn: end.bytesIn,
    bytesOut: end.bytesOut,
    durationMs: end.durationMs,
    detail: { channel: end.channel, ...(end.argv ? { argv: [...end.argv] } : {}), timedOut: end.timedOut },
  };
}

/** The `command finished` log line's numbers (the caller adds who and which command). */
export function commandEndLogFields(end: CommandEnd): Pick<CommandEnd, 'exitCode' | 'signal' | 'timedOut' | 'bytesOut' | 'bytesIn' | 'durationMs'> {
  return {
    exitCode: end.exitCode,
    signal: end.signal,
    timedOut: end.timedOut,
    bytesOut: end.bytesOut,
    bytesIn: end.bytesIn,
    durationMs: end.durationMs,
  };
}
