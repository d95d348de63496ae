/**
 * What the daemon records (`AuditEvent`), what a query returns (`AuditRow`), and the one
 * mapping between them and the table's columns (`StoredRow`). The hash chain is computed
 * over `StoredRow` values exactly as SQLite hands them back, so everything that could
 * change on the way in (lone surrogates, -0, Dates) is normalized here, before hashing.
 */

import { isOsString } from '../protocol/os-bytes.js';

export const AUDIT_KINDS = [
  'connect', 'auth-ok', 'auth-fail', 'command-start', 'command-end', 'denied', 'file', 'disconnect',
  // Written by the daemon when recording resumes after the log could not be written (disk
  // full, I/O error, file deleted): the outage's span and what was lost (daemon-audit.ts).
  'gap',
  // A channel that could not be opened for an operational reason, not a policy refusal: a
  // gateway could not reach the host, the host had no room, the command could not start.
  // `audit --kind denied` stays the list of policy decisions (docs/audit.md).
  'failed',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** One thing that happened. Omitted and `null` fields are stored as NULL. */
export interface AuditEvent {
  kind: AuditKind;
  /** The shellwire user (from the key, token or password that authenticated). */
  user?: string | null;
  /** The OS account the command runs as. */
  osUser?: string | null;
  /** The peer, `HOST:PORT`. */
  address?: string | null;
  /** `SHA256:…` of the client's public key. */
  keyFingerprint?: string | null;
  cwd?: string | null;
  command?: string | null;
  startedAt?: Date | null;
  endedAt?: Date | null;
  exitCode?: number | null;
  signal?: string | null;
  bytesIn?: number | null;
  bytesOut?: number | null;
  durationMs?: number | null;
  /** Anything else worth keeping (a denial's rule, a failure's reason); stored as JSON. Never secrets. */
  detail?: Record<string, unknown> | null;
  /**
   * Not stored: the peer's address without its port, on a connection that failed before
   * HELLO (`connectFailedEvent`), so a sink can bound a flood per source (connect-failures.ts).
   */
  source?: string;
}

/** A recorded event, as `AuditLog.query()` returns it. */
export interface AuditRow {
  id: number;
  /** When the event was recorded (the log's clock). */
  time: Date;
  kind: AuditKind;
  user: string | null;
  osUser: string | null;
  address: string | null;
  keyFingerprint: string | null;
  cwd: string | null;
  command: string | null;
  startedAt: Date | null;
  endedAt: Date | null;
  exitCode: number | null;
  signal: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  durationMs: number | null;
  detail: Record<string, unknown> | null;
  /** Hex SHA-256 of the previous row (the genesis value for row 1). */
  prevHash: string;
  /** Hex SHA-256 over `prevHash` and this row's content (see chain.ts). */
  hash: string;
}

/** A row of `audit_events`, column for column. */
export interface StoredRow {
  id: number;
  time: string;
  kind: string;
  user: string | null;
  os_user: string | null;
  address: string | null;
  key_fingerprint: string | null;
  cwd: string | null;
  command: string | null;
  started_at: string | null;
  ended_at: string | null;
  exit_code: number | null;
  signal: string | null;
  bytes_in: number | null;
  bytes_out: number | null;
  duration_ms: number | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

/** The columns a row's hash covers, in hashing order. Changing this list is a format change (bump CHAIN_FORMAT). */
export const HASHED_COLUMNS = [
  'id', 'time', 'kind', 'user', 'os_user', 'address', 'key_fingerprint', 'cwd', 'command',
  'started_at', 'ended_at', 'exit_code', 'signal', 'bytes_in', 'bytes_out', 'duration_ms', 'detail',
] as const satisfies ReadonlyArray<keyof StoredRow>;

export type StoredContent = Omit<StoredRow, 'id' | 'prev_hash' | 'hash'>;

const KIND_SET: ReadonlySet<string> = new Set(AUDIT_KINDS);

export function isAuditKind(value: string): value is AuditKind {
  return KIND_SET.has(value);
}

/**
 * Validate and normalize an event into column values. Throws `TypeError`/`RangeError` for a
 * malformed event: that is a bug in the caller, and a silently mangled audit row is worse.
 */
export function toStoredContent(event: AuditEvent, time: Date): StoredContent {
  if (!isAuditKind(event.kind)) throw new TypeError(`Unknown audit event kind: ${JSON.stringify(event.kind)}`);
  const detail = withExactText(event);
  return {
    time: isoTime(time, 'time'),
    kind: event.kind,
    user: text(event.user, 'user'),
    os_user: text(event.osUser, 'osUser'),
    address: text(event.address, 'address'),
    key_fingerprint: text(event.keyFingerprint, 'keyFingerprint'),
    cwd: text(event.cwd, 'cwd'),
    command: text(event.command, 'command'),
    started_at: event.startedAt == null ? null : isoTime(event.startedAt, 'startedAt'),
    ended_at: event.endedAt == null ? null : isoTime(event.endedAt, 'endedAt'),
    exit_code: integer(event.exitCode, 'exitCode', -Infinity),
    signal: text(event.signal, 'signal'),
    bytes_in: integer(event.bytesIn, 'bytesIn', 0),
    bytes_out: integer(event.bytesOut, 'bytesOut', 0),
    duration_ms: finite(event.durationMs, 'durationMs'),
    detail: detail == null ? null : text(JSON.stringify(detail), 'detail'),
  };
}

/**
 * Command text and cwd are OS byte strings (docs/protocol.md §4.11): a byte that is not UTF-8
 * is a lone surrogate, which a TEXT column cannot hold. The column gets the readable form
 * (U+FFFD, see `text`), and `detail.osText` the exact string — JSON writes lone surrogates as
 * `\udcXX` escapes, so it survives SQLite and the hash chain — which `toAuditRow` restores.
 */
const EXACT_TEXT_KEY = 'osText';
const EXACT_TEXT_FIELDS = ['command', 'cwd'] as const;

function withExactText(event: AuditEvent): Record<string, unknown> | null | undefined {
  const exact: Record<string, string> = {};
  for (const field of EXACT_TEXT_FIELDS) {
    const value = event[field];
    // Only strings that name bytes; any other lone surrogate is stored as U+FFFD, and that is all.
    if (typeof value === 'string' && LONE_SURROGATE.test(value) && isOsString(value)) exact[field] = value;
  }
  if (Object.keys(exact).length === 0) return event.detail;
  return { ...event.detail, [EXACT_TEXT_KEY]: exact };
}

export function toAuditRow(row: StoredRow): AuditRow {
  const detail = parseDetail(row.detail);
  const exact = detail?.[EXACT_TEXT_KEY];
  let cwd = row.cwd;
  let command = row.command;
  if (exact !== null && typeof exact === 'object' && !Array.isArray(exact)) {
    const { cwd: exactCwd, command: exactCommand } = exact as Record<string, unknown>;
    if (typeof exactCwd === 'string') cwd = exactCwd;
    if (typeof exactCommand === 'string') command = exactCommand;
  }
  return {
    id: row.id,
    time: new Date(row.time),
    kind: row.kind as AuditKind,
    user: row.user,
    osUser: row.os_user,
    address: row.address,
    keyFingerprint: row.key_fingerprint,
    cwd,
    command,
    startedAt: row.started_at === null ? null : new Date(row.started_at),
    endedAt: row.ended_at === null ? null : new Date(row.ended_at),
    exitCode: row.exit_code,
    signal: row.signal,
    bytesIn: row.bytes_in,
    bytesOut: row.bytes_out,
    durationMs: row.duration_ms,
    detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function parseDetail(json: string | null): Record<string, unknown> | null {
  if (json === null) return null;
  try {
    const value: unknown = JSON.parse(json);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through: only a hand-edited row gets here, and `verify()` will say so
  }
  return { unparsableDetail: json };
}

// A lone UTF-16 surrogate cannot be stored as UTF-8: SQLite would hand back U+FFFD and the
// row's hash would no longer match. Replace it first, as the UTF-8 encoder would.
const LONE_SURROGATE = /\p{Cs}/u;

function text(value: string | null | undefined, field: string): string | null {
  if (value == null) return null;
  if (typeof value !== 'string') throw new TypeError(`Audit event ${field} must be a string, got ${typeof value}`);
  return LONE_SURROGATE.test(value) ? Buffer.from(value, 'utf8').toString('utf8') : value;
}

function integer(value: number | null | undefined, field: string, min: number): number | null {
  if (value == null) return null;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Audit event ${field} must be ${min === 0 ? 'a non-negative' : 'an'} integer, got ${String(value)}`);
  }
  return value === 0 ? 0 : value; // -0 → 0: SQLite stores 0 either way
}

function finite(value: number | null | undefined, field: string): number | null {
  if (value == null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`Audit event ${field} must be a finite non-negative number, got ${String(value)}`);
  }
  return value === 0 ? 0 : value;
}

function isoTime(value: Date, field: string): string {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new TypeError(`Audit event ${field} must be a valid Date`);
  return value.toISOString();
}
