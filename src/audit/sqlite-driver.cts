/**
 * Loads better-sqlite3 on first use, synchronously.
 *
 * Why a CommonJS file: `AuditLog.open()` is synchronous, and an ES module can only load a
 * package lazily with `await import()`, or with `createRequire(import.meta.url)` — which
 * the CLI bundle (esbuild, `--format=cjs`) turns into `createRequire(undefined)`. Here
 * `require` is real in both worlds (tsc output and the bundle), and esbuild leaves
 * `require('better-sqlite3')` alone because the build marks it `--external` (a native addon).
 * So `shellwire exec` never loads SQLite; only the code paths that open the log do.
 */
import type BetterSqlite3 = require('better-sqlite3');

let driver: typeof BetterSqlite3 | undefined;

function loadBetterSqlite3(): typeof BetterSqlite3 {
  driver ??= require('better-sqlite3') as typeof BetterSqlite3;
  return driver;
}

export = loadBetterSqlite3;
