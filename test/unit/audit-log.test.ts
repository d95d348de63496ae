/**
 * The audit log on real SQLite files: rows exactly as recorded, the hash chain catching each
 * kind of tampering done through a second connection (as an intruder with the file would),
 * query filters with an injected clock, WAL, reopening, two writers, and a process crash.
 */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { AuditLog, auditLogPath, GENESIS_HASH, type AuditEvent, type AuditRow } from '../../src/audit/audit-log.js';
import { rowHash } from '../../src/audit/chain.js';
import type { StoredRow } from '../../src/audit/audit-event.js';
import { parseTimeArg, printable, formatTable } from '../../src/audit/audit-text.js';
import { ErrorCode } from '../../src/errors.js';

type Db = import('better-sqlite3').Database;
const Database = createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3');

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shellwire-audit-'));
  path = auditLogPath(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse('2025-03-01T10:00:00.000Z');

/** A clock that advances one second per call, starting at T0. */
function steppingClock(start = T0, stepMs = 1_000): () => Date {
  let t = start - stepMs;
  return () => new Date((t += stepMs));
}

/** A session as the daemon would record it: connect, auth, two commands, a denial, a file, bye. */
const SESSION: AuditEvent[] = [
  { kind: 'connect', address: '10.0.0.7:51234' },
  { kind: 'auth-fail', address: '10.0.0.7:51234', user: 'alice', keyFingerprint: 'SHA256:wrongkey', detail: { reason: 'unknown key' } },
  { kind: 'auth-ok', address: '10.0.0.7:51234', user: 'alice', keyFingerprint: 'SHA256:abc+/def' },
  { kind: 'command-start', user: 'alice', osUser: 'alice', address: '10.0.0.7:51234', cwd: '/home/alice', command: 'make test', startedAt: new Date(T0 + 3_000) },
  {
    kind: 'command-end', user: 'alice', osUser: 'alice', address: '10.0.0.7:51234', cwd: '/home/alice', command: 'make test',
    startedAt: new Date(T0 + 3_000), endedAt: new Date(T0 + 4_250), exitCode: 2, bytesIn: 0, bytesOut: 18_432, durationMs: 1_250.5,
  },
  {
    kind: 'command-end', user: 'alice', osUser: 'alice', address: '10.0.0.7:51234', cwd: '/tmp', command: "sleep 100; echo 'ünïcode ✓'",
    startedAt: new Date(T0 + 5_000), endedAt: new Date(T0 + 6_000), signal: 'SIGKILL', bytesIn: 12, bytesOut: 0, durationMs: 1_000,
  },
  { kind: 'denied', user: 'alice', address: '10.0.0.7:51234', command: 'rm -rf /', detail: { rule: 'deny[0]: rm *', channel: 'exec' } },
  { kind: 'file', user: 'alice', osUser: 'alice', cwd: '/srv', command: 'put /srv/app.tar', bytesIn: 1_048_576, detail: { direction: 'put' } },
  { kind: 'disconnect', address: '10.0.0.7:51234', user: 'alice', durationMs: 9_000, detail: { reason: 'client closed' } },
];

function expectedRow(event: AuditEvent, id: number): Omit<AuditRow, 'prevHash' | 'hash'> {
  return {
    id,
    time: new Date(T0 + (id - 1) * 1_000),
    kind: event.kind,
    user: event.user ?? null,
    osUser: event.osUser ?? null,
    address: event.address ?? null,
    keyFingerprint: event.keyFingerprint ?? null,
    cwd: event.cwd ?? null,
    command: event.command ?? null,
    startedAt: event.startedAt ?? null,
    endedAt: event.endedAt ?? null,
    exitCode: event.exitCode ?? null,
    signal: event.signal ?? null,
    bytesIn: event.bytesIn ?? null,
    bytesOut: event.bytesOut ?? null,
    durationMs: event.durationMs ?? null,
    detail: event.detail ?? null,
  };
}

function recordSession(now = steppingClock()): AuditLog {
  const log = AuditLog.open(path, { now });
  SESSION.forEach((event, i) => assert.equal(log.record(event), i + 1));
  return log;
}

/** Another connection to the file, as someone with write access to it would use; the append-only triggers dropped first. */
function tamper(edit: (db: Db) => void): void {
  const db = new Database(path);
  try {
    db.exec('DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;');
    db.transaction(() => edit(db))();
  } finally {
    db.close();
  }
}

function verifyFresh() {
  const log = AuditLog.open(path, { readonly: true });
  try {
    return log.verify();
  } finally {
    log.close();
  }
}

function storedRow(db: Db, id: number): StoredRow {
  return db.prepare('SELECT * FROM audit_events WHERE id = ?').get(id) as StoredRow;
}

test('a scripted session is recorded one row per event, every field round-trips, rows chain from genesis', () => {
  const log = recordSession();
  const rows = log.query();
  log.close();
  assert.equal(rows.length, SESSION.length);
  for (const [i, row] of rows.entries()) {
    const { prevHash, hash, ...content } = row;
    assert.deepEqual(content, expectedRow(SESSION[i]!, i + 1), `row ${i + 1}`);
    assert.equal(prevHash, i === 0 ? GENESIS_HASH : rows[i - 1]!.hash);
    assert.match(hash, /^[0-9a-f]{64}$/);
  }
  // The columns, as an operator with sqlite3 sees them.
  const db = new Database(path, { readonly: true });
  const raw = storedRow(db, 5);
  db.close();
  assert.equal(raw.time, '2025-03-01T10:00:04.000Z');
  assert.equal(raw.started_at, '2025-03-01T10:00:03.000Z');
  assert.equal(raw.exit_code, 2);
  assert.equal(raw.duration_ms, 1_250.5);
  assert.equal(raw.detail, null);
  assert.equal(raw.hash, rowHash(raw.prev_hash, raw));
});

test('record() refuses malformed events and writes nothing for them', () => {
  const log = AuditLog.open(path, { now: steppingClock() });
  const bad: unknown[] = [
    { kind: 'reboot' },
    { kind: 'command-end', bytesOut: -1 },
    { kind: 'command-end', bytesIn: 1.5 },
    { kind: 'command-end', exitCode: Number.NaN },
    { kind: 'command-end', durationMs: Infinity },
    { kind: 'command-end', startedAt: new Date('nope') },
    { kind: 'command-end', command: 42 },
  ];
  for (const event of bad) assert.throws(() => log.record(event as AuditEvent), /Audit event|Unknown audit event kind/, JSON.stringify(event));
  assert.equal(log.query().length, 0);
  assert.equal(log.record({ kind: 'connect' }), 1);
  assert.deepEqual(log.verify(), { ok: true, rows: 1 });
  log.close();
});

test('a command with a lone UTF-16 surrogate or control bytes is stored as UTF-8 would have it, and still verifies', () => {
  const log = AuditLog.open(path);
  log.record({ kind: 'command-start', command: 'echo \uD800 \x1b[2J\0end' });
  assert.equal(log.query()[0]!.command, 'echo \uFFFD \x1b[2J\0end');
  assert.deepEqual(log.verify(), { ok: true, rows: 1 });
  log.close();
});

test('verify: an untouched log is intact, and so is an empty one', () => {
  const empty = AuditLog.open(path);
  assert.deepEqual(empty.verify(), { ok: true, rows: 0 });
  empty.close();
  recordSession().close();
  assert.deepEqual(verifyFresh(), { ok: true, rows: SESSION.length });
});

test('the table refuses a careless UPDATE or DELETE (append-only triggers)', () => {
  recordSession().close();
  const db = new Database(path);
  assert.throws(() => db.prepare("UPDATE audit_events SET command = 'ls' WHERE id = 4").run(), /append-only/);
  assert.throws(() => db.prepare('DELETE FROM audit_events WHERE id = 4').run(), /append-only/);
  db.close();
  assert.deepEqual(verifyFresh(), { ok: true, rows: SESSION.length });
});

test('verify: an edited command text is reported as edited, at that row', () => {
  recordSession().close();
  tamper((db) => db.prepare("UPDATE audit_events SET command = 'make check' WHERE id = 5").run());
  const result = verifyFresh();
  assert.equal(result.ok, false);
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId, result.rows], ['edited', 5, 4]);
});

