/**
 * The audit log on a full disk (issue 8 item 15): a real daemon whose state dir is a 4 MiB
 * tmpfs, filled with a file; commands through the real CLI. By default new commands are
 * refused with SW_ERR_AUDIT_UNAVAILABLE while nothing can be recorded; with
 * `--audit-failure continue` they run. Either way the rows wait in memory, service resumes
 * by itself once space is freed, and a `gap` row in the chain records the outage.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDaemon, runCli, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';
import { captureLogger } from '../helpers/raw-client.js';
import { AuditLog, auditLogPath, type AuditRow } from '../../src/audit/audit-log.js';

const mounts: string[] = [];
after(() => {
  for (const dir of mounts) {
    spawnSync('umount', ['-l', dir]);
    removeDir(dir);
  }
});

/** A 4 MiB tmpfs, or undefined where mounting is not allowed. */
function smallDisk(): string | undefined {
  const dir = tempDir('shellwire-full-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]).status !== 0) {
    removeDir(dir);
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

function fill(dir: string): string {
  const file = join(dir, 'filler');
  spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k'], { stdio: 'ignore' }); // stops at ENOSPC
  return file;
}

function rows(d: TestDaemon): AuditRow[] {
  const log = AuditLog.open(auditLogPath(d.server.stateDir), { readonly: true });
  try {
    return log.query({});
  } finally {
    log.close();
  }
}

async function daemonOnSmallDisk(t: { skip(message: string): void }, options: Parameters<typeof startDaemon>[0] = {}) {
  const disk = smallDisk();
  if (disk === undefined) {
    t.skip('cannot mount a tmpfs here');
    return undefined;
  }
  const captured = captureLogger();
  const stateDir = join(disk, 'server');
  mkdirSync(stateDir, { mode: 0o700 });
  const d = await startDaemon({ stateDir, logger: captured.logger, ...options });
  return { d, disk, lines: captured.lines };
}

test('disk full: new commands are refused with SW_ERR_AUDIT_UNAVAILABLE, service resumes when space is freed, the chain records the gap', { timeout: 60_000 }, async (t) => {
  const setup = await daemonOnSmallDisk(t);
  if (!setup) return;
  const { d, disk, lines } = setup;
  try {
    const before = await runCli(['exec', d.address, '--', 'echo before'], { env: d.env });
    assert.equal(before.code, 0, before.stderr);
    const filler = fill(disk);

    for (let i = 0; i < 3; i++) {
      const refused = await runCli(['exec', d.address, '--', `echo refused-${i}`], { env: d.env });
      assert.notEqual(refused.code, 0, 'a command ran while the audit log could not record it');
      assert.equal(refused.stdout.toString(), '');
      assert.match(refused.stderr, /SW_ERR_AUDIT_UNAVAILABLE/);
      assert.match(refused.stderr, new RegExp(`free space in ${disk}/server`));
      assert.match(refused.stderr, /--audit-failure continue/);
    }
    // A file transfer is a command too.
    const get = await runCli(['get', `${d.address}:/etc/hostname`, join(tempDir(), 'x')], { env: d.env });
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /SW_ERR_AUDIT_UNAVAILABLE/);

    const failures = lines.filter((l) => /audit log write failed/.test(String(l.msg)));
    assert.ok(failures.length >= 1, 'the failed writes are logged');
    assert.equal(failures[0]!.code, 'SQLITE_FULL');
    assert.match(String(failures[0]!.msg), /new commands are refused/);

    unlinkSync(filler);
    let after: Awaited<ReturnType<typeof runCli>> | undefined;
    assert.ok(await waitFor(async () => (after = await runCli(['exec', d.address, '--', 'echo after'], { env: d.env })).code === 0, 10_000), after?.stderr);
    assert.equal(after!.stdout.toString(), 'after\n');
    assert.ok(lines.some((l) => /audit log writable again/.test(String(l.msg))));

    const settled = (r: AuditRow[]) => r.filter((x) => x.kind === 'connect').length === r.filter((x) => x.kind === 'disconnect').length;
    await waitFor(() => {
      const r = rows(d);
      return settled(r) && r.some((x) => x.command === 'echo after' && x.kind === 'command-end');
    });
    const all = rows(d);
    const gap = all.filter((r) => r.kind === 'gap');
    assert.equal(gap.length, 1);
    assert.equal(gap[0]!.detail?.lost, 0, 'nothing was lost: every row waited in memory');
    assert.equal(gap[0]!.detail?.code, 'SQLITE_FULL');
    assert.ok(gap[0]!.startedAt !== null && gap[0]!.endedAt !== null && gap[0]!.startedAt <= gap[0]!.endedAt);
    // The refused attempts are recorded (delayed, not lost): their connections and denials.
    const denied = all.filter((r) => r.kind === 'denied');
    assert.deepEqual(denied.slice(0, 3).map((r) => r.command), ['echo refused-0', 'echo refused-1', 'echo refused-2']);
    assert.match(String(denied[0]!.detail?.reason), /audit log cannot be written/);
    assert.ok(settled(all), 'every connection and disconnection is recorded');
    assert.ok(all.findIndex((r) => r.kind === 'gap') < all.findIndex((r) => r.command === 'echo after'));

    const verify = await runCli(['audit', 'verify', '--state-dir', d.server.stateDir]);
    assert.equal(verify.code, 0, verify.stdout.toString() + verify.stderr);
    assert.match(verify.stdout.toString(), new RegExp(`intact: ${all.length} rows, with 1 recorded gap \\(0 rows lost in all\\)`));
    assert.match(verify.stdout.toString(), /row \d+: 0 rows lost between \S+ and \S+: the file system holding .* is full \(SQLITE_FULL\)/);
  } finally {
    await d.stop();
  }
});

test('disk full with --audit-failure continue: commands run; past the memory bound rows are counted by kind in the gap row', { timeout: 60_000 }, async (t) => {
  const setup = await daemonOnSmallDisk(t, { auditFailure: 'continue', auditQueueLimit: 5 });
  if (!setup) return;
  const { d, disk, lines } = setup;
  try {
    const filler = fill(disk);
    for (let i = 0; i < 4; i++) {
      const ran = await runCli(['exec', d.address, '--', `echo ran-${i}`], { env: d.env });
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout.toString(), `ran-${i}\n`);
    }
    assert.match(String(lines.find((l) => /audit log write failed/.test(String(l.msg)))?.msg), /commands go on \(--audit-failure continue\)/);
    unlinkSync(filler);
    // The retry timer writes the queue and the gap row without any new request.
    assert.ok(await waitFor(() => rows(d).some((r) => r.kind === 'gap'), 10_000));
    const all = rows(d);
    const gap = all.find((r) => r.kind === 'gap')!;
    // Each `exec` is 5 rows (connect, auth-ok, command-start, command-end, disconnect): the
    // first 5 waited in memory, the other 15 were dropped and are counted.
    assert.deepEqual(all.map((r) => r.kind), ['connect', 'auth-ok', 'command-start', 'command-end', 'disconnect', 'gap']);
    assert.equal(gap.detail?.lost, 15);
    assert.deepEqual(gap.detail?.lostByKind, { 'connect': 3, 'auth-ok': 3, 'command-start': 3, 'command-end': 3, 'disconnect': 3 });
    assert.equal(gap.detail?.delayed, 5);
    assert.ok(typeof gap.detail?.lostFrom === 'string' && typeof gap.detail?.lostTo === 'string');

    const verify = await runCli(['audit', 'verify', '--state-dir', d.server.stateDir]);
    assert.equal(verify.code, 0, verify.stdout.toString());
    assert.match(verify.stdout.toString(), /with 1 recorded gap \(15 rows lost in all\)/);
    assert.match(verify.stdout.toString(), /15 rows lost \(3 connect, 3 auth-ok, 3 command-start, 3 command-end, 3 disconnect\) between/);
  } finally {
    await d.stop();
  }
});

