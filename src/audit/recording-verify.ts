/**
 * The second half of `audit verify` on a gateway: every audit row whose `detail.recording`
 * is `{ id, sha256 }` names a file in `<state dir>/recordings/`; its SHA-256 is recomputed
 * and compared. The hash sits in a chained row, so editing a recording means editing the
 * chain too — which the first half catches.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditRow } from './audit-event.js';
import { RECORDING_ID_PATTERN } from './recording.js';

export interface RecordingProblem {
  /** The audit row that references the recording. */
  rowId: number;
  /** The recording id as the row gives it. */
  id: string;
  problem: 'missing' | 'edited' | 'bad-reference';
  message: string;
}

export interface RecordingsVerifyResult {
  /** Recordings whose hash matched. */
  checked: number;
  /** Recordings removed by retention (an `<id>.pruned` note with the same hash). */
  pruned: Array<{ rowId: number; id: string; prunedAt: string }>;
  problems: RecordingProblem[];
}

/** The `{ id, sha256 }` a row references, or null; `bad` when `detail.recording` is there but malformed. */
export function recordingReference(row: AuditRow): { id: string; sha256: string } | 'bad' | null {
  const ref = row.detail?.['recording'];
  if (ref === undefined || ref === null) return null;
  if (typeof ref !== 'object') return 'bad';
  const { id, sha256 } = ref as { id?: unknown; sha256?: unknown };
  if (typeof id !== 'string' || typeof sha256 !== 'string' || !RECORDING_ID_PATTERN.test(id) || !/^[0-9a-f]{64}$/.test(sha256)) return 'bad';
  return { id, sha256 };
}

/** Hex SHA-256 of a file, read in 1 MiB pieces (recordings can be large). */
export function fileSha256(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Check every recording that `rows` reference against the files in `dir` (a `recordings/` folder). */
export function verifyRecordings(dir: string, rows: Iterable<AuditRow>): RecordingsVerifyResult {
  const result: RecordingsVerifyResult = { checked: 0, pruned: [], problems: [] };
  for (const row of rows) {
    const ref = recordingReference(row);
    if (ref === null) continue;
    if (ref === 'bad') {
      const id = String((row.detail?.['recording'] as { id?: unknown } | null)?.id ?? '?');
      result.problems.push({ rowId: row.id, id, problem: 'bad-reference', message: `row ${row.id}: detail.recording is not { id, sha256 }` });
      continue;
    }
    const cast = join(dir, `${ref.id}.cast`);
    const out = join(dir, `${ref.id}.out`);
    const file = existsSync(cast) ? cast : existsSync(out) ? out : null;
    if (file === null) {
      const note = prunedNote(join(dir, `${ref.id}.pruned`));
      if (note !== null && note.sha256 === ref.sha256) {
        result.pruned.push({ rowId: row.id, id: ref.id, prunedAt: note.prunedAt });
      } else {
        result.problems.push({ rowId: row.id, id: ref.id, problem: 'missing', message: `recording ${ref.id} (row ${row.id}) is missing: no ${cast}` });
      }
      continue;
    }
    const actual = fileSha256(file);
    if (actual !== ref.sha256) {
      result.problems.push({
        rowId: row.id, id: ref.id, problem: 'edited',
        message: `recording ${ref.id} (row ${row.id}) was changed: ${file} has SHA-256 ${actual}, the audit row says ${ref.sha256}`,
      });
    } else {
      result.checked++;
    }
  }
  return result;
}

function prunedNote(path: string): { sha256: string | null; prunedAt: string } | null {
  try {
    const note = JSON.parse(readFileSync(path, 'utf8')) as { sha256?: unknown; prunedAt?: unknown };
    return { sha256: typeof note.sha256 === 'string' ? note.sha256 : null, prunedAt: String(note.prunedAt) };
  } catch {
    return null;
  }
}