test('verify: an edited exit code, user or detail is caught too (every column is hashed)', () => {
  recordSession().close();
  for (const [column, value, id] of [['exit_code', 0, 5], ['user', 'bob', 3], ['detail', '{"rule":"allow"}', 7], ['time', '2025-03-01T09:00:00.000Z', 2]] as const) {
    const before = (() => {
      const db = new Database(path, { readonly: true });
      const row = storedRow(db, id);
      db.close();
      return row[column];
    })();
    tamper((db) => db.prepare(`UPDATE audit_events SET ${column} = ? WHERE id = ?`).run(value, id));
    const result = verifyFresh();
    assert.deepEqual(result.ok ? null : [result.problem, result.rowId], ['edited', id], column);
    tamper((db) => db.prepare(`UPDATE audit_events SET ${column} = ? WHERE id = ?`).run(before, id));
    assert.equal(verifyFresh().ok, true, `${column} restored`);
  }
});

test('verify: a row edited and re-hashed (but not the rows after it) is named, not its successor', () => {
  recordSession().close();
  tamper((db) => {
    const row = { ...storedRow(db, 4), command: 'true' };
    db.prepare('UPDATE audit_events SET command = ?, hash = ? WHERE id = 4').run(row.command, rowHash(row.prev_hash, row));
  });
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId], ['edited', 4]);
});