test('the audit log file deleted under a running daemon: a new log starts with a gap row naming the old chain end', { timeout: 30_000 }, async () => {
  const d = await startDaemon();
  try {
    assert.equal((await runCli(['exec', d.address, '--', 'echo one'], { env: d.env })).code, 0);
    await waitFor(() => rows(d).some((r) => r.kind === 'disconnect'));
    const old = rows(d);
    const path = auditLogPath(d.server.stateDir);
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });

    const two = await runCli(['exec', d.address, '--', 'echo two'], { env: d.env });
    assert.equal(two.code, 0, two.stderr);
    assert.ok(await waitFor(() => rows(d).some((r) => r.command === 'echo two' && r.kind === 'command-end')), 'rows after the deletion reach the file at the path');
    const fresh = rows(d);
    assert.equal(fresh[0]!.kind, 'gap');
    assert.deepEqual(fresh[0]!.detail?.previousLog, { path, lastId: old.length, lastHash: old.at(-1)!.hash });
    assert.equal(fresh[0]!.detail?.code, 'REPLACED');
    const verify = await runCli(['audit', 'verify', '--state-dir', d.server.stateDir]);
    assert.equal(verify.code, 0);
    assert.match(verify.stdout.toString(), /with 1 recorded gap .*\n.*deleted or replaced/);
  } finally {
    await d.stop();
  }
});
