/**
 * How a client command ends on a signal, whatever the daemon does (a frozen or unreachable
 * host included): SIGTERM exits 143, SIGHUP 129, a second Ctrl-C 130 (128 + the signal's
 * number, as a shell reports it), within `EXIT_DEADLINE_MS`. `timeout(1)`, CI runners and
 * systemd rely on that.
 *
 * The order: the command's own goodbye first (CLOSE its channels, so the daemon kills the
 * remote commands and keeps partial files), for at most `CLOSE_GRACE_MS`; then every
 * connection is ended, and destroyed if the daemon does not answer within
 * `SOCKET_CLOSE_MS`; then the process exits once stdout and stderr are flushed. A deadline
 * timer exits anyway if any step hangs (a blocked stdout reader, say). A daemon we could not
 * say goodbye to still kills the commands when it notices the connection is gone.
 */
import { constants } from 'node:os';
import type { Connection } from '../client/connection.js';
import { exitWhenFlushed } from './stdio.js';

/** How long the command's goodbye (channel CLOSE, transfer abort) may take. */
export const CLOSE_GRACE_MS = 750;
/** Then how long a connection may take to close before its socket is destroyed. */
export const SOCKET_CLOSE_MS = 500;
/** The process exits this long after the signal, whatever is still pending. */
export const EXIT_DEADLINE_MS = 2_000;

export type TerminationSignal = 'SIGTERM' | 'SIGHUP' | 'SIGINT';

const connections = new Set<Connection>();
const goodbyes = new Set<() => unknown>();
let exitCode: number | null = null;

/** 128+N for a signal, as shells report it. */
export function signalExitCode(signal: string): number {
  const number = (constants.signals as Record<string, number>)[signal];
  return 128 + (number ?? 0);
}

/** The exit status the process is ending with because of a signal, or null. */
export function terminationExitCode(): number | null {
  return exitCode;
}

/** Close (and if need be destroy) `conn` when the process ends on a signal. */
export function closeOnTermination(conn: Connection): Connection {
  connections.add(conn);
  conn.once('close', () => connections.delete(conn));
  return conn;
}

/**
 * Run `goodbye` first when the process ends on a signal: it starts the command's graceful
 * stop and may return a promise of its completion (waited for at most CLOSE_GRACE_MS).
 */
export function onTermination(goodbye: () => unknown): void {
  goodbyes.add(goodbye);
}

/** SIGTERM and SIGHUP end the process (see the module comment); Ctrl-C is each command's own. */
export function exitOnTerminationSignals(): void {
  process.on('SIGTERM', () => terminate('SIGTERM'));
  process.on('SIGHUP', () => terminate('SIGHUP'));
}

/** End the process because of `signal`, within EXIT_DEADLINE_MS. A second call exits at once. */
export function terminate(signal: TerminationSignal): void {
  if (exitCode !== null) process.exit(exitCode);
  const code = signalExitCode(signal);
  exitCode = code;
  // Whatever path the process takes to exit from here on (a command that ends as it is
  // canceled, an error because its connection was destroyed), the status says what ended it.
  process.on('exit', () => {
    process.exitCode = code;
  });
  setTimeout(() => process.exit(code), EXIT_DEADLINE_MS);
  void (async () => {
    const steps = Promise.allSettled([...goodbyes].map(async (goodbye) => goodbye()));
    await Promise.race([steps, delay(CLOSE_GRACE_MS)]);
    await Promise.allSettled([...connections].map((conn) => conn.close({ timeoutMs: SOCKET_CLOSE_MS })));
    await steps;
    await exitWhenFlushed(code);
  })();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
