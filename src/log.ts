/** Structured logs (JSON lines, pino) to stderr, so stdout stays free for what the user asked for. */
import pino from 'pino';
import type { Logger } from 'pino';
import { StderrDestination } from './log-destination.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from './log-levels.js';

export type { Logger };

export { LOG_LEVELS, isLogLevel, type LogLevel };

/**
 * A pino logger writing to stderr through `StderrDestination`: a closed or stuck stderr
 * never blocks, hangs or crashes the process (see log-destination.ts). `time` is ISO 8601
 * in UTC (`2025-01-31T12:00:00.000Z`): people and log shippers read it without converting
 * epoch milliseconds. An unknown level is a RangeError naming the levels (pino's own
 * error names none); the CLI checks with `isLogLevel` first to make it a usage error.
 */
export function createLogger(level: string = process.env.SHELLWIRE_LOG_LEVEL ?? 'info', destination = new StderrDestination(2)): Logger {
  if (!isLogLevel(level)) throw new RangeError(`Unknown log level "${level}"; use one of ${LOG_LEVELS.join(', ')}.`);
  process.once('exit', () => destination.flushSync());
  return pino({ name: 'shellwire', level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
