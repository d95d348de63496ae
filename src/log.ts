/** Structured logs (JSON lines, pino) to stderr, so stdout stays free for what the user asked for. */
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.SHELLWIRE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'shellwire', level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: false }));
}