test('verify: a deleted middle row is reported as deleted, with its id', () => {
  recordSession().close();
  tamper((db) => db.prepare('DELETE FROM audit_events WHERE id = 6').run());
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId, result.rows], ['deleted', 6, 5]);
  assert.match(result.ok ? '' : result.message, /row 6 is missing/);
});

test('verify: deleting the last rows is detected through the chain head', () => {
  recordSession().close();
  tamper((db) => db.prepare('DELETE FROM audit_events WHERE id >= 8').run());
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId, result.rows], ['deleted', 8, 7]);
  assert.match(result.ok ? '' : result.message, /rows 8\.\.9 are missing from the end/);
});

test('verify: deleting the chain head itself is detected', () => {
  recordSession().close();
  tamper((db) => db.prepare('DELETE FROM chain_head').run());
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : result.problem, 'deleted');
});

test('verify: a forged row appended after the head, even with a correct hash, is reported as inserted', () => {
  recordSession().close();
  tamper((db) => {
    const last = storedRow(db, SESSION.length);
    const forged: StoredRow = { ...last, id: last.id + 1, command: 'innocent', prev_hash: last.hash, hash: '' };
    forged.hash = rowHash(forged.prev_hash, forged);
    db.prepare('INSERT INTO audit_events VALUES (@id, @time, @kind, @user, @os_user, @address, @key_fingerprint, @cwd, @command, @started_at, @ended_at, @exit_code, @signal, @bytes_in, @bytes_out, @duration_ms, @detail, @prev_hash, @hash)').run(forged);
  });
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId], ['inserted', SESSION.length + 1]);
});

test('verify: a forged row slipped into the middle (later ids shifted up) is reported as inserted, at its id', () => {
  recordSession().close();
  tamper((db) => {
    for (let id = SESSION.length; id >= 4; id--) db.prepare('UPDATE audit_events SET id = id + 1 WHERE id = ?').run(id);
    const before = storedRow(db, 3);
    const forged: StoredRow = { ...before, id: 4, kind: 'auth-ok', user: 'mallory', prev_hash: before.hash, hash: '' };
    forged.hash = rowHash(forged.prev_hash, forged);
    db.prepare('INSERT INTO audit_events VALUES (@id, @time, @kind, @user, @os_user, @address, @key_fingerprint, @cwd, @command, @started_at, @ended_at, @exit_code, @signal, @bytes_in, @bytes_out, @duration_ms, @detail, @prev_hash, @hash)').run(forged);
    db.prepare('UPDATE chain_head SET last_id = last_id + 1, rows = rows + 1').run();
  });
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId], ['inserted', 4]);
});

