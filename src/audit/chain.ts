/**
 * The audit log's hash chain, and the walk that checks it.
 *
 *   hash(row) = hex SHA-256( prev_hash | JSON [CHAIN_FORMAT, id, time, kind, …, detail] )
 *   prev_hash(row 1) = GENESIS_HASH;  prev_hash(row n) = hash(row n-1)
 *
 * plus a one-row `chain_head` table (last id, last hash, row count) written in the same
 * transaction as each row, so that removing rows from the end is as visible as anywhere else.
 *
 * What this does and does not prove: an edit, deletion, insertion or reordering done by
 * hand — or by anything that does not know to recompute hashes — is found, and the first
 * bad row is named. Someone with write access to the file who recomputes every hash after
 * the row they change (and the chain head) produces a log that verifies: the chain has no
 * secret in it. Closing that needs an anchor the attacker cannot rewrite — the head hash
 * shipped to another machine, or signed by a key the daemon does not hold. Not in scope yet.
 */
import { createHash } from 'node:crypto';
import { HASHED_COLUMNS, type StoredRow } from './audit-event.js';

/** Version of the canonical serialization; part of every hash. */
export const CHAIN_FORMAT = 1;

/** Row 1's `prev_hash`: a fixed, documented value, so a log cannot start from anywhere. */
export const GENESIS_HASH = createHash('sha256').update('shellwire audit log genesis v1').digest('hex');

/** The bytes a row's hash covers (besides `prev_hash`): a JSON array in `HASHED_COLUMNS` order. */
export function canonicalContent(row: Pick<StoredRow, (typeof HASHED_COLUMNS)[number]>): string {
  const values: unknown[] = [CHAIN_FORMAT];
  for (const column of HASHED_COLUMNS) values.push(row[column]);
  return JSON.stringify(values);
}

export function rowHash(prevHash: string, row: Pick<StoredRow, (typeof HASHED_COLUMNS)[number]>): string {
  return createHash('sha256').update(prevHash).update(canonicalContent(row)).digest('hex');
}

export interface ChainHead {
  lastId: number;
  lastHash: string;
  rows: number;
}

export type AuditProblem = 'edited' | 'deleted' | 'inserted' | 'reordered';

/**
 * A `gap` row: the daemon could not write the log for a while and says so in the chain.
 * Not tampering (the row is chained like any other), but a hole in the record to show.
 */
export interface AuditGap {
  rowId: number;
  /** When the outage began and when recording resumed (ISO 8601). */
  from: string | null;
  to: string | null;
  /** Rows that were never written (the memory queue was full), by kind. */
  lost: number;
  lostByKind: Record<string, number>;
  /** Why the log could not be written, e.g. `SQLITE_FULL: database or disk is full`. */
  reason: string | null;
}

export type VerifyResult =
  | { ok: true; rows: number; /** Present when the chain holds gap markers. */ gaps?: AuditGap[] }
  | {
      ok: false;
      /** Rows checked and found good before the problem. */
      rows: number;
      /** The first bad row (for deleted rows: the first missing id). */
      rowId: number;
      problem: AuditProblem;
      message: string;
    };

/**
 * Walk `rows` (ascending id) against `head`. `findIdByHash` is only called after the walk
 * has stopped (so the caller's cursor is closed), to tell a reordered row from an edited one.
 */
