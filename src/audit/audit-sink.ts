/**
 * The audit trail's one door: `AuditSink.record(event)`. Everything the daemon records — a
 * connection and its end, a login or a failed one, a denial, a command's start and end, a
 * file operation, a connection that failed before HELLO — is an `AuditEvent` (audit-event.ts)
 * built by events.ts or command-record.ts and handed to `record`.
 *
 * Who and where are filled in once per connection: the server makes one `ConnectionAudit`
 * for each client (any listener), tells it the user at login, and channels record through it
 * without knowing who is at the other end. Audit owns this interface, so audit/ needs nothing
 * from server/.
 */
import { ErrorCode } from '../errors.js';
import type { AuditEvent } from './audit-event.js';

/** Why a new channel must be refused while the audit trail cannot record it. */
export interface AuditRefusal {
  code: ErrorCode;
  message: string;
}

export interface AuditSink {
  /**
   * Record one event, after the fact. Should not throw and must be quick: the daemon calls it
   * between a command's frames (the SQLite sink queues the row and commits once per
   * event-loop turn). A throw is contained (`ContainedSink`): logged, the row lost, and new
   * channels refused until a later `record` succeeds.
   */
  record(event: AuditEvent): void;
  /**
   * Asked before each new channel: a refusal (`SW_ERR_AUDIT_UNAVAILABLE` while the log
   * cannot be written) or null to go ahead. May retry the sink's storage; must stay quick.
   */
  admit?(): AuditRefusal | null;
}

/** What a channel records through (`ChannelHost.audit`): who and where are already known. */
export interface AuditRecorder {
  record(event: AuditEvent): void;
}

/** The logged-in user, as the audit rows name them. */
export interface AuditUser {
  readonly name: string;
  readonly account: { readonly name: string };
}

/**
 * One client's side of the audit trail: fills in `address` (the peer, `HOST:PORT`), `user`
 * and `osUser` (null before login) on every event that leaves them undefined, and is a no-op
 * without a sink. An event that names them itself (a failed login's claimed user) keeps its own.
 */
export class ConnectionAudit implements AuditRecorder {
  readonly #sink: AuditSink | null;
  readonly #address: string;
  #user: AuditUser | null = null;

  constructor(sink: AuditSink | null | undefined, address: string) {
    this.#sink = sink ?? null;
    this.#address = address;
  }

  /** From now on, events are about `user`. */
  loggedIn(user: AuditUser): void {
    this.#user = user;
  }

  record(event: AuditEvent): void {
    if (!this.#sink) return;
    this.#sink.record({
      ...event,
      user: event.user === undefined ? this.#user?.name ?? null : event.user,
      osUser: event.osUser === undefined ? this.#user?.account.name ?? null : event.osUser,
      address: event.address === undefined ? this.#address : event.address,
    });
  }

  /** The sink's `admit()`: null (go ahead) without a sink. */
  admit(): AuditRefusal | null {
    return this.#sink?.admit?.() ?? null;
  }
}

/** Where a contained sink reports its failures (a pino logger fits). */
export interface AuditFaultLog {
  error(fields: object, message: string): void;
}

/**
 * A sink the daemon did not write (`ServerOptions.audit`) behind one guard: `record` and
 * `admit` are called from socket and process events, where a throw would end the process or
 * the connection. A throw is contained here, logged, and read as "the audit trail is
 * unavailable", as docs/audit.md "When the log cannot be written" says:
 *
 * - `record` threw: that row is lost (the connection, login or command it was about goes on:
 *   it already happened). Until a later `record` succeeds, `admit` refuses new channels with
 *   `SW_ERR_AUDIT_UNAVAILABLE` under `onFailure: 'refuse'` (the default); the refusal's own
 *   `denied` row is the retry, so the daemon resumes by itself when the sink works again.
 * - `admit` threw: that channel is refused the same way (under `'continue'` it goes ahead).
 */
export class ContainedSink implements AuditSink {
  readonly #sink: AuditSink;
  readonly #log: AuditFaultLog | null;
  readonly #refuse: boolean;
  #failure: string | null = null;

  constructor(sink: AuditSink, log: AuditFaultLog | null, onFailure: 'refuse' | 'continue' = 'refuse') {
    this.#sink = sink;
    this.#log = log;
    this.#refuse = onFailure === 'refuse';
  }

  /** `sink` behind the guard (once: a contained sink is returned as it is). */
  static of(sink: AuditSink, log: AuditFaultLog | null, onFailure?: 'refuse' | 'continue'): AuditSink {
    return sink instanceof ContainedSink ? sink : new ContainedSink(sink, log, onFailure);
  }

  record(event: AuditEvent): void {
    try {
      this.#sink.record(event);
      this.#failure = null;
    } catch (err) {
      this.#failed(err, `recording a ${event.kind} event`);
    }
  }

  admit(): AuditRefusal | null {
    let refusal: AuditRefusal | null = null;
    try {
      refusal = this.#sink.admit?.() ?? null;
    } catch (err) {
      this.#failed(err, 'admitting a request');
    }
    if (this.#failure === null || !this.#refuse) return refusal;
    return {
      code: ErrorCode.AUDIT_UNAVAILABLE,
      message: 'The daemon cannot write its audit trail (its audit sink failed) and refuses new commands until it can. ' +
        "Its operator can find the sink's error in the daemon's log; the daemon retries with every request.",
    };
  }

  #failed(err: unknown, doing: string): void {
    this.#failure = err instanceof Error ? err.message : String(err);
    this.#log?.error({ code: ErrorCode.AUDIT_UNAVAILABLE, err: this.#failure, stack: (err as Error)?.stack }, `audit sink threw while ${doing}; that row is lost${this.#refuse ? ' and new commands are refused until the sink works again' : ''}`);
  }
}