test('verify: two rows swapped (content moved, ids kept) are reported as reordered', () => {
  recordSession().close();
  tamper((db) => {
    const a = storedRow(db, 5);
    const b = storedRow(db, 6);
    const move = db.prepare('UPDATE audit_events SET time=@time, kind=@kind, user=@user, os_user=@os_user, address=@address, key_fingerprint=@key_fingerprint, cwd=@cwd, command=@command, started_at=@started_at, ended_at=@ended_at, exit_code=@exit_code, signal=@signal, bytes_in=@bytes_in, bytes_out=@bytes_out, duration_ms=@duration_ms, detail=@detail, prev_hash=@prev_hash, hash=@hash WHERE id = @target');
    move.run({ ...b, target: 5 });
    move.run({ ...a, target: 6 });
  });
  const result = verifyFresh();
  assert.deepEqual(result.ok ? null : [result.problem, result.rowId], ['reordered', 5]);
});

test('verify: the documented limit — a full rewrite (every later hash and the head recomputed) goes unnoticed', () => {
  // This is why the docs say the chain makes edits evident, not impossible: without an
  // anchor outside the file, anyone who can write it can rebuild the chain. If this test
  // starts failing, the log gained such an anchor: update docs/audit.md.
  recordSession().close();
  tamper((db) => {
    let prev = storedRow(db, 4).prev_hash;
    for (let id = 4; id <= SESSION.length; id++) {
      const row = { ...storedRow(db, id), prev_hash: prev };
      if (id === 4) row.command = 'true';
      row.hash = rowHash(prev, row);
      db.prepare('UPDATE audit_events SET command = ?, prev_hash = ?, hash = ? WHERE id = ?').run(row.command, row.prev_hash, row.hash, id);
      prev = row.hash;
    }
    db.prepare('UPDATE chain_head SET last_hash = ?').run(prev);
  });
  assert.deepEqual(verifyFresh(), { ok: true, rows: SESSION.length });
});

test('WAL mode is on, the file is private (0600), and a reopened log continues the chain', () => {
  const log = recordSession();
  const lastHash = log.query().at(-1)!.hash;
  log.close();
  const probe = new Database(path, { readonly: true });
  assert.equal(probe.pragma('journal_mode', { simple: true }), 'wal');
  probe.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);

  const reopened = AuditLog.open(path, { now: steppingClock(T0 + 60_000) });
  assert.equal(reopened.size, SESSION.length);
  assert.equal(reopened.record({ kind: 'connect', address: '10.0.0.8:4000' }), SESSION.length + 1);
  const [row] = reopened.query({ limit: 1 });
  assert.equal(row!.prevHash, lastHash);
  assert.deepEqual(reopened.verify(), { ok: true, rows: SESSION.length + 1 });
  reopened.close();
});

test('two writers on one file (e.g. a restarted daemon while the old one drains) keep one valid chain', () => {
  const a = AuditLog.open(path);
  const b = AuditLog.open(path);
  const ids: number[] = [];
  for (let i = 0; i < 20; i++) ids.push((i % 3 === 0 ? b : a).record({ kind: 'command-end', command: `cmd ${i}` }));
  assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(a.verify(), { ok: true, rows: 20 });
  a.close();
  b.close();
});

test('a read-only reader (the CLI) sees every committed row while the daemon still has the log open', () => {
  const writer = AuditLog.open(path);
  writer.record({ kind: 'connect', address: '10.0.0.1:1' });
  const reader = AuditLog.open(path, { readonly: true, create: false });
  writer.record({ kind: 'auth-ok', user: 'alice' });
  assert.deepEqual(reader.query().map((r) => r.kind), ['connect', 'auth-ok']);
  assert.deepEqual(reader.verify(), { ok: true, rows: 2 });
  assert.equal(writer.record({ kind: 'disconnect' }), 3, 'a reader does not block the writer');
  reader.close();
  writer.close();
});

