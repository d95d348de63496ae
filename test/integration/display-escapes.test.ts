/**
 * Remote-controlled text in the CLI's human output (issue 14 review, finding 3): a path or
 * command holding a bidi override (U+202E…) or a control character must not make a row read
 * reversed or rewrite the terminal. `shellwire audit` (the table) and file errors naming a
 * remote path show them as visible escapes; `--json` keeps the exact text. The real CLI as a
 * child process, a real audit log, a real daemon.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { runCli, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { removeDir, tempDir } from '../helpers/fixtures.js';

/** What a terminal would act on or reorder: C0 but newline, DEL, C1, and the bidi controls. */
// eslint-disable-next-line no-control-regex -- finding raw controls in output is the point
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

let root: string;
let stateDir: string;
let daemon: TestDaemon;
const PUSHED = '/tmp/swa-push/new\nline-\u202e.txt';

before(async () => {
  root = tempDir('shellwire-escapes-');
  stateDir = join(root, 'server');
  const log = AuditLog.open(auditLogPath(stateDir));
  log.record({ kind: 'file', user: 'alice', address: 'web:127.0.0.1:40000', detail: { op: 'put', path: PUSHED, bytes: 4, sha256: '259b1cd06d' } });
  log.record({ kind: 'command-end', user: 'alice', osUser: 'alice', address: '127.0.0.1:40001', command: 'echo \u2066safe\u2069 \x9b2J \u200fx', exitCode: 0, durationMs: 1, bytesIn: 0, bytesOut: 0 });
  log.close();
  daemon = await startDaemon();
});

after(async () => {
  await daemon?.stop();
  if (root) removeDir(root);
});

test('audit: a path with U+202E and a newline, a command with isolates and a C1 CSI: escaped in the table, exact in --json', async () => {
  const table = await runCli(['audit', '--state-dir', stateDir]);
  assert.equal(table.code, 0, table.stderr);
  const text = table.stdout.toString('utf8');
  assert.doesNotMatch(text, RAW, 'no raw control or bidi character reaches the terminal');
  assert.ok(text.includes('"path":"/tmp/swa-push/new\\nline-\\u{202e}.txt","bytes":4'), text);
  assert.ok(text.includes('echo \\u{2066}safe\\u{2069} \\x9b2J \\u{200f}x'), text);
  assert.equal(text.trimEnd().split('\n').length, 3, 'one line per row');
  const json = await runCli(['audit', '--state-dir', stateDir, '--json']);
  const rows = json.stdout.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { detail: { path?: string } | null; command: string | null });
  assert.equal(rows[1]!.detail!.path, PUSHED, 'JSON keeps the exact path');
  assert.equal(rows[0]!.command, 'echo \u2066safe\u2069 \x9b2J \u200fx');
});

test('ls and get: an error naming a remote path with a bidi override and ESC shows them escaped', async () => {
  const dir = join(root, 'files');
  mkdirSync(dir);
  writeFileSync(join(dir, 'plain'), 'x');
  const missing = join(dir, 'no\u202etxt.exe\x1b[2J');
  for (const args of [['ls', `${daemon.address}:${missing}`], ['get', `${daemon.address}:${missing}`, join(root, 'out')]]) {
    const r = await runCli(args, { env: daemon.env });
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, RAW, `${args[0]}: ${JSON.stringify(r.stderr)}`);
    assert.ok(r.stderr.includes('no\\u{202e}txt.exe\\x1b[2J'), `${args[0]}: ${r.stderr}`);
  }
});
