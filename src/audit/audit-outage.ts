/**
 * While the audit log cannot be written: why, since when, and what was lost. Becomes the
 * `gap` row written when recording resumes, and the messages the daemon logs and sends.
 */
import type { AuditEvent, AuditKind } from './audit-event.js';

/** Why a write failed, in words an operator can act on. SQLite's extended codes: sqlite.org/rescode.html. */
export function describeAuditFailure(err: unknown, dir: string): { code: string; reason: string; fix: string } {
  const code = String((err as { code?: unknown }).code ?? 'ERROR');
  const message = (err as Error).message ?? String(err);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return { code, reason: `the file system holding ${dir} is full (${code})`, fix: `free space in ${dir}` };
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return { code, reason: `${dir} cannot be written (${code}: ${message})`, fix: `make ${dir} writable for the daemon` };
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') {
    return { code, reason: `I/O error on ${dir} (${code}: ${message})`, fix: `check the disk holding ${dir} (dmesg)` };
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY')) {
    return { code, reason: `another process holds the audit log's write lock (${code})`, fix: 'stop the other writer of the audit log' };
  }
  return { code, reason: `${code}: ${message}`, fix: `check ${dir}` };
}

export class AuditOutage {
  readonly since: Date;
  reason: string;
  code: string;
  fix: string;
  /** Write attempts that failed (the first batch and every retry). */
  failedWrites = 0;
  /** Rows kept in memory during the outage and written since. */
  delayed = 0;
  /** Rows dropped because the memory queue was full, by kind, and when the first and last were. */
  readonly lostByKind = new Map<AuditKind, number>();
  lost = 0;
  lostFrom: Date | null = null;
  lostTo: Date | null = null;
  /** The log file was deleted or replaced under the daemon: where its chain ended. */
  previousLog: { path: string; lastId: number; lastHash: string } | null = null;

  constructor(since: Date, failure: { code: string; reason: string; fix: string }) {
    this.since = since;
    this.code = failure.code;
    this.reason = failure.reason;
    this.fix = failure.fix;
  }

  update(failure: { code: string; reason: string; fix: string }): void {
    this.code = failure.code;
    this.reason = failure.reason;
    this.fix = failure.fix;
    this.failedWrites += 1;
  }

  drop(kind: AuditKind, time: Date): void {
    this.lost += 1;
    this.lostByKind.set(kind, (this.lostByKind.get(kind) ?? 0) + 1);
    this.lostFrom ??= time;
    this.lostTo = time;
  }

  /** The `gap` row that closes this outage in the chain. */
  marker(until: Date, delayed: number): AuditEvent {
    return {
      kind: 'gap',
      startedAt: this.since,
      endedAt: until,
      durationMs: Math.max(0, until.getTime() - this.since.getTime()),
      detail: {
        reason: this.reason,
        code: this.code,
        failedWrites: this.failedWrites,
        // Rows kept in memory during the outage and written just before this one.
        delayed,
        lost: this.lost,
        lostByKind: Object.fromEntries(this.lostByKind),
        lostFrom: this.lostFrom?.toISOString() ?? null,
        lostTo: this.lostTo?.toISOString() ?? null,
        ...(this.previousLog ? { previousLog: this.previousLog } : {}),
      },
    };
  }
}