test('a process killed with SIGKILL right after record() loses no row', () => {
  const fixture = resolve(import.meta.dirname, '../fixtures/audit-crash.ts');
  const child = spawnSync(process.execPath, ['--import', 'tsx', fixture, path, '50'], { encoding: 'utf8' });
  assert.equal(child.signal, 'SIGKILL', child.stderr);
  assert.equal(child.stdout, 'recorded 50\n');
  const log = AuditLog.open(path);
  assert.deepEqual(log.verify(), { ok: true, rows: 50 });
  assert.equal(log.query({ limit: 1 })[0]!.command, 'step 50');
  log.close();
});

test('query: by user, time range (injected clock), grep, failures, exit code, kind and limit', () => {
  const log = recordSession();
  const ids = (rows: AuditRow[]) => rows.map((r) => r.id);
  log.record({ kind: 'auth-ok', user: 'bob', address: '10.0.0.9:1' });
  assert.deepEqual(ids(log.query({ user: 'bob' })), [10]);
  assert.deepEqual(ids(log.query({ user: 'alice' })), [2, 3, 4, 5, 6, 7, 8, 9]);
  // Row n was stamped T0 + (n-1) s.
  assert.deepEqual(ids(log.query({ since: new Date(T0 + 7_000) })), [8, 9, 10]);
  assert.deepEqual(ids(log.query({ until: new Date(T0 + 1_000) })), [1, 2]);
  assert.deepEqual(ids(log.query({ since: new Date(T0 + 2_000), until: new Date(T0 + 4_000) })), [3, 4, 5]);
  assert.deepEqual(ids(log.query({ grep: 'MAKE' })), [4, 5]);
  assert.deepEqual(ids(log.query({ grep: 'deny[0]' })), [7], 'grep is literal and searches detail');
  assert.deepEqual(ids(log.query({ grep: '/home/alice' })), [4, 5], 'grep searches cwd');
  assert.deepEqual(ids(log.query({ grep: '%' })), [], 'no LIKE wildcards');
  assert.deepEqual(ids(log.query({ failed: true })), [2, 5, 6, 7]);
  assert.deepEqual(ids(log.query({ exitCode: 2 })), [5]);
  assert.deepEqual(ids(log.query({ kind: 'command-end', failed: true, user: 'alice' })), [5, 6]);
  assert.deepEqual(ids(log.query({ limit: 3 })), [8, 9, 10], 'the most recent rows, oldest first');
  assert.deepEqual(ids(log.query({ user: 'alice', limit: 2 })), [8, 9]);
  assert.throws(() => log.query({ limit: 0 }), RangeError);
  log.close();
});

test('open: a missing log with create:false, a foreign SQLite file, and read-only record() are clear errors', () => {
  assert.throws(() => AuditLog.open(path, { create: false }), (err: Error & { code?: string }) => err.code === ErrorCode.STATE_DIR && /No audit log at/.test(err.message));
  assert.throws(() => AuditLog.open(path, { readonly: true }), (err: Error & { code?: string }) => err.code === ErrorCode.STATE_DIR);
  const foreign = join(dir, 'other.sqlite');
  const db = new Database(foreign);
  db.exec('CREATE TABLE t (x)');
  db.close();
  assert.throws(() => AuditLog.open(foreign), /not a shellwire audit log/);
  const junk = join(dir, 'junk.sqlite');
  writeFileSync(junk, 'this is not a database, just some text that is long enough to have a header\n'.repeat(10));
  assert.throws(() => AuditLog.open(junk), (err: Error & { code?: string }) => err.code === ErrorCode.STATE_DIR);
  recordSession().close();
  const ro = AuditLog.open(path, { readonly: true });
  assert.throws(() => ro.record({ kind: 'connect' }), /read-only/);
  assert.equal(ro.query().length, SESSION.length);
  ro.close();
});

