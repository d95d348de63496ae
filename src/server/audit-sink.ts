/**
 * What the daemon tells its audit trail. The daemon calls these after the fact; a sink
 * must not throw and must be quick (the SQLite sink writes one row per call).
 */
import type { OpenRequest } from '../protocol/messages.js';
import type { ServerConnection } from './server-connection.js';

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

export interface AuditSink {
  connected(connection: ServerConnection): void;
  authenticated(connection: ServerConnection): void;
  authFailed(connection: ServerConnection, user: string | null, reason: string): void;
  denied(connection: ServerConnection, request: OpenRequest, reason: string): void;
  commandStarted(connection: ServerConnection, command: CommandRecord): void;
  commandEnded(connection: ServerConnection, command: CommandEnd): void;
  /** A file operation (put, get, list, …) or a refused path. */
  file?(connection: ServerConnection, detail: Record<string, unknown>): void;
  disconnected(connection: ServerConnection): void;
  /**
   * Asked before each new channel: a refusal (`SW_ERR_AUDIT_UNAVAILABLE` while the log
   * cannot be written) or null to go ahead. May retry the sink's storage; must stay quick.
   */
  admit?(connection: ServerConnection): { code: string; message: string } | null;
}
