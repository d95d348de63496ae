/**
 * `shellwire audit` and `shellwire audit verify` as an operator runs them: the real bundled
 * CLI (bin/shellwire.cjs, after `npm run build`) on a log prepared in a temp state dir.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { runCli } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3');

let root: string;
let stateDir: string;
const HOUR = 3_600_000;
// Recorded "now" minus these ages, so --since 1h has something on both sides.
const base = Date.now();

before(() => {
  root = tempDir('shellwire-audit-cli-');
  stateDir = join(root, 'server');
  const times = [3 * HOUR, 3 * HOUR, 2 * HOUR, 10 * 60_000, 5 * 60_000, 60_000].map((age) => new Date(base - age));
  const log = AuditLog.open(auditLogPath(stateDir), { now: () => times.shift()! });
  log.record({ kind: 'connect', address: '10.1.2.3:40000' });
  log.record({ kind: 'auth-ok', user: 'alice', address: '10.1.2.3:40000', keyFingerprint: 'SHA256:aliceKey' });
  log.record({ kind: 'command-end', user: 'alice', osUser: 'deploy', address: '10.1.2.3:40000', cwd: '/srv', command: 'systemctl restart app', exitCode: 0, durationMs: 2_345, bytesIn: 0, bytesOut: 2_048 });
  log.record({ kind: 'auth-fail', user: 'bob', address: '10.9.9.9:5555', detail: { reason: 'revoked token' } });
  log.record({ kind: 'command-end', user: 'alice', osUser: 'deploy', address: '10.1.2.3:40000', cwd: '/srv', command: 'printf "\\x1b[31mred"\ncat /etc/shadow', exitCode: 1, durationMs: 12, bytesIn: 5, bytesOut: 0 });
  log.record({ kind: 'command-end', user: 'carol', osUser: 'carol', address: '10.1.2.4:40001', command: 'sleep 999', signal: 'SIGTERM', durationMs: 61_000 });
  log.close();
});

after(() => {
  if (root) removeDir(root);
});

const audit = (...args: string[]) => runCli(['audit', ...args]);

test('audit: a readable table, one line per event, newest first, terminal escapes neutralised', async () => {
  const result = await audit('--state-dir', stateDir);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.toString('utf8').trimEnd().split('\n');
  assert.equal(lines.length, 7);
  assert.match(lines[0]!, /^TIME \(UTC\)\s+USER\s+OS USER\s+ADDRESS\s+KIND\s+EXIT\s+DURATION\s+IN\s+OUT\s+COMMAND \/ DETAIL$/);
  assert.match(lines[4]!, /\salice\s+deploy\s+10\.1\.2\.3:40000\s+command-end\s+0\s+2\.3s\s+0B\s+2\.0KiB\s+systemctl restart app$/);
  assert.match(lines[3]!, /\sbob\s+-\s+10\.9\.9\.9:5555\s+auth-fail\s.*\{"reason":"revoked token"\}$/);
  assert.match(lines[2]!, /\s1\s+12ms\s+5B\s+0B\s+printf "\\x1b\[31mred"\\ncat \/etc\/shadow$/);
  assert.match(lines[1]!, /\scarol\s.*\sSIGTERM\s+1m01s\s/);
  assert.ok(!result.stdout.includes(0x1b), 'no raw ESC reaches the terminal');
});

test('audit --json: one JSON object per line with every field', async () => {
  const result = await audit('--state-dir', stateDir, '--json');
  assert.equal(result.code, 0, result.stderr);
  const rows = result.stdout.toString('utf8').trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.deepEqual(rows.map((r) => r.id), [6, 5, 4, 3, 2, 1], 'newest first, as the table');
  assert.deepEqual(rows[3], {
    id: 3, time: new Date(base - 2 * HOUR).toISOString(), kind: 'command-end', user: 'alice', osUser: 'deploy',
    address: '10.1.2.3:40000', keyFingerprint: null, cwd: '/srv', command: 'systemctl restart app', startedAt: null, endedAt: null,
    exitCode: 0, signal: null, bytesIn: 0, bytesOut: 2048, durationMs: 2345, detail: null, prevHash: rows[4].hash, hash: rows[3].hash,
  });
  assert.equal(rows[1].command, 'printf "\\x1b[31mred"\ncat /etc/shadow', 'JSON keeps the exact text');
});

test('audit filters: --user, --since (age and ISO), --until, --grep, --failed, --exit-code, --kind, --limit', async () => {
  const ids = async (...args: string[]) => {
    const result = await audit('--state-dir', stateDir, '--json', ...args);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.toString('utf8').trimEnd().split('\n').filter(Boolean).map((line) => JSON.parse(line).id as number);
  };
  assert.deepEqual(await ids('--user', 'alice'), [5, 3, 2]);
  assert.deepEqual(await ids('--since', '1h'), [6, 5, 4]);
  assert.deepEqual(await ids('--since', '150m', '--until', '30m'), [3]);
  assert.deepEqual(await ids('--since', new Date(base - 6 * 60_000).toISOString()), [6, 5]);
  assert.deepEqual(await ids('--grep', 'SYSTEMCTL'), [3]);
  assert.deepEqual(await ids('--grep', 'revoked'), [4]);
  assert.deepEqual(await ids('--failed'), [6, 5, 4]);
  assert.deepEqual(await ids('--exit-code', '0'), [3]);
  assert.deepEqual(await ids('--kind', 'auth-ok'), [2]);
  assert.deepEqual(await ids('--limit', '2'), [6, 5]);
  assert.deepEqual(await ids('--user', 'nobody'), []);
});

test('audit shows the latest 50 by default, says how many older rows it left out; --limit, --all and --json select the same', async () => {
  const big = join(root, 'big');
  const log = AuditLog.open(auditLogPath(big));
  for (let i = 1; i <= 120; i++) log.record({ kind: 'command-end', user: i % 2 ? 'odd' : 'even', command: `echo ${i}`, exitCode: 0 });
  log.close();
  const run = async (...args: string[]) => {
    const result = await audit('--state-dir', big, ...args);
    assert.equal(result.code, 0, result.stderr);
    return result;
  };
  const table = await run();
  const lines = table.stdout.toString('utf8').trimEnd().split('\n');
  assert.equal(lines.length, 51, 'a header and 50 rows');
  assert.match(lines[1]!, /echo 120$/, 'newest first');
  assert.match(lines[50]!, /echo 71$/);
  assert.equal(table.stderr, '… 70 older rows; use --limit N or --all\n');

  const json = await run('--json');
  const ids = json.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l).id as number);
  assert.deepEqual(ids, Array.from({ length: 50 }, (_, i) => 120 - i), '--json: the same rows in the same order');
  assert.equal(json.stderr, '… 70 older rows; use --limit N or --all\n');

  const limited = await run('--limit', '5', '--user', 'odd');
  assert.equal(limited.stdout.toString('utf8').trimEnd().split('\n').length, 6);
  assert.equal(limited.stderr, '… 55 older rows; use --limit N or --all\n', 'counted under the same filter');
  const all = await run('--all', '--json');
  assert.equal(all.stdout.toString('utf8').trimEnd().split('\n').length, 120);
  assert.equal(all.stderr, '');
  const exact = await run('--limit', '120');
  assert.equal(exact.stderr, '', 'nothing left out, nothing said');
  const both = await audit('--state-dir', big, '--all', '--limit', '3');
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--limit and --all do not go together/);
});

test('audit: bad flags exit 2, a missing log exits 1, and neither creates a log', async () => {
  for (const args of [['--since', 'last tuesday'], ['--limit', '0'], ['--exit-code', 'x'], ['--kind', 'reboot'], ['stray']]) {
    const result = await audit('--state-dir', stateDir, ...args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
  }
  const empty = join(root, 'nothing-here');
  for (const args of [['--state-dir', empty], ['verify', '--state-dir', empty]]) {
    const result = await audit(...args);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /No audit log at .*nothing-here\/audit\.sqlite/);
  }
  assert.equal(existsSync(empty), false, 'reading never creates a log');
  const byDefault = await runCli(['audit', 'verify'], { env: { ...process.env, SHELLWIRE_HOME: join(root, 'home') } });
  assert.equal(byDefault.code, 1);
  assert.match(byDefault.stderr, /home\/server\/audit\.sqlite/, 'the default state dir is $SHELLWIRE_HOME/server');
});

test('audit verify: exit 0 on the intact log, then exit 1 naming the edited row', async () => {
  const intact = await audit('verify', '--state-dir', stateDir);
  assert.equal(intact.code, 0, intact.stderr);
  assert.equal(intact.stdout.toString('utf8'), 'audit log intact: 6 rows\n');
  const before = await audit('--state-dir', stateDir, 'verify'); // the flag before the subcommand works too
  assert.equal(before.code, 0, before.stderr);

  const db = new Database(auditLogPath(stateDir));
  db.exec('DROP TRIGGER audit_events_no_update');
  db.prepare("UPDATE audit_events SET command = 'ls' WHERE id = 5").run();
  db.close();
  const edited = await audit('verify', '--state-dir', stateDir);
  assert.equal(edited.code, 1);
  assert.match(edited.stdout.toString('utf8'), /^audit log NOT intact: row 5 edited: .*\(4 rows verified before it\)\n$/);

  const db2 = new Database(auditLogPath(stateDir));
  db2.exec('DROP TRIGGER audit_events_no_delete');
  db2.prepare('DELETE FROM audit_events WHERE id = 2').run();
  db2.close();
  const deleted = await audit('verify', '--state-dir', stateDir);
  assert.equal(deleted.code, 1);
  assert.match(deleted.stdout.toString('utf8'), /row 2 deleted: row 2 is missing/, 'the first bad row is named');
});

test('the CLI loads better-sqlite3 only for audit commands (exec start-up stays lean)', async () => {
  const probe = resolve(import.meta.dirname, '../fixtures/report-sqlite-loaded.cjs');
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${probe}` };
  const exec = await runCli(['exec', '--help'], { env });
  assert.equal(exec.code, 0, exec.stderr);
  assert.doesNotMatch(exec.stderr, /better-sqlite3 loaded/);
  const verify = await runCli(['audit', 'verify', '--state-dir', stateDir], { env });
  assert.match(verify.stderr, /better-sqlite3 loaded/, 'the probe sees the module when it is loaded');
});
