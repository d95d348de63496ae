/**
 * The `gateway` channel kind's op `audit`: rows of the gateway's own audit log, for the web
 * console's audit page (and any client). An operator sees only her own rows; one with
 * `audit: all` in the gateway's users.yaml sees everyone's (as `recordings: all`). The read
 * is itself audited (a `file` row naming the filters and how many rows went out; a refused
 * read is a `denied` row), as a recording fetch is: who looked at whose trail is part of it.
 *
 *   { op: 'audit', user?, onHost?, event?, since?, until?, grep?, failed?, limit? }
 *
 * (`onHost` and `event` filter by host and by kind: `host` and `kind` are OPEN header fields.)
 *     →  { rows: [AuditRow as JSON], more: boolean }   newest first; `more`: older rows match too
 *
 * `since`/`until` are ISO times; `limit` 1 to MAX_AUDIT_OP_ROWS (default DEFAULT_AUDIT_OP_ROWS).
 */
import { ErrorCode, RequestError, ShellwireError } from '../errors.js';
import { AUDIT_KINDS, type AuditKind, type AuditLog, type AuditQuery } from '../audit/audit-log.js';
import type { AuditSink } from '../audit/audit-sink.js';
import { DaemonAudit } from '../audit/daemon-audit.js';
import { gatewayPolicyOf } from './gateway-config.js';
import type { GatewayOp } from './gateway-kind.js';

/** Rows one `audit` op answers at most. */
export const MAX_AUDIT_OP_ROWS = 1000;
/** Rows when the request names no `limit`. */
export const DEFAULT_AUDIT_OP_ROWS = 100;

/**
 * The checked filter of one `audit` op for `operator` (`all`: she may read everyone's rows).
 *
 * @throws {RequestError} `SW_ERR_BAD_REQUEST` for a malformed filter; `SW_ERR_DENIED` for
 *   `user` naming someone else without `audit: all`.
 */
export function auditFilter(params: Record<string, unknown>, operator: string, all: boolean): AuditQuery & { limit: number } {
  const text = (name: string): string | undefined => {
    const v = params[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string' || v.length > 4096) throw bad(`"${name}" must be a string (at most 4096 characters)`);
    return v;
  };
  const time = (name: string): Date | undefined => {
    const v = text(name);
    if (v === undefined) return undefined;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw bad(`"${name}" must be an ISO time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(v)}`);
    return d;
  };
  const user = text('user');
  if (user !== undefined && user !== operator && !all) {
    throw new RequestError(ErrorCode.DENIED, `${operator} may read only their own audit rows (the gateway's users.yaml: audit: all reads everyone's)`);
  }
  const kind = text('event');
  if (kind !== undefined && !(AUDIT_KINDS as readonly string[]).includes(kind)) throw bad(`"event" (the row kind) must be one of ${AUDIT_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  const limit = params.limit ?? DEFAULT_AUDIT_OP_ROWS;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_OP_ROWS) throw bad(`"limit" must be a whole number from 1 to ${MAX_AUDIT_OP_ROWS}`);
  const failed = params.failed;
  if (failed !== undefined && typeof failed !== 'boolean') throw bad('"failed" must be true or false');
  const filter: AuditQuery & { limit: number } = { limit, order: 'newest-first' };
  const who = user ?? (all ? undefined : operator);
  if (who !== undefined) filter.user = who;
  const host = text('onHost');
  if (host !== undefined) filter.host = host;
  if (kind !== undefined) filter.kind = kind as AuditKind;
  const since = time('since');
  if (since) filter.since = since;
  const until = time('until');
  if (until) filter.until = until;
  const grep = text('grep');
  if (grep !== undefined) filter.grep = grep;
  if (failed) filter.failed = true;
  return filter;
}

/** The `audit` op over the gateway's audit trail (`sink()`: the server's, known once it exists). */
export function auditOp(sink: () => AuditSink | null): GatewayOp {
  return (user, params, host) => {
    const filters = Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'op'));
    try {
      const trail = sink();
      const daemon = trail instanceof DaemonAudit ? trail : null;
      const log: AuditLog | null = daemon ? daemon.log : null;
      if (!daemon || !log) throw new RequestError(ErrorCode.BAD_REQUEST, 'This gateway keeps no audit log of its own that it can read (an embedder gave it another audit sink).');
      const filter = auditFilter(params, user.name, gatewayPolicyOf(user).audit === 'all');
      // Rows of this very turn (the reader's own last action) are still queued: write them first.
      daemon.flush();
      const rows = log.query({ ...filter, limit: filter.limit + 1 });
      const more = rows.length > filter.limit;
      if (more) rows.pop();
      host.audit.record({ kind: 'file', detail: { channelKind: 'gateway', op: 'audit', filters, rows: rows.length } });
      return Buffer.from(`${JSON.stringify({ rows, more })}\n`);
    } catch (err) {
      if (!(err instanceof ShellwireError)) throw err;
      host.audit.record({ kind: err.code === ErrorCode.DENIED ? 'denied' : 'failed', detail: { channelKind: 'gateway', op: 'audit', filters, reason: err.message, outcome: { code: err.code, message: err.message } } });
      return { code: err.code, message: err.message };
    }
  };
}

function bad(why: string): RequestError {
  return new RequestError(ErrorCode.BAD_REQUEST, `Bad audit request: ${why}.`);
}
