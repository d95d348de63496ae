/**
 * The daemon's audit trail for a scripted session: the rows a real daemon writes, exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli } from '../helpers/daemon.js';
import { cleanEnv, tempDir } from '../helpers/fixtures.js';
import { connect } from '../../src/client/connect.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { userInfo } from 'node:os';

test('a scripted session leaves exact, chained audit rows', async () => {
  const d = await startDaemon();
  try {
    const dir = tempDir();
    const pair = generateKeyPair('auditor');
    writeFileSync(join(dir, 'key'), pair.privateText, { mode: 0o600 });
    writeFileSync(join(d.server.stateDir, 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    commands: { deny: ["reboot*"] }\n    fileRoots: [/tmp]\n    keys: ["${pair.publicLine}"]\n`);
    assert.ok(d.server.reloadUsers().ok);

    await assert.rejects(connect(d.address, { token: 'wrong', fingerprint: d.fingerprint, env: cleanEnv() }));
    const conn = await connect(`ops@${d.address}`, { identity: join(dir, 'key'), fingerprint: d.fingerprint, env: cleanEnv() });
    await conn.exec('echo hello', { cwd: '/tmp' });
    // A user with command rules runs no shell text: the shell is named, as an argv.
    await conn.exec(['sh', '-c', 'cat >/dev/null; printf abc; exit 3'], { stdin: 'xyz', reject: false });
    await assert.rejects(conn.exec('reboot now'));
    await conn.close();
    await new Promise((r) => setTimeout(r, 100));

    const log = AuditLog.open(auditLogPath(d.server.stateDir), { readonly: true });
    try {
      const rows = log.query({});
      const summary = rows.map((r) => [r.kind, r.user, r.command, r.exitCode]);
      const me = userInfo().username;
      assert.deepEqual(summary, [
        ['connect', null, null, null],
        ['auth-fail', null, null, null],
        ['disconnect', null, null, null],
        ['connect', null, null, null],
        ['auth-ok', 'ops', null, null],
        ['command-start', 'ops', 'echo hello', null],
        ['command-end', 'ops', 'echo hello', 0],
        // Shell-quoted: the argv's word boundaries are kept (review 11 #5).
        ['command-start', 'ops', "sh -c 'cat >/dev/null; printf abc; exit 3'", null],
        ['command-end', 'ops', "sh -c 'cat >/dev/null; printf abc; exit 3'", 3],
        ['denied', 'ops', 'reboot now', null],
        ['disconnect', 'ops', null, null],
      ]);
      const authOk = rows[4]!;
      assert.equal(authOk.osUser, me);
      assert.equal(authOk.keyFingerprint, pair.fingerprint);
      const failed = rows[1]!;
      assert.match(String(failed.detail?.reason), /unknown or revoked token/);
      assert.ok(!JSON.stringify(rows).includes('"wrong"'), 'the offered secret is never logged');
      const end = rows[8]!;
      assert.equal(end.bytesIn, 3);
      assert.equal(end.bytesOut, 3);
      assert.equal(end.cwd, rows[7]!.cwd);
      assert.ok(end.durationMs !== null && end.durationMs >= 0);
      assert.equal(rows[6]!.cwd, '/tmp');
      assert.match(String(rows[9]!.detail?.reason), /users\.ops\.commands\.deny\[0\]/);
      assert.deepEqual(log.verify(), { ok: true, rows: rows.length });
    } finally {
      log.close();
    }
    const verify = await runCli(['audit', 'verify', '--state-dir', d.server.stateDir], { env: cleanEnv() });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout.toString() + verify.stderr, /intact: 11 rows/);
  } finally {
    await d.stop();
  }
});

test('argv commands keep their word boundaries: shell-quoted text that sh -c runs the same, and the exact argv in detail.argv', async () => {
  const { captureLogger } = await import('../helpers/raw-client.js');
  const { execFileSync } = await import('node:child_process');
  const { logger, lines } = captureLogger();
  const d = await startDaemon({ logger });
  try {
    const argv = ['printf', '[%s]', 'a b', "it's", '', '$HOME', 'x\ny', '*', 'tab\there'];
    const conn = await d.connect();
    const ran = await conn.exec(argv);
    await conn.close();
    await new Promise((r) => setTimeout(r, 100));
    const log = AuditLog.open(auditLogPath(d.server.stateDir), { readonly: true });
    try {
      const rows = log.query({}).filter((r) => r.kind === 'command-start' || r.kind === 'command-end');
      assert.equal(rows.length, 2);
      for (const row of rows) {
        assert.deepEqual(row.detail?.argv, argv);
        assert.equal(row.command, `printf '[%s]' 'a b' 'it'\\''s' '' '$HOME' 'x\ny' '*' 'tab\there'`);
        // The text runs the same argv: the same output as the command gave.
        assert.equal(execFileSync('/bin/sh', ['-c', row.command!], { encoding: 'utf8' }), ran.stdout);
      }
    } finally {
      log.close();
    }
    // The log line too: the quoted text and the exact argv.
    const finished = lines.find((l) => l.msg === 'command finished')!;
    assert.equal(finished.command, rows0(argv));
    assert.deepEqual(finished.argv, argv);
    // `shellwire audit` prints the quoted text.
    const out = await runCli(['audit', '--state-dir', d.server.stateDir, '--kind', 'command-start'], { env: d.env });
    assert.ok(out.stdout.includes(`printf '[%s]' 'a b'`), out.stdout + out.stderr);
  } finally {
    await d.stop();
  }
});

function rows0(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
