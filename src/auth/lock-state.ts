/**
 * The daemon's login locks, shared with `shellwire locks` through two files in the state
 * dir (both 0600, so only the daemon's account and root can read or lift them):
 *
 *   locks.json    written by the daemon whenever a lock is set or lifted (one JSON array)
 *   locks.clear   written by `shellwire locks clear [ADDR|USER]`: one key per line, `*` = all;
 *                 the daemon applies and deletes it when it reloads (SIGHUP)
 */
import { CONFIG_FILE_LIMIT, readBoundedText } from './bounded-file.js';
import { writeFileSync, renameSync, unlinkSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LockInfo } from './throttle.js';

export const LOCKS_FILE = 'locks.json';
export const LOCKS_CLEAR_FILE = 'locks.clear';

export interface LockRecord {
  kind: 'address' | 'user';
  key: string;
  failures: number;
  until: string;
}

export function writeLockState(stateDir: string, locks: LockInfo[]): void {
  const records: LockRecord[] = locks.map((l) => ({ kind: l.kind, key: l.key, failures: l.failures, until: l.until.toISOString() }));
  const path = join(stateDir, LOCKS_FILE);
  // Rename over the old file, so a reader never sees half of it.
  writeFileSync(`${path}.tmp`, JSON.stringify(records) + '\n', { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Locks still in force according to the daemon's last word; none when it never wrote any. */
export function readLockState(stateDir: string, now: Date = new Date()): LockRecord[] {
  let text: string;
  try {
    text = readBoundedText(join(stateDir, LOCKS_FILE), 'Lock state', CONFIG_FILE_LIMIT);
  } catch {
    return [];
  }
  const records = JSON.parse(text) as LockRecord[];
  return records.filter((r) => new Date(r.until).getTime() > now.getTime());
}

/** Ask the daemon to lift locks (applied at its next reload). */
export function requestUnlock(stateDir: string, key: string): void {
  appendFileSync(join(stateDir, LOCKS_CLEAR_FILE), `${key}\n`, { mode: 0o600 });
}

/** The keys `shellwire locks clear` asked for since the last reload; the request is consumed. */
export function takeUnlockRequests(stateDir: string): string[] {
  const path = join(stateDir, LOCKS_CLEAR_FILE);
  let text: string;
  try {
    text = readBoundedText(path, 'Unlock requests', CONFIG_FILE_LIMIT);
    unlinkSync(path);
  } catch {
    return [];
  }
  return text.split('\n').map((l) => l.trim()).filter(Boolean);
}
