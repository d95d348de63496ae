/**
 * The daemon's audit trail: every connection, login, refusal, denial and command becomes
 * one chained row in the SQLite audit log.
 *
 * When the log cannot be written (disk full, I/O error, read-only, file deleted), nothing is
 * silently lost: the rows stay in a bounded memory queue and are retried every
 * `AUDIT_RETRY_MS` and on each new request; past the bound they are counted by kind. By
 * default (`onFailure: 'refuse'`, like auditd's `disk_full_action`) new commands are refused
 * with `SW_ERR_AUDIT_UNAVAILABLE` meanwhile; `'continue'` keeps serving. Every failed batch is
 * logged (at most one line a second, with a count of the ones in between), and when recording
 * resumes a `gap` row in the chain says how long it lasted and how many rows of which kinds
 * were lost. `shellwire audit verify` reports it as a gap, not as tampering.
 */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { AuditRefusal, AuditSink } from './audit-sink.js';
import { ErrorCode } from '../errors.js';
import { AuditLog, toStoredContent, type AuditEvent, type StoredContent } from './audit-log.js';
import { AuditOutage, describeAuditFailure } from './audit-outage.js';
import { ConnectFailures } from './connect-failures.js';

/** What the daemon does while its audit log cannot be written (`serve --audit-failure`). */
export const AUDIT_FAILURE_ACTIONS = ['refuse', 'continue'] as const;
export type AuditFailureAction = (typeof AUDIT_FAILURE_ACTIONS)[number];

/** Rows held in memory while the log cannot be written (~0.5 KiB each); later ones are counted, not kept. */
export const AUDIT_QUEUE_LIMIT = 10_000;
/** How often a failing log is retried without any new request. */
export const AUDIT_RETRY_MS = 1_000;
// A request retries at most this often: a failing attempt costs up to one chunk of hashing and inserts.
const REQUEST_RETRY_MS = 100;
// Rows per transaction when catching up, so a retry on a still-full disk fails after one chunk.
const CHUNK_ROWS = 500;
const FAILURE_LOG_INTERVAL_MS = 1_000;

export interface DaemonAuditOptions {
  onFailure?: AuditFailureAction;
  queueLimit?: number;
  retryMs?: number;
}

export class DaemonAudit implements AuditSink {
  #log: AuditLog;
  #logger: Logger;
  #action: AuditFailureAction;
  #queueLimit: number;
  #retryMs: number;
  #pending: StoredContent[] = [];
  #scheduled = false;
  #outage: AuditOutage | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #lastAttempt = 0;
  #lastFailureLog = 0;
  #unloggedFailures = 0;

  #connectFailures = new ConnectFailures((event) => this.#record(event));

  constructor(log: AuditLog, logger: Logger, options: DaemonAuditOptions = {}) {
    this.#log = log;
    this.#logger = logger;
    this.#action = options.onFailure ?? 'refuse';
    this.#queueLimit = options.queueLimit ?? AUDIT_QUEUE_LIMIT;
    this.#retryMs = options.retryMs ?? AUDIT_RETRY_MS;
  }

  /** The log being written (a new one after the file was deleted or replaced). */
  get log(): AuditLog {
    return this.#log;
  }

  /** True while rows cannot be written. */
  get failing(): boolean {
    return this.#outage !== null;
  }