test('CLI helpers: --since/--until ages and ISO times, terminal-safe cells, the table', () => {
  const now = new Date('2025-03-01T12:00:00.000Z');
  assert.equal(parseTimeArg('1h', now)?.toISOString(), '2025-03-01T11:00:00.000Z');
  assert.equal(parseTimeArg('30m', now)?.toISOString(), '2025-03-01T11:30:00.000Z');
  assert.equal(parseTimeArg('2d', now)?.toISOString(), '2025-02-27T12:00:00.000Z');
  assert.equal(parseTimeArg('90s', now)?.toISOString(), '2025-03-01T11:58:30.000Z');
  assert.equal(parseTimeArg('2025-01-31', now)?.toISOString(), '2025-01-31T00:00:00.000Z');
  assert.equal(parseTimeArg('2025-01-31T08:15Z', now)?.toISOString(), '2025-01-31T08:15:00.000Z');
  assert.equal(parseTimeArg('2025-01-31 08:15:30+02:00', now)?.toISOString(), '2025-01-31T06:15:30.000Z');
  for (const bad of ['yesterday', '1', '1y', '-1h', '2025-13-45', '']) assert.equal(parseTimeArg(bad, now), undefined, bad);

  assert.equal(printable('a\nb\tc\x1b]0;pwned\x07\x9bd'), 'a\\nb\\tc\\x1b]0;pwned\\x07\\x9bd');
  const log = recordSession();
  const table = formatTable(log.query());
  log.close();
  const lines = table.trimEnd().split('\n');
  assert.equal(lines.length, SESSION.length + 1);
  assert.match(lines[0]!, /^TIME \(UTC\)\s+USER\s+OS USER\s+ADDRESS\s+KIND\s+EXIT\s+DURATION\s+IN\s+OUT\s+COMMAND \/ DETAIL$/);
  assert.match(lines[5]!, /^2025-03-01 10:00:04\s+alice\s+alice\s+10\.0\.0\.7:51234\s+command-end\s+2\s+1\.3s\s+0B\s+18KiB\s+make test$/);
  assert.match(lines[6]!, /\sSIGKILL\s+1\.0s\s+12B\s+0B\s+sleep 100; echo 'ünïcode ✓'$/);
  assert.match(lines[7]!, /\sdenied\s+-\s+-\s+-\s+-\s+rm -rf \/$/, 'a command is shown when there is one');
  assert.match(lines[2]!, /\sauth-fail\s+-\s+-\s+-\s+-\s+\{"reason":"unknown key"\}$/, 'else the detail');
});

test('recordMany: one transaction, rows in order with their own times, chain intact, then single records continue it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-audit-many-'));
  try {
    const log = AuditLog.open(auditLogPath(dir));
    const t1 = new Date('2026-01-01T00:00:01Z');
    const t2 = new Date('2026-01-01T00:00:02Z');
    log.recordMany([{ kind: 'connect', address: 'a' }, { kind: 'command-start', user: 'u', command: 'x' }], [t1, t2]);
    log.record({ kind: 'disconnect', address: 'a' });
    const rows = log.query({});
    assert.deepEqual(rows.map((r) => r.kind), ['connect', 'command-start', 'disconnect']);
    assert.deepEqual(rows.slice(0, 2).map((r) => r.time.toISOString()), [t1.toISOString(), t2.toISOString()]);
    assert.deepEqual(log.verify(), { ok: true, rows: 3 });
    log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a command and cwd with bytes that are not UTF-8 (OS byte strings) come back exactly, and verify', () => {
  const log = AuditLog.open(path);
  const command = "printf '%s' caf\udce9";
  log.record({ kind: 'command-start', command, cwd: '/tmp/caf\udce9', detail: { channel: 3 } });
  const row = log.query()[0]!;
  assert.equal(row.command, command);
  assert.equal(row.cwd, '/tmp/caf\udce9');
  assert.equal(row.detail?.channel, 3);
  assert.deepEqual(log.verify(), { ok: true, rows: 1 });
  log.close();
});
