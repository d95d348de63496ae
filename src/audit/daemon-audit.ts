/**
 * The daemon's audit trail: every connection, login, refusal, denial and command becomes
 * one chained row in the SQLite audit log. Recording must never break serving: a failed
 * write is logged (once per burst) and the daemon carries on.
 */
import type { Logger } from 'pino';
import type { AuditSink, CommandEnd, CommandRecord } from '../server/audit-sink.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { OpenRequest } from '../protocol/messages.js';
import { commandText } from '../auth/policy.js';
import type { AuditEvent, AuditLog } from './audit-log.js';

export class DaemonAudit implements AuditSink {
  readonly log: AuditLog;
  #logger: Logger;
  #lastFailure = 0;
  #queue: AuditEvent[] = [];
  #times: Date[] = [];
  #scheduled = false;

  constructor(log: AuditLog, logger: Logger) {
    this.log = log;
    this.#logger = logger;
  }

  connected(c: ServerConnection): void {
    this.#record({ kind: 'connect', address: c.remote });
  }

  authenticated(c: ServerConnection): void {
    const user = c.user;
    this.#record({
      kind: 'auth-ok',
      user: user.name,
      osUser: user.account.name,
      address: c.remote,
      keyFingerprint: user.method === 'publickey' ? user.credential : null,
      detail: { method: user.method, credential: user.credential },
    });
  }

  authFailed(c: ServerConnection, user: string | null, reason: string): void {
    this.#record({ kind: 'auth-fail', user, address: c.remote, detail: { reason } });
  }

  denied(c: ServerConnection, request: OpenRequest, reason: string): void {
    this.#record({
      kind: 'denied',
      ...who(c),
      command: commandText(request),
      detail: { channelKind: request.kind, reason },
    });
  }

  commandStarted(c: ServerConnection, command: CommandRecord): void {
    this.#record({
      kind: 'command-start',
      ...who(c),
      cwd: command.cwd,
      command: command.command,
      startedAt: command.startedAt,
      detail: { channel: command.channel, ...(command.env?.length ? { env: command.env } : {}) },
    });
  }

  commandEnded(c: ServerConnection, command: CommandEnd): void {
    this.#record({
      kind: 'command-end',
      ...who(c),
      cwd: command.cwd,
      command: command.command,
      startedAt: command.startedAt,
      endedAt: command.endedAt,
      exitCode: command.exitCode,
      signal: command.signal,
      bytesIn: command.bytesIn,
      bytesOut: command.bytesOut,
      durationMs: command.durationMs,
      detail: { channel: command.channel, timedOut: command.timedOut },
    });
  }

  /** File operations (put/get/list/…), from the file channel. */
  file(c: ServerConnection, detail: Record<string, unknown>): void {
    this.#record({ kind: 'file', ...who(c), detail });
  }

  disconnected(c: ServerConnection): void {
    this.#record({ kind: 'disconnect', user: c.userName, address: c.remote });
  }

  close(): void {
    this.flush();
    this.log.close();
  }

  /**
   * Queue the event (stamped now) and write the queue in one transaction at the end of this
   * event-loop turn: the SQLite commit never sits between a command's frames, and a burst of
   * commands costs one commit, not two per command. A daemon crash can lose at most the
   * events of the current turn; nothing committed is ever lost.
   */
  #record(event: AuditEvent): void {
    this.#queue.push(event);
    this.#times.push(new Date());
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Write what is queued now (also called on close). */
  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const events = this.#queue;
    const times = this.#times;
    this.#queue = [];
    this.#times = [];
    try {
      this.log.recordMany(events, times);
    } catch (err) {
      const now = Date.now();
      if (now - this.#lastFailure > 10_000) this.#logger.error({ err: (err as Error).message, events: events.length }, 'audit log write failed');
      this.#lastFailure = now;
    }
  }
}

/** Who an event is about: the logged-in user, the OS account, and where they came from. */
function who(c: ServerConnection): Pick<AuditEvent, 'user' | 'osUser' | 'address'> {
  return { user: c.user.name, osUser: c.user.account.name, address: c.remote };
}
