/**
 * The audit log: one row per event in an embedded SQLite file (`<state-dir>/audit.sqlite`),
 * each row chained to the one before by SHA-256 (see chain.ts), so `verify()` can name the
 * first row that was edited, deleted, inserted or moved.
 *
 * Cost: `record()` is one prepared INSERT and one prepared UPDATE (the chain head) in one
 * `BEGIN IMMEDIATE` transaction, plus one SHA-256 over ~300 bytes (bench/audit.ts measures it).
 *
 * Durability: WAL mode with `synchronous = NORMAL`. A commit is in the WAL file (written to
 * the OS, not yet fsynced) before `record()` returns, so a crash of the daemon process loses
 * no recorded row; a power failure or kernel crash may lose the last few transactions, but
 * never corrupts the file (SQLite fsyncs the WAL at each checkpoint). `FULL` fsyncs every
 * commit: measured 1.4–2.3 ms per row here instead of ~30 µs.
 *
 * Tamper evidence, not tamper proof: whoever can write this file and recomputes the hashes
 * after the row they change (and the chain head) gets a log that verifies. Only an anchor
 * outside the file (the head hash shipped elsewhere, or signed by a key this host does not
 * hold) would close that; see chain.ts and docs/audit.md.
 */
import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import loadBetterSqlite3 from './sqlite-driver.js';
import { ErrorCode, UsageError } from '../errors.js';
import { toAuditRow, toStoredContent, type AuditEvent, type AuditRow, type StoredContent, type StoredRow } from './audit-event.js';
import { GENESIS_HASH, rowHash, verifyChain, type ChainHead, type VerifyResult } from './chain.js';
import { buildCount, buildQuery, type AuditQuery } from './audit-query.js';

export { AUDIT_KINDS, toStoredContent, type AuditKind, type AuditEvent, type AuditRow, type StoredContent } from './audit-event.js';
export { GENESIS_HASH, type AuditGap, type AuditProblem, type VerifyResult } from './chain.js';
export type { AuditQuery } from './audit-query.js';

/** The log's file name inside the daemon's state dir. */
export const AUDIT_LOG_FILE = 'audit.sqlite';

/** How long a writer waits for another connection's write lock before `record()` throws. */
export const AUDIT_BUSY_TIMEOUT_MS = 5_000;

/** Schema version, kept in `PRAGMA user_version`. */
const SCHEMA_VERSION = 1;

export function auditLogPath(stateDir: string): string {
  return join(stateDir, AUDIT_LOG_FILE);
}

export interface AuditLogOptions {
  /** The clock that stamps each row's `time` (tests inject one). Default: `new Date()`. */
  now?: () => Date;
  /** Open for reading only (queries and `verify()`); `record()` then throws. Default false. */
  readonly?: boolean;
  /** Create the file (mode 0600) and its directory if missing. Default: `!readonly`. */
  create?: boolean;
}

