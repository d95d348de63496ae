/** `AuditLog.query()` filters → one parameterized SELECT (the log caches one statement per shape). */
import type { AuditKind } from './audit-event.js';

export interface AuditQuery {
  /** Exact shellwire user name. */
  user?: string;
  /** The host a gateway's row is about (its detail's `host`: relayed channels, denials, put copies). */
  host?: string;
  /** Rows recorded at or after this time. */
  since?: Date;
  /** Rows recorded at or before this time. */
  until?: Date;
  /** Case-insensitive (ASCII) substring of command, cwd, user, OS user, address, key fingerprint, signal or detail. */
  grep?: string;
  exitCode?: number;
  /** Only failures: non-zero exit, killed by a signal, authentication failure, denial. */
  failed?: boolean;
  kind?: AuditKind;
  /** At most this many rows: the most recent ones. */
  limit?: number;
  /** The order rows come back in (default oldest first); the selection is the same either way. */
  order?: 'oldest-first' | 'newest-first';
}

// Times are stored as `Date.toISOString()` (fixed width, UTC), so text order is time order.
const GREP_TEXT = "lower(concat_ws(char(10), command, cwd, user, os_user, address, key_fingerprint, signal, detail))";
const FAILED = "(kind IN ('auth-fail', 'denied', 'failed') OR (kind = 'connect' AND json_extract(detail, '$.ok') = 0) OR (exit_code IS NOT NULL AND exit_code <> 0) OR signal IS NOT NULL)";

/**
 * The SELECT for `filter`; `reverse`: the rows come from SQLite newest first (to take the most
 * recent `limit`) and must be reversed to be returned oldest first.
 */
export function buildQuery(filter: AuditQuery): { sql: string; params: unknown[]; reverse: boolean } {
  const { where, params } = buildWhere(filter);
  let sql = `SELECT * FROM audit_events${where}`;
  const newestFirst = filter.order === 'newest-first';
  if (filter.limit !== undefined) {
    if (!Number.isSafeInteger(filter.limit) || filter.limit < 1) throw new RangeError(`limit must be a positive integer, got ${filter.limit}`);
    sql += ' ORDER BY id DESC LIMIT ?';
    params.push(filter.limit);
    return { sql, params, reverse: !newestFirst };
  }
  sql += newestFirst ? ' ORDER BY id DESC' : ' ORDER BY id';
  return { sql, params, reverse: false };
}

/** How many rows match `filter`, ignoring `limit` and `order` (to say how many a limit left out). */
export function buildCount(filter: AuditQuery): { sql: string; params: unknown[] } {
  const { where, params } = buildWhere(filter);
  return { sql: `SELECT count(*) AS n FROM audit_events${where}`, params };
}

function buildWhere(filter: AuditQuery): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.user !== undefined) {
    where.push('user = ?');
    params.push(filter.user);
  }
  if (filter.host !== undefined) {
    where.push("json_extract(detail, '$.host') = ?");
    params.push(filter.host);
  }
  if (filter.since !== undefined) {
    where.push('time >= ?');
    params.push(validDate(filter.since, 'since').toISOString());
  }
  if (filter.until !== undefined) {
    where.push('time <= ?');
    params.push(validDate(filter.until, 'until').toISOString());
  }
  if (filter.grep !== undefined && filter.grep !== '') {
    where.push(`instr(${GREP_TEXT}, lower(?)) > 0`);
    params.push(filter.grep);
  }
  if (filter.exitCode !== undefined) {
    if (!Number.isSafeInteger(filter.exitCode)) throw new RangeError(`exitCode must be an integer, got ${filter.exitCode}`);
    where.push('exit_code = ?');
    params.push(filter.exitCode);
  }
  if (filter.failed) where.push(FAILED);
  if (filter.kind !== undefined) {
    where.push('kind = ?');
    params.push(filter.kind);
  }
  return { where: where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '', params };
}

function validDate(value: Date, name: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new TypeError(`${name} must be a valid Date`);
  return value;
}
