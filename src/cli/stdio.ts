/**
 * A closed stdout or stderr (`shellwire … | head -1`, a terminal gone away) must neither
 * crash the CLI with a stack trace nor leave it hanging on a 'drain' that never comes.
 * Node ignores SIGPIPE, so the write fails with EPIPE as an 'error' event on the stream.
 */

import { once } from 'node:events';

/** Exit code of a process killed by SIGPIPE, as a shell shows it (what `yes | head -1` leaves). */
export const BROKEN_PIPE_EXIT = 141;

const exitGuard = (err: NodeJS.ErrnoException): void => {
  if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') throw err;
  // After this emit's other listeners (exec closes its remote command first), like a Unix tool.
  setImmediate(() => void exitAfterHooks(BROKEN_PIPE_EXIT));
};

/** What must go out before an early exit (NATS tunnels' resets: registered only where NATS is used). */
const exitHooks = new Set<() => Promise<void>>();
let exiting: Promise<never> | null = null;

/** Run `hook` (bounded by its own timeout) before `exitAfterHooks` exits. */
export function beforeEarlyExit(hook: () => Promise<void>): void {
  exitHooks.add(hook);
}

/**
 * Exit with `code` after the hooks ran (once, whoever asks first): a reader gone (`| head`) ends
 * the CLI at once, but the remote side must be told, as a TCP close tells a daemon.
 */
export function exitAfterHooks(code: number): Promise<never> {
  exiting ??= (async () => {
    await Promise.all([...exitHooks].map((hook) => hook().catch(() => {})));
    process.exit(code);
  })();
  return exiting;
}

/** Client commands: the reader went away, so stop quietly, as `cat` would. */
export function exitOnBrokenPipe(): void {
  process.stdout.on('error', exitGuard);
  process.stderr.on('error', exitGuard);
}

/**
 * The daemon: a closed stdout or stderr only means nobody reads the banner or the logs; it
 * keeps serving (and logs stop, see log-destination.ts), and SIGTERM still stops it.
 */
export function keepRunningOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.off('error', exitGuard);
    stream.on('error', () => {});
  }
}

/**
 * Exit with `code` once stdout and stderr have handed every queued byte to the OS.
 * `process.exit()` does not wait for writes still queued on a pipe (Node's "A note on process
 * I/O": pipes may be asynchronous), so under load the tail of a large output was lost with
 * exit status 0. An empty write's callback runs after every write queued before it.
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => {
    // A reader gone meanwhile (EPIPE) ends the wait too; exitOnBrokenPipe decides the code.
    stream.once('error', () => resolve());
    stream.write('', () => resolve());
  });
}

/** Write `data`, and wait for `stream` to drain when its buffer is full (a slow reader holds us back, never our memory). */
export async function write(stream: NodeJS.WriteStream, data: string | Buffer): Promise<void> {
  if (!stream.write(data)) await once(stream, 'drain');
}
