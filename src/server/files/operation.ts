/** What one file operation (put, get, stat, list, mkdir) needs from its channel, and gives it. */
import type { Channel } from '../../channel/channel-state.js';
import type { FileExit, FileOpenOk } from '../../protocol/file-messages.js';
import type { OpenRequest } from '../../protocol/messages.js';
import { ErrorCode } from '../../errors.js';
import type { ChannelHost } from '../channel-host.js';
import { FileOpError } from './paths.js';
import type { Location, LocateOptions } from './beneath.js';

export interface FileOpContext {
  readonly id: number;
  readonly host: ChannelHost;
  readonly request: OpenRequest;
  /** The channel, once started: STDOUT goes out through it within the client's credit (get, list). */
  channel(): Channel;
  /**
   * Reach a client path inside the allowed roots, holding descriptors of what it names
   * (close the Location when done); refuses (and logs) an escape.
   */
  locate(text: string, options: LocateOptions): Promise<Location>;
  /** Bytes of STDIN that reached the file: return their window credit. */
  credit(bytes: number): void;
  /** Send EXIT and CLOSE (ignored once the channel is closing). */
  finish(result: FileExit): void;
}

export type OpenFields = Omit<FileOpenOk, 'window' | 'maxPacket'>;

export interface FileOperation {
  /** STDIN credit announced in OPEN_OK: 0 unless the client sends file data. */
  readonly inWindow: number;
  /** Prepare (resolve, open, hash a partial file); the OPEN_OK fields, or throws FileOpError. */
  open(): Promise<OpenFields>;
  /** OPEN_OK was sent: start sending, or wait for data. */
  run(): void;
  onData?(chunk: Buffer): void;
  onEof?(payload: Buffer): void;
  onWindow?(): void;
  /** The channel ended before the operation did (client CLOSE, connection lost, shutdown). */
  abort(): void;
  /** Fields for the daemon's log line when the operation ends. */
  summary(): Record<string, unknown>;
}

/**
 * EXIT fields for a failure: `FileOpError`s keep their message and errno. Anything else is
 * our bug, not the client's request: SW_ERR_INTERNAL with a generic message, the details in
 * the daemon's log only.
 */
export function failure(err: unknown, host?: Pick<ChannelHost, 'log' | 'remote'>): FileExit {
  if (err instanceof FileOpError) {
    const exit: FileExit = { ok: false, error: { code: err.code, message: err.message } };
    if (err.errno) exit.errno = err.errno;
    return exit;
  }
  host?.log.error({ client: host.remote, code: ErrorCode.INTERNAL, err: (err as Error)?.message ?? String(err), stack: (err as Error)?.stack }, 'file operation failed: internal error (a bug in shellwire)');
  return { ok: false, error: { code: ErrorCode.INTERNAL, message: INTERNAL_FILE_ERROR } };
}

/** What the client hears of our own fault in a file operation. */
export const INTERNAL_FILE_ERROR = 'Internal error in the daemon during the file operation (a bug in shellwire); the details are in the daemon log.';
