/**
 * The real CLI on a gateway's state dir: `audit verify` recomputes the SHA-256 of every
 * recording the hash-chained rows reference (an edited byte or a deleted file is a failure
 * naming the id and the row), `recordings` lists them, `replay` plays them (exec output as
 * the exact bytes), Ctrl-C stops a replay cleanly.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { FileRecordingStore } from '../../src/audit/recording.js';
import { CLI, runCli } from '../helpers/daemon.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A gateway state dir with an audit log whose rows reference one terminal and one exec recording. */
async function gatewayState() {
  const dir = mkdtempSync(join(tmpdir(), 'sw-recs-'));
  roots.push(dir);
  let clock = 0;
  const store = new FileRecordingStore(dir, { monotonicMs: () => clock });
  const tty = store.startTerminal({ operator: 'alice', host: 'web01', as: 'deploy', command: null, cols: 80, rows: 24, term: 'xterm', recordInput: false });
  tty.output(Buffer.from('\x1b[32mgreen\x1b[0m '));
  clock = 30_000; // a long pause: --no-wait must not wait for it
  tty.resize(100, 30);
  tty.output(Buffer.from('caf\xc3', 'latin1'));
  tty.output(Buffer.from('\xa9\r\n', 'latin1'));
  clock = 75_000;
  const ttyResult = await tty.end();
  const exec = store.startExecOutput({ operator: 'bob', host: 'db01', as: 'ops', command: 'dump' });
  exec.stdout(Buffer.from([0x00, 0xff, 0x0a]));
  exec.stderr(Buffer.from('oops\n'));
  const execResult = await exec.end();
  const log = AuditLog.open(auditLogPath(dir));
  log.record({ kind: 'connect', user: 'alice' });
  const ttyRow = log.record({ kind: 'command-end', user: 'alice', detail: { host: 'web01', as: 'deploy', recording: { id: ttyResult.id, sha256: ttyResult.sha256 } } });
  const execRow = log.record({ kind: 'command-end', user: 'bob', command: 'dump', detail: { host: 'db01', as: 'ops', recording: { id: execResult.id, sha256: execResult.sha256 } } });
  log.close();
  return { dir, store, tty: ttyResult, exec: execResult, ttyRow, execRow };
}

test('audit verify: intact recordings pass; one edited byte or a deleted file fails naming the id and the row', async () => {
  const g = await gatewayState();
  const ok = await runCli(['audit', 'verify', '--state-dir', g.dir]);
  assert.equal(ok.code, 0, ok.stdout.toString() + ok.stderr);
  assert.match(ok.stdout.toString(), /audit log intact: 3 rows/);
  assert.match(ok.stdout.toString(), /recordings intact: 2/);

  const cast = g.store.open(g.tty.id).path;
  const original = readFileSync(cast);
  const edited = Buffer.from(original);
  edited[original.indexOf('green')] = 0x47; // g -> G
  writeFileSync(cast, edited);
  const bad = await runCli(['audit', 'verify', '--state-dir', g.dir]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout.toString(), new RegExp(`recording NOT intact: recording ${g.tty.id} \\(row ${g.ttyRow}\\) was changed`));
  assert.match(bad.stdout.toString(), /audit log intact: 3 rows/, 'the chain itself is fine: only the recording was changed');

  unlinkSync(g.store.open(g.exec.id).path);
  writeFileSync(cast, original);
  const gone = await runCli(['audit', 'verify', '--state-dir', g.dir]);
  assert.equal(gone.code, 1);
  assert.match(gone.stdout.toString(), new RegExp(`recording ${g.exec.id} \\(row ${g.execRow}\\) is missing`));
  assert.doesNotMatch(gone.stdout.toString(), new RegExp(`${g.tty.id}.*changed`), 'the restored one passes again');
});

test('recordings lists who, host, as, when, length and size; --user filters; --json is one object per line', async () => {
  const g = await gatewayState();
  const table = await runCli(['recordings', '--state-dir', g.dir]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.toString().trimEnd().split('\n');
  assert.match(lines[0]!, /^ID\s+WHO\s+HOST\s+AS\s+WHEN\s+LENGTH\s+SIZE$/);
  assert.equal(lines.length, 3);
  const ttyLine = lines.find((l) => l.startsWith(g.tty.id))!;
  assert.match(ttyLine, /\balice\s+web01\s+deploy\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+1m15s\s+\d+B$/);
  const json = await runCli(['recordings', '--state-dir', g.dir, '--json', '--user', 'bob']);
  const rows = json.stdout.toString().trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; operator: string; sha256: string });
  assert.deepEqual(rows.map((r) => [r.id, r.operator, r.sha256]), [[g.exec.id, 'bob', g.exec.sha256]]);
  const none = await runCli(['recordings', '--state-dir', join(g.dir, 'nothing-here')]);
  assert.equal(none.code, 0);
  assert.match(none.stderr, /no recordings/);
});

test('replay --no-wait prints the output at once; exec output comes back as the exact bytes on stdout and stderr', async () => {
  const g = await gatewayState();
  const tty = await runCli(['replay', g.tty.id, '--no-wait', '--resizes', '--state-dir', g.dir], { timeoutMs: 10_000 });
  assert.equal(tty.code, 0, tty.stderr);
  assert.equal(tty.stdout.toString(), '\x1b[32mgreen\x1b[0m café\r\n');
  assert.equal(tty.stderr, '[resized to 100x30]\n');
  const quiet = await runCli(['replay', g.tty.id, '--speed', '0', '--state-dir', g.dir], { timeoutMs: 10_000 });
  assert.equal(quiet.stderr, '', 'resizes only when asked');
  const exec = await runCli(['replay', g.exec.id, '--state-dir', g.dir]);
  assert.equal(exec.code, 0);
  assert.deepEqual([...exec.stdout], [0x00, 0xff, 0x0a]);
  assert.equal(exec.stderr, 'oops\n');
  const unknown = await runCli(['replay', '20200101T000000Z-00000000', '--state-dir', g.dir]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /No recording "20200101T000000Z-00000000".*shellwire recordings/);
  writeFileSync(g.store.open(g.tty.id).path, '{"version":2,"width":80,"height":24}\n[0.1, "o", "ok"]\n[oops\n');
  const garbled = await runCli(['replay', g.tty.id, '--no-wait', '--state-dir', g.dir]);
  assert.equal(garbled.code, 1);
  assert.equal(garbled.stdout.toString(), 'ok', 'played up to the bad line');
  assert.match(garbled.stderr, new RegExp(`recording ${g.tty.id} is not asciicast v2: line 3: not JSON`));
  const badSpeed = await runCli(['replay', g.tty.id, '--speed', 'fast', '--state-dir', g.dir]);
  assert.equal(badSpeed.code, 2);
  assert.match(badSpeed.stderr, /--speed takes a number/);
});

test('replay: Ctrl-C during a pause stops at once with 130', async () => {
  const g = await gatewayState();
  const child = spawn(process.execPath, [CLI, 'replay', g.tty.id, '--state-dir', g.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  // The first event is printed, then the 30 s pause begins.
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(timer);
  assert.equal(code, 130);
  assert.equal(out, '\x1b[32mgreen\x1b[0m ', 'nothing after the pause was played');
});
