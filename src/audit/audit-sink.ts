/**
 * What the daemon tells its audit trail. The daemon calls these after the fact; a sink
 * must not throw and must be quick (the SQLite sink writes one row per call). Audit owns
 * this interface (the server implements the peers and calls the sink), so audit/ needs
 * nothing from server/.
 */
import type { OpenRequest } from '../protocol/messages.js';
import type { ErrorCode } from '../errors.js';

export interface CommandRecord {
  channel: number;
  command: string;
  cwd: string;
  startedAt: Date;
  /** Names of the environment variables the client set (values are not recorded: they may be secrets). */
  env?: string[];
}

export interface CommandEnd extends CommandRecord {
  endedAt: Date;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

/**
 * Who audit rows are about: a client of any listener (the shellwire protocol's
 * `ServerConnection`, the classic port's `ClassicConnection`). `user` is read only after login.
 */
export interface AuditPeer {
  /** `address:port` of the client. */
  readonly remote: string;
  /** The logged-in user's name; null before login. */
  readonly userName: string | null;
  readonly user: {
    readonly name: string;
    readonly account: { readonly name: string };
    readonly method: string;
    readonly credential: string | null;
  };
}

export interface AuditSink {
  connected(connection: AuditPeer): void;
  authenticated(connection: AuditPeer): void;
  authFailed(connection: AuditPeer, user: string | null, reason: string): void;
  denied(connection: AuditPeer, request: OpenRequest, reason: string): void;
  commandStarted(connection: AuditPeer, command: CommandRecord): void;
  commandEnded(connection: AuditPeer, command: CommandEnd): void;
  /** A file operation (put, get, list, …) or a refused path. */
  file?(connection: AuditPeer, detail: Record<string, unknown>): void;
  disconnected(connection: AuditPeer): void;
  /**
   * A connection that ended before HELLO: its TLS handshake failed, timed out or was reset,
   * or it was dropped before TLS (too many unauthenticated connections) or refused after it
   * (connection limit). `remote` is `ADDRESS:PORT` as accepted; `stage` says where it ended.
   */
  connectFailed?(address: string, remote: string, stage: string, reason: string): void;
  /**
   * Asked before each new channel: a refusal (`SW_ERR_AUDIT_UNAVAILABLE` while the log
   * cannot be written) or null to go ahead. May retry the sink's storage; must stay quick.
   */
  admit?(connection: AuditPeer): { code: ErrorCode; message: string } | null;
}
