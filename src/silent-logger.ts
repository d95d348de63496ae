/**
 * A logger that drops everything, for library use without logs. Kept apart from log.ts so
 * that importing the library (and starting the CLI) does not load pino.
 */
import type { Logger } from 'pino';

export function silentLogger(): Logger {
  const noop = () => {};
  const logger = {
    level: 'silent',
    fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop,
    child: () => logger,
    isLevelEnabled: () => false,
  };
  return logger as unknown as Logger;
}