  /**
   * Called before a new channel (command, shell, file transfer) is admitted: retries a failing
   * log, and under `refuse` says why the request must be refused while it still fails.
   */
  admit(): AuditRefusal | null {
    if (this.#outage === null) return null;
    if (Date.now() - this.#lastAttempt >= REQUEST_RETRY_MS) this.flush();
    const outage = this.#outage;
    if (outage === null || this.#action === 'continue') return null;
    return {
      code: ErrorCode.AUDIT_UNAVAILABLE,
      message: `The daemon cannot write its audit log (${outage.reason}) and refuses new commands until it can. ` +
        `Its operator can ${outage.fix} (the daemon resumes by itself), or restart it with --audit-failure continue.`,
    };
  }

  /**
   * The one door (audit-sink.ts). A failed connect (one with a `source`) is bounded for
   * floods: one row per source a minute, plus one with the count (connect-failures.ts).
   */
  record(event: AuditEvent): void {
    if (event.source !== undefined) this.#connectFailures.record(event);
    else this.#record(event);
  }

  close(): void {
    this.#connectFailures.close();
    this.flush();
    this.#stopRetrying();
    if (this.#pending.length > 0 || this.#outage !== null) {
      this.#logger.error(
        { pending: this.#pending.length, lost: this.#outage?.lost ?? 0, path: this.#log.path },
        `audit log still not writable at shutdown: ${this.#pending.length + (this.#outage?.lost ?? 0)} audit rows are lost`,
      );
    }
    this.#log.close();
  }

  /**
   * Normalize the event now (a malformed one is a bug, reported here, never a batch that can
   * never be written) and write the queue in one transaction at the end of this event-loop
   * turn: the SQLite commit never sits between a command's frames, and a burst of commands
   * costs one commit, not two per command.
   */
  #record(event: AuditEvent): void {
    const time = new Date();
    let content: StoredContent;
    try {
      content = toStoredContent(event, time);
    } catch (err) {
      this.#logger.error({ err: (err as Error).message, kind: event.kind }, 'malformed audit event not recorded (a bug in shellwire)');
      return;
    }
    if (this.#outage !== null && this.#pending.length >= this.#queueLimit) {
      this.#outage.drop(event.kind, time);
      return;
    }
    this.#pending.push(content);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Write what is queued now (also called on close, by the retry timer and by `admit()`). */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 && this.#outage === null) return;
    this.#lastAttempt = Date.now();
    try {
      if (this.#log.replaced()) this.#reopen();
      // A new file: its first row is the gap row naming where the old chain ended.
      if (this.#outage?.previousLog) this.#resume(this.#outage, this.#outage.delayed + this.#pending.length);
      while (this.#pending.length > 0) {
        const chunk = this.#pending.length <= CHUNK_ROWS ? this.#pending : this.#pending.slice(0, CHUNK_ROWS);
        const written = chunk.length;
        this.#log.recordStored(chunk);
        this.#pending.splice(0, written);
        if (this.#outage !== null) this.#outage.delayed += written;
      }
      if (this.#outage !== null) this.#resume(this.#outage, this.#outage.delayed);
    } catch (err) {
      this.#failed(err);
    }
  }

  #resume(outage: AuditOutage, delayed: number): void {
    const until = new Date();
    this.#log.recordStored([toStoredContent(outage.marker(until, delayed), until)]);
    this.#outage = null;
    this.#stopRetrying();
    this.#logger.warn(
      { path: this.#log.path, since: outage.since.toISOString(), failedWrites: outage.failedWrites, delayed: outage.delayed, lost: outage.lost, lostByKind: Object.fromEntries(outage.lostByKind) },
      `audit log writable again after ${Math.round((until.getTime() - outage.since.getTime()) / 1000)} s; ${outage.lost} rows lost, a gap row records the outage`,
    );
  }

  #failed(err: unknown): void {
    const failure = describeAuditFailure(err, dirname(this.#log.path));
    const now = Date.now();
    const first = this.#outage === null;
    this.#outage ??= new AuditOutage(new Date(now), failure);
    this.#outage.update(failure);
    this.#retryTimer ??= setInterval(() => this.flush(), this.#retryMs).unref();
    if (!first && now - this.#lastFailureLog < FAILURE_LOG_INTERVAL_MS) {
      this.#unloggedFailures += 1;
      return;
    }
    const consequence = this.#action === 'refuse'
      ? `new commands are refused until it can be written: ${failure.fix}, or restart the daemon with --audit-failure continue`
      : `commands go on (--audit-failure continue); up to ${this.#queueLimit} rows wait in memory until it can be written: ${failure.fix}`;
    this.#logger.error(
      {
        code: failure.code, path: this.#log.path, pending: this.#pending.length, lost: this.#outage.lost,
        failedWrites: this.#outage.failedWrites, since: this.#outage.since.toISOString(), notLogged: this.#unloggedFailures,
      },
      `audit log write failed: ${failure.reason}; ${consequence}`,
    );
    this.#lastFailureLog = now;
    this.#unloggedFailures = 0;
  }

  /**
   * The file was deleted or replaced while open: SQLite would keep writing into the unlinked
   * inode and every row would vanish. Start (or open) the log at its path again; the gap row
   * written on resuming names the old chain's last row and hash.
   */
  #reopen(): void {
    const old = this.#log;
    const failure = {
      code: 'REPLACED',
      reason: `the audit log file ${old.path} was deleted or replaced while the daemon was running`,
      fix: `check who removed ${old.path}`,
    };
    if (this.#outage === null) {
      this.#outage = new AuditOutage(new Date(), failure);
      this.#logger.error({ path: old.path, lastId: old.head.lastId }, `${failure.reason}; writing to a new log there, which starts with a gap row naming the old chain's end`);
    }
    this.#outage.previousLog ??= { path: old.path, ...old.head };
    old.close();
    this.#log = AuditLog.open(old.path);
  }

  #stopRetrying(): void {
    if (this.#retryTimer) clearInterval(this.#retryTimer);
    this.#retryTimer = null;
  }
}
