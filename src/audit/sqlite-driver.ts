/**
 * better-sqlite3, loaded on first use and synchronously (`AuditLog.open()` is synchronous).
 * It is an optional peer dependency: where it is missing, opening the log throws
 * `SW_ERR_MISSING_DEPENDENCY` naming the install command, and nothing else is affected.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { loadOptional } from '../optional-dependency.js';

let driver: typeof BetterSqlite3 | undefined;

export default function loadBetterSqlite3(): typeof BetterSqlite3 {
  driver ??= loadOptional<typeof BetterSqlite3>('better-sqlite3');
  return driver;
}
