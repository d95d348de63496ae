/**
 * The audit trail's one door (src/audit/audit-sink.ts): events go in through
 * `AuditSink.record`, a `ConnectionAudit` fills in who and where once, and a command's end is
 * built once for both the log line and the audit row. Rows are written to a real SQLite log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { ConnectionAudit, type AuditSink } from '../../src/audit/audit-sink.js';
import { DaemonAudit } from '../../src/audit/daemon-audit.js';
import { toStoredContent, type AuditEvent } from '../../src/audit/audit-event.js';
import { authFailEvent, authOkEvent, connectEvent, connectFailedEvent, deniedEvent, disconnectEvent, fileEvent } from '../../src/audit/events.js';
import { commandEndEvent, commandEndLogFields, commandStartEvent, endCommand } from '../../src/audit/command-record.js';
import { ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/silent-logger.js';

const alice = { name: 'alice', account: { name: 'svc-alice' }, method: 'publickey', credential: 'SHA256:abc' };

function collecting(): AuditSink & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return { events, record: (event) => void events.push(event) };
}

test('the command-end record is built once: the log line and the audit row carry the same numbers', () => {
  const startedAt = new Date('2026-01-02T03:04:05.000Z');
  const started = { channel: 7, command: 'make -j4', cwd: '/srv/app', startedAt };
  const end = endCommand(started, 1_000, { exitCode: 2, signal: null, timedOut: true, bytesIn: 11, bytesOut: 4096 }, 2_234.6);
  assert.equal(end.durationMs, 1235);
  assert.ok(end.endedAt instanceof Date);

  const row = commandEndEvent(end);
  const log = commandEndLogFields(end);
  // The log line's fields, in the order the daemon has always written them.
  assert.deepEqual(Object.keys(log), ['exitCode', 'signal', 'timedOut', 'bytesOut', 'bytesIn', 'durationMs']);
  for (const field of ['exitCode', 'signal', 'bytesOut', 'bytesIn', 'durationMs'] as const) assert.equal(row[field], log[field], field);
  assert.deepEqual(row.detail, { channel: 7, timedOut: true });
  assert.equal(row.kind, 'command-end');
  assert.equal(row.command, 'make -j4');
  assert.equal(row.cwd, '/srv/app');
  assert.equal(row.startedAt, startedAt);
  assert.equal(row.endedAt, end.endedAt);
  // A well-formed row: nothing the log would refuse as a bug.
  assert.equal(toStoredContent(row, new Date()).duration_ms, 1235);

  const start = commandStartEvent({ ...started, env: ['LANG'] });
  assert.deepEqual(start.detail, { channel: 7, env: ['LANG'] });
  assert.deepEqual(commandStartEvent({ ...started, env: [] }).detail, { channel: 7 }, 'no env key when the client set none');
});

test('ConnectionAudit fills in where always, who after login, and leaves what an event names itself', () => {
  const sink = collecting();
  const audit = new ConnectionAudit(sink, '192.0.2.1:5555');
  audit.record(connectEvent());
  audit.record(authFailEvent('mallory', 'bad key'));
  audit.loggedIn(alice);
  audit.record(authOkEvent(alice));
  audit.record(deniedEvent('rm -rf /', 'exec', 'not allowed'));
  audit.record(fileEvent({ op: 'get', path: '/etc/hosts', ok: true }));
  audit.record(disconnectEvent());
  const who = sink.events.map((e) => [e.kind, e.user, e.osUser, e.address]);
  assert.deepEqual(who, [
    ['connect', null, null, '192.0.2.1:5555'],
    ['auth-fail', 'mallory', null, '192.0.2.1:5555'],
    ['auth-ok', 'alice', 'svc-alice', '192.0.2.1:5555'],
    ['denied', 'alice', 'svc-alice', '192.0.2.1:5555'],
    ['file', 'alice', 'svc-alice', '192.0.2.1:5555'],
    // The disconnect row has never named the OS account.
    ['disconnect', 'alice', null, '192.0.2.1:5555'],
  ]);
  assert.equal(sink.events[2]!.keyFingerprint, 'SHA256:abc');
  assert.deepEqual(sink.events[3]!.detail, { channelKind: 'exec', reason: 'not allowed' });
});

test('ConnectionAudit without a sink records nothing and admits everything; with one, it asks the sink', () => {
  const none = new ConnectionAudit(null, '127.0.0.1:1');
  none.record(connectEvent());
  assert.equal(none.admit(), null);
  const refusal = { code: ErrorCode.AUDIT_UNAVAILABLE, message: 'disk full' };
  const refusing = new ConnectionAudit({ record() {}, admit: () => refusal }, '127.0.0.1:1');
  assert.equal(refusing.admit(), refusal);
});

test('DaemonAudit: events through record() become chained rows; failed connects are bounded per source', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shellwire-audit-door-'));
  try {
    const daemon = new DaemonAudit(AuditLog.open(auditLogPath(dir)), silentLogger());
    const audit = new ConnectionAudit(daemon, '192.0.2.9:40000');
    audit.record(connectEvent());
    audit.loggedIn(alice);
    audit.record(commandStartEvent({ channel: 1, command: 'true', cwd: '/', startedAt: new Date() }));
    // A flood from one source: one row now, one summary row at close.
    for (let port = 1; port <= 3; port++) daemon.record(connectFailedEvent('198.51.100.7', `198.51.100.7:${port}`, 'tls', 'ECONNRESET'));
    daemon.close();
    const log = AuditLog.open(auditLogPath(dir));
    try {
      const rows = log.query();
      assert.deepEqual(rows.map((r) => [r.kind, r.user, r.address]), [
        ['connect', null, '192.0.2.9:40000'],
        ['command-start', 'alice', '192.0.2.9:40000'],
        ['connect', null, '198.51.100.7:1'],
        ['connect', null, '198.51.100.7:3'],
      ]);
      assert.deepEqual(rows[2]!.detail, { ok: false, stage: 'tls', reason: 'ECONNRESET' });
      assert.equal(rows[3]!.detail?.repeated, 2);
      assert.equal(log.verify().ok, true);
    } finally {
      log.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