export function verifyChain(
  rows: Iterable<StoredRow>,
  head: ChainHead | undefined,
  findIdByHash: (hash: string) => number | undefined,
): VerifyResult {
  if (head === undefined) {
    return { ok: false, rows: 0, rowId: 0, problem: 'deleted', message: 'the chain head record is missing, so rows removed from the end cannot be ruled out' };
  }
  let prevId = 0;
  let prevHash = GENESIS_HASH;
  let good = 0;
  let brokenLink: StoredRow | undefined;
  let selfHashOk = true;
  const gaps: AuditGap[] = [];
  const bad = (rowId: number, problem: AuditProblem, message: string): VerifyResult => ({ ok: false, rows: good, rowId, problem, message });

  for (const row of rows) {
    if (row.id <= prevId || row.id > head.lastId) {
      return bad(row.id, 'inserted', `row ${row.id} is not part of the chain (the log records rows 1..${head.lastId})`);
    }
    if (row.id !== prevId + 1) {
      const range = row.id - 1 === prevId + 1 ? `row ${prevId + 1} is` : `rows ${prevId + 1}..${row.id - 1} are`;
      return bad(prevId + 1, 'deleted', `${range} missing: row ${row.id} follows row ${prevId === 0 ? '(start of log)' : prevId}`);
    }
    selfHashOk = typeof row.hash === 'string' && rowHash(String(row.prev_hash), row) === row.hash;
    if (row.prev_hash !== prevHash) {
      brokenLink = row;
      break;
    }
    if (!selfHashOk) return bad(row.id, 'edited', `row ${row.id}'s content does not match its hash`);
    prevId = row.id;
    prevHash = row.hash;
    good++;
    if (row.kind === 'gap') gaps.push(gapOf(row));
  }

  if (brokenLink !== undefined) {
    const row = brokenLink;
    // The row does not chain from the row before it. Which story fits?
    const chainsFrom = findIdByHash(String(row.prev_hash));
    if (chainsFrom !== undefined && chainsFrom < prevId) {
      // Rows between chainsFrom and this row were slipped in (ids renumbered to make room).
      const first = chainsFrom + 1;
      const range = first === prevId ? `row ${first} was` : `rows ${first}..${prevId} were`;
      return { ok: false, rows: chainsFrom, rowId: first, problem: 'inserted', message: `${range} inserted: row ${row.id} chains from row ${chainsFrom}` };
    }
    if (chainsFrom !== undefined && chainsFrom > prevId) {
      return bad(row.id, 'reordered', `row ${row.id} chains from row ${chainsFrom}, not from row ${prevId === 0 ? '(start of log)' : prevId}: rows were moved`);
    }
    if (!selfHashOk || prevId === 0) {
      return bad(row.id, 'edited', `row ${row.id}'s content does not match its hash, and it does not chain from ${prevId === 0 ? 'the genesis value' : `row ${prevId}`}`);
    }
    // The row itself is consistent: the previous row was changed and its hash recomputed.
    return { ok: false, rows: good - 1, rowId: prevId, problem: 'edited', message: `row ${prevId} was changed and its hash recomputed: row ${row.id} chained from a different row ${prevId}` };
  }
  if (prevId < head.lastId) {
    const range = prevId + 1 === head.lastId ? `row ${head.lastId} is` : `rows ${prevId + 1}..${head.lastId} are`;
    return bad(prevId + 1, 'deleted', `${range} missing from the end of the log (the chain head records ${head.lastId} rows)`);
  }
  if (prevHash !== head.lastHash) {
    return { ok: false, rows: Math.max(good - 1, 0), rowId: prevId, problem: 'edited', message: `row ${prevId} does not match the chain head: it was changed and its hash recomputed` };
  }
  if (good !== head.rows) {
    return bad(prevId, 'edited', `the chain head records ${head.rows} rows but the log holds ${good}: the chain head was edited`);
  }
  return gaps.length > 0 ? { ok: true, rows: good, gaps } : { ok: true, rows: good };
}

function gapOf(row: StoredRow): AuditGap {
  let detail: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(row.detail ?? '{}');
    if (parsed !== null && typeof parsed === 'object') detail = parsed as Record<string, unknown>;
  } catch {
    // a gap row's hash matched, so its detail is what the daemon wrote; keep the defaults
  }
  const lostByKind = detail.lostByKind !== null && typeof detail.lostByKind === 'object' ? detail.lostByKind as Record<string, number> : {};
  return {
    rowId: row.id,
    from: row.started_at,
    to: row.ended_at,
    lost: typeof detail.lost === 'number' ? detail.lost : 0,
    lostByKind,
    reason: typeof detail.reason === 'string' ? detail.reason : null,
  };
}
