/** Structured logs (JSON lines, pino) to stderr, so stdout stays free for what the user asked for. */
import pino from 'pino';
import type { Logger } from 'pino';
import { StderrDestination } from './log-destination.js';

export type { Logger };

/**
 * A pino logger writing to stderr through `StderrDestination`: a closed or stuck stderr
 * never blocks, hangs or crashes the process (see log-destination.ts).
 */
export function createLogger(level: string = process.env.SHELLWIRE_LOG_LEVEL ?? 'info', destination = new StderrDestination(2)): Logger {
  process.once('exit', () => destination.flushSync());
  return pino({ name: 'shellwire', level, base: { pid: process.pid } }, destination);
}