const SCHEMA = `
  CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    time            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    user            TEXT,
    os_user         TEXT,
    address         TEXT,
    key_fingerprint TEXT,
    cwd             TEXT,
    command         TEXT,
    started_at      TEXT,
    ended_at        TEXT,
    exit_code       INTEGER,
    signal          TEXT,
    bytes_in        INTEGER,
    bytes_out       INTEGER,
    duration_ms     REAL,
    detail          TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
  ) STRICT;
  -- One index only: each index is another B-tree page written per row (measured: ~4 µs each).
  -- \`--since\` is the filter every query of a big log uses; \`--user\` alone scans (rare, offline).
  CREATE INDEX audit_events_time ON audit_events (time);
  CREATE TABLE chain_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    rows      INTEGER NOT NULL
  ) STRICT;
  -- Not a defence (anyone who can write the file can drop these), but an edit now takes a
  -- deliberate step, and cannot happen by a careless UPDATE or a "cleanup" script.
  CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

const INSERT = `
  INSERT INTO audit_events (id, time, kind, user, os_user, address, key_fingerprint, cwd, command,
    started_at, ended_at, exit_code, signal, bytes_in, bytes_out, duration_ms, detail, prev_hash, hash)
  VALUES (@id, @time, @kind, @user, @os_user, @address, @key_fingerprint, @cwd, @command,
    @started_at, @ended_at, @exit_code, @signal, @bytes_in, @bytes_out, @duration_ms, @detail, @prev_hash, @hash)`;

// Compare-and-set: only advances the head this connection last saw. Zero changes means another
// connection appended in between (a second writer on the same file), and we re-read the head.
const ADVANCE_HEAD = `
  UPDATE chain_head SET last_id = @id, last_hash = @hash, rows = rows + 1
  WHERE singleton = 1 AND last_id = @seenId AND last_hash = @seenHash`;

const READ_HEAD = 'SELECT last_id AS lastId, last_hash AS lastHash, rows FROM chain_head WHERE singleton = 1';

export class AuditLog {
  readonly path: string;
  readonly readonly: boolean;
  #db: BetterSqlite3.Database;
  #now: () => Date;
  #head: ChainHead;
  #readHead: BetterSqlite3.Statement<[], ChainHead>;
  #append: ((content: StoredContent) => { id: number; hash: string }) | undefined;
  #appendMany: ((contents: StoredContent[]) => unknown) | undefined;
  #queries = new Map<string, BetterSqlite3.Statement<unknown[], StoredRow>>();
  /** The file this connection writes to: SQLite keeps writing to it even after it is unlinked. */
  #file: { dev: number; ino: number } | null;

  private constructor(path: string, db: BetterSqlite3.Database, options: AuditLogOptions) {
    this.path = path;
    this.readonly = db.readonly;
    this.#db = db;
    this.#file = fileIdentity(path);
    this.#now = options.now ?? (() => new Date());
    this.#readHead = db.prepare<[], ChainHead>(READ_HEAD);
    this.#head = this.#readHead.get() ?? { lastId: 0, lastHash: GENESIS_HASH, rows: 0 };
    if (!db.readonly) {
      const insert = db.prepare<[StoredRow], unknown>(INSERT);
      const advanceHead = db.prepare<[{ id: number; hash: string; seenId: number; seenHash: string }], unknown>(ADVANCE_HEAD);
      const appendRow = (content: StoredContent) => {
        let head = this.#head;
        let row = chainRow(head, content);
        if (advanceHead.run({ id: row.id, hash: row.hash, seenId: head.lastId, seenHash: head.lastHash }).changes !== 1) {
          head = this.#readHead.get() ?? head;
          row = chainRow(head, content);
          const retry = advanceHead.run({ id: row.id, hash: row.hash, seenId: head.lastId, seenHash: head.lastHash });
          if (retry.changes !== 1) throw new Error('the audit log chain head is missing or unreadable');
        }
        insert.run(row);
        this.#head = { lastId: row.id, lastHash: row.hash, rows: row.id };
        return { id: row.id, hash: row.hash };
      };
      // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
      // then writes can fail with SQLITE_BUSY_SNAPSHOT when another writer got in between.
      this.#append = db.transaction(appendRow).immediate;
      this.#appendMany = db.transaction((contents: StoredContent[]) => contents.map(appendRow)).immediate;
    }
  }

  /**
   * Open (and by default create) the log at `path`. Loads better-sqlite3 on first call.
   *
   * @throws {UsageError} `SW_ERR_STATE_DIR` when the file is missing (`create: false`),
   *   unreadable, not a shellwire audit log, or from a newer shellwire;
   *   `SW_ERR_MISSING_DEPENDENCY` when better-sqlite3 is not installed.
   */
  static open(path: string, options: AuditLogOptions = {}): AuditLog {
    const readonly = options.readonly ?? false;
    const create = options.create ?? !readonly;
    if (!existsSync(path)) {
      if (!create) throw stateError(`No audit log at ${path} (the daemon creates it when it starts).`);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // SQLite would create it 0644; commands can carry secrets. Its -wal and -shm files
      // take this file's mode.
      closeSync(openSync(path, 'a', 0o600));
    }
    const Database = loadBetterSqlite3();
    let db: BetterSqlite3.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: true, timeout: AUDIT_BUSY_TIMEOUT_MS });
    } catch (err) {
      throw stateError(`Cannot open the audit log ${path}: ${(err as Error).message}`, err);
    }
    try {
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
      migrate(db, path);
      return new AuditLog(path, db, options);
    } catch (err) {
      db.close();
      if (err instanceof UsageError) throw err;
      throw stateError(`Cannot open the audit log ${path}: ${(err as Error).message}`, err);
    }
  }

  /**
   * Append one event; returns its row id. Synchronous: the row is committed when this returns.
   * Throws `TypeError`/`RangeError` for a malformed event (nothing is written), and SQLite's
   * error when the write fails (disk full; another writer holding the lock for longer than
   * `AUDIT_BUSY_TIMEOUT_MS` — the wait blocks this thread, but read-only readers such as
   * `shellwire audit` never take that lock).
   */
  record(event: AuditEvent): number {
    if (this.#append === undefined) throw new TypeError(`The audit log ${this.path} was opened read-only`);
    const content = toStoredContent(event, this.#now());
    try {
      const { id, hash } = this.#append(content);
      this.#head = { lastId: id, lastHash: hash, rows: id };
      return id;
    } catch (err) {
      this.#resyncHead();
      throw err;
    }
  }

  /**
   * Append several events in one transaction (one commit): the daemon batches the events of
   * one event-loop turn this way. `times[i]` is when event i happened (default: now).
   */
  recordMany(events: AuditEvent[], times?: Date[]): void {
    if (this.#appendMany === undefined) throw new TypeError(`The audit log ${this.path} was opened read-only`);
    if (events.length === 0) return;
    const now = this.#now();
    this.recordStored(events.map((event, i) => toStoredContent(event, times?.[i] ?? now)));
  }

  /**
   * Append events already normalized with `toStoredContent()`, in one transaction: the daemon
   * normalizes each event when it happens (a malformed one is a bug to report then, not a
   * batch that can never be written), and may hold them while the disk is full.
   */
  recordStored(contents: StoredContent[]): void {
    if (this.#appendMany === undefined) throw new TypeError(`The audit log ${this.path} was opened read-only`);
    if (contents.length === 0) return;
    try {
      this.#appendMany(contents);
    } catch (err) {
      this.#resyncHead();
      throw err;
    }
  }

  /**
   * True when the path no longer names the file this log has open: deleted, or moved and
   * replaced. SQLite would go on writing into the unlinked file without an error, so every
   * row from then on would vanish; the daemon asks this before each batch (one `stat`).
   */
  replaced(): boolean {
    const now = fileIdentity(this.path);
    return now === null || this.#file === null || now.dev !== this.#file.dev || now.ino !== this.#file.ino;
  }

  // A failed commit (SQLITE_FULL at COMMIT) rolls the rows back, but appendRow already moved
  // #head past them: take the head from the file again so the next row chains from what is there.
  #resyncHead(): void {
    try {
      this.#head = this.#readHead.get() ?? this.#head;
    } catch {
      // unreadable too: the compare-and-set in appendRow re-reads the head before it writes
    }
  }

  /**
   * Rows matching every given filter, oldest first (`order: 'newest-first'` reverses). With
   * `limit`, the most recent `limit` rows.
   * `grep` is a case-insensitive (ASCII) substring of the command, cwd, user, OS user, address,
   * key fingerprint, signal or detail. `failed` means: a non-zero exit code, a signal, an
   * authentication failure or a denial.
   *
   * @throws {RangeError} `limit` is not a positive integer, or `exitCode` not an integer.
   * @throws {TypeError} `since` or `until` is not a valid Date.
   */
  query(filter: AuditQuery = {}): AuditRow[] {
    const { sql, params, reverse } = buildQuery(filter);
    let statement = this.#queries.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare<unknown[], StoredRow>(sql);
      this.#queries.set(sql, statement);
    }
    const rows = statement.all(...params).map(toAuditRow);
    return reverse ? rows.reverse() : rows;
  }

  /**
   * How many rows match `filter` (its `limit` and `order` ignored).
   *
   * @throws {RangeError} `exitCode` is not an integer.
   * @throws {TypeError} `since` or `until` is not a valid Date.
   */
  count(filter: AuditQuery = {}): number {
    const { sql, params } = buildCount(filter);
    return (this.#db.prepare<unknown[], { n: number }>(sql).get(...params) as { n: number }).n;
  }

  /**
   * Walk the whole chain (in one read transaction, so a concurrent writer does not disturb
   * it) and report the first row that was edited, deleted, inserted or reordered.
   * Cannot detect a rewrite that recomputed every later hash and the chain head (see chain.ts).
   * A broken chain is the result (`ok: false`, the offending row), not an exception.
   *
   * @throws {Error} better-sqlite3's `SqliteError` when the file cannot be read (I/O, corruption).
   */
  verify(): VerifyResult {
    const rows = this.#db.prepare<[], StoredRow>('SELECT * FROM audit_events ORDER BY id');
    const byHash = this.#db.prepare<[string], number>('SELECT id FROM audit_events WHERE hash = ? ORDER BY id LIMIT 1').pluck();
    return this.#db.transaction(() => {
      const cursor = rows.iterate();
      try {
        return verifyChain(cursor, this.#readHead.get(), (hash) => byHash.get(hash));
      } finally {
        cursor.return?.(); // an unfinished cursor keeps the connection busy (and close() would throw)
      }
    }).deferred();
  }

  /** The last row's id and hash, as this connection last saw them. */
  get head(): { lastId: number; lastHash: string } {
    return { lastId: this.#head.lastId, lastHash: this.#head.lastHash };
  }

  /** Number of rows per the chain head, as this connection last saw it (at open, or its own last `record()`). */
  get size(): number {
    return this.#head.rows;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

function fileIdentity(path: string): { dev: number; ino: number } | null {
  try {
    const { dev, ino } = statSync(path);
    return { dev, ino };
  } catch {
    return null;
  }
}

function chainRow(head: ChainHead, content: StoredContent): StoredRow {
  const id = head.lastId + 1;
  const row = { id, ...content };
  return { ...row, prev_hash: head.lastHash, hash: rowHash(head.lastHash, row) };
}

function migrate(db: BetterSqlite3.Database, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) {
    throw stateError(`The audit log ${path} has schema version ${version}; this shellwire knows up to ${SCHEMA_VERSION}. Upgrade shellwire.`);
  }
  const tables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() as number;
  if (tables > 0) throw stateError(`${path} is an SQLite file but not a shellwire audit log.`);
  if (db.readonly) throw stateError(`The audit log ${path} is empty (no schema yet).`);
  db.transaction(() => {
    db.exec(SCHEMA);
    db.prepare('INSERT INTO chain_head (singleton, last_id, last_hash, rows) VALUES (1, 0, ?, 0)').run(GENESIS_HASH);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function stateError(message: string, cause?: unknown): UsageError {
  return new UsageError(ErrorCode.STATE_DIR, message, cause === undefined ? {} : { cause });
}

