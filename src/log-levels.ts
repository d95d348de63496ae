/** Log levels, apart from log.ts so that checking a flag does not load pino. */

/** The levels `--log-level`, `logLevel:` and SHELLWIRE_LOG_LEVEL take, quietest first. */
export const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}
