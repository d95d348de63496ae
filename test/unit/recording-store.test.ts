/**
 * The recording store on real files: asciicast output with split characters and resizes,
 * input only when asked, exec output byte-exact, 0600 files, sortable unique ids, the
 * SHA-256 that end() reports is the file's, a bounded queue, a full disk (a real tmpfs),
 * list/open/prune, and the gateway's `recordings`/`recording` ops.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text as readAll } from 'node:stream/consumers';
import { FileRecordingStore, RECORDING_ID_PATTERN } from '../../src/audit/recording.js';
import { parseCast } from '../../src/audit/asciicast.js';
import { readExecOutput } from '../../src/audit/exec-output.js';
import { verifyRecordings } from '../../src/audit/recording-verify.js';
import type { AuditRow } from '../../src/audit/audit-log.js';
import { recordingsOp } from '../../src/gateway/recordings-op.js';
import { ErrorCode } from '../../src/errors.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sw-rec-'));
  roots.push(dir);
  return dir;
}
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const meta = { operator: 'alice', host: 'web01', as: 'deploy', command: null, cols: 80, rows: 24, term: 'xterm-256color', recordInput: false };

test('a terminal recording: asciicast v2 with whole characters, resizes, no input by default, 0600, hash of the file', async () => {
  const dir = stateDir();
  let clock = 0;
  const store = new FileRecordingStore(dir, { monotonicMs: () => clock });
  const rec = store.startTerminal(meta);
  assert.match(rec.id, RECORDING_ID_PATTERN);
  const euro = Buffer.from('\x1b[31m€\x1b[0m\r\n', 'utf8');
  clock = 250;
  rec.output(euro.subarray(0, 7)); // ends inside €
  clock = 1000.0004;
  rec.output(euro.subarray(7));
  rec.input(Buffer.from('secret\r'));
  clock = 1500;
  rec.resize(120, 40);
  rec.output(Buffer.from([0x41, 0xff]));
  const result = await rec.end();
  const { path, info } = store.open(rec.id);
  assert.equal(path, join(dir, 'recordings', `${rec.id}.cast`));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'recordings')).mode & 0o777, 0o700);
  assert.equal(result.sha256, sha(path));
  assert.equal(result.bytes, statSync(path).size);
  assert.equal(result.durationMs, 1500);
  assert.equal(info.sha256, result.sha256);
  const cast = parseCast(readFileSync(path, 'utf8'));
  assert.deepEqual({ ...cast.header, timestamp: 0 }, { version: 2, width: 80, height: 24, timestamp: 0, title: 'alice@web01', env: { TERM: 'xterm-256color' } });
  assert.deepEqual(cast.events, [
    [0.25, 'o', '\x1b[31m'],
    [1.000000, 'o', '€\x1b[0m\r\n'],
    [1.5, 'r', '120x40'],
    [1.5, 'o', 'A\uFFFD'],
  ]);
  assert.equal((await rec.end()).sha256, result.sha256, 'end() is idempotent');
  rec.output(Buffer.from('after end'));
  assert.equal(sha(path), result.sha256, 'nothing is written after end()');
});

test('input is recorded only when the policy says so', async () => {
  const store = new FileRecordingStore(stateDir());
  const rec = store.startTerminal({ ...meta, recordInput: true, command: 'htop' });
  rec.input(Buffer.from('ls\r'));
  rec.output(Buffer.from('file\r\n'));
  await rec.end();
  const cast = parseCast(readFileSync(store.open(rec.id).path, 'utf8'));
  assert.equal(cast.header.command, 'htop');
  assert.deepEqual(cast.events.map((e) => [e[1], e[2]]), [['i', 'ls\r'], ['o', 'file\r\n']]);
});

test('exec output: stdout and stderr as the exact bytes, in order', async () => {
  const store = new FileRecordingStore(stateDir());
  const rec = store.startExecOutput({ operator: 'bob', host: 'db01', as: 'ops', command: 'cat /bin/true' });
  const binary = Buffer.from([0, 0xff, 0xfe, 0x80, 0x0a]);
  rec.stdout(binary);
  rec.stderr(Buffer.from('warn\n'));
  rec.stdout(Buffer.from('more'));
  const result = await rec.end();
  const { path, info } = store.open(rec.id);
  assert.equal(info.type, 'exec');
  assert.equal(result.sha256, sha(path));
  assert.deepEqual(readExecOutput(readFileSync(path)).map((r) => [r.stream, r.data.toString('hex')]), [
    ['stdout', binary.toString('hex')], ['stderr', Buffer.from('warn\n').toString('hex')], ['stdout', Buffer.from('more').toString('hex')],
  ]);
  assert.throws(() => readExecOutput(Buffer.from('SWOUT1\n\x03\x00\x00\x00\x00', 'latin1')), /stream 3/);
  assert.throws(() => readExecOutput(Buffer.from('SWOUT1\n\x01\x00\x00\x00\x09ab', 'latin1')), /cut short/);
});

test('ids sort by start time and never repeat; list is newest first and filters by operator', async () => {
  let now = Date.UTC(2026, 10, 30, 7, 0, 0);
  const store = new FileRecordingStore(stateDir(), { now: () => new Date(now) });
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) {
    const rec = store.startTerminal({ ...meta, operator: i % 2 === 0 ? 'alice' : 'bob' });
    ids.push(rec.id);
    await rec.end();
    if (i % 3 === 2) now += 1000; // three in the same second, then the next second
  }
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(ids[0]!.startsWith('20261130T070000Z-'));
  for (let i = 3; i < ids.length; i += 3) assert.ok(ids[i]! > ids[i - 1]!, 'a later second sorts later');
  const listed = store.list();
  assert.equal(listed.length, 30);
  for (let i = 1; i < listed.length; i++) assert.ok(listed[i - 1]!.startedAt >= listed[i]!.startedAt);
  assert.deepEqual(new Set(store.list({ operator: 'bob' }).map((r) => r.operator)), new Set(['bob']));
  assert.equal(store.list({ operator: 'bob' }).length, 15);
});

test('open() refuses unknown and path-like ids with SW_ERR_NO_RECORDING', () => {
  const store = new FileRecordingStore(stateDir());
  for (const id of ['20261130T070000Z-00000000', '../../etc/passwd', '']) {
    assert.throws(() => store.open(id), (err: Error & { code?: string }) => err.code === ErrorCode.NO_RECORDING && /shellwire recordings/.test(err.message));
  }
});

test('a disk that does not keep up: the queue is capped, the recording stops with an error, the caller never waits', async () => {
  const warnings: string[] = [];
  const store = new FileRecordingStore(stateDir(), { maxQueuedBytes: 64 * 1024, logger: { warn: (_obj: unknown, msg?: string) => warnings.push(String(msg)) } as never });
  const rec = store.startTerminal(meta);
  // Synchronous bursts: the writer cannot run in between, exactly like a disk that stalls.
  const chunk = Buffer.alloc(4096, 0x61);
  for (let i = 0; i < 1000; i++) rec.output(chunk);
  const result = await rec.end();
  assert.match(result.error ?? '', /did not keep up.*recording stopped/);
  assert.equal(warnings.length, 1);
  const { path, info } = store.open(rec.id);
  assert.equal(result.sha256, sha(path), 'the hash is of what reached the file');
  assert.ok(statSync(path).size < 64 * 1024, 'nothing past the cap was kept');
  assert.match(info.error ?? '', /did not keep up/);
});

test('a full disk (a real tmpfs): the recording stops with the error, end() says so, the hash matches the file', async (t) => {
  const dir = stateDir();
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]).status !== 0) return t.skip('cannot mount a tmpfs here');
  try {
    const warnings: string[] = [];
    const store = new FileRecordingStore(mnt, { logger: { warn: (_obj: unknown, msg?: string) => warnings.push(String(msg)) } as never });
    const rec = store.startTerminal(meta);
    for (let i = 0; i < 200; i++) {
      rec.output(Buffer.alloc(4096, 0x62));
      await new Promise((r) => setImmediate(r));
    }
    const result = await rec.end();
    assert.match(result.error ?? '', /ENOSPC/);
    assert.match(warnings.join('\n'), /ENOSPC/);
    assert.equal(result.sha256, sha(join(mnt, 'recordings', `${rec.id}.cast`)));
  } finally {
    spawnSync('umount', ['-l', mnt]);
  }
});

test('prune removes recordings older than the retention and leaves a note that audit verify reads', async () => {
  let now = Date.UTC(2026, 0, 1);
  const dir = stateDir();
  const store = new FileRecordingStore(dir, { now: () => new Date(now) });
  const old = store.startTerminal(meta);
  const oldResult = await old.end();
  now += 50 * 86_400_000;
  const young = store.startExecOutput({ operator: 'alice', host: 'web01', as: 'deploy', command: 'true' });
  const youngResult = await young.end();
  now += 50 * 86_400_000;
  assert.equal(store.prune(90), 1);
  assert.deepEqual(store.list().map((r) => r.id), [young.id]);
  assert.ok(!existsSync(join(dir, 'recordings', `${old.id}.cast`)));
  const row = (id: number, ref: object): AuditRow => ({ id, detail: { recording: ref } } as unknown as AuditRow);
  const verified = verifyRecordings(store.dir, [row(1, { id: old.id, sha256: oldResult.sha256 }), row(2, { id: young.id, sha256: youngResult.sha256 })]);
  assert.deepEqual(verified.problems, []);
  assert.equal(verified.checked, 1);
  assert.deepEqual(verified.pruned.map((p) => p.id), [old.id]);
  // A note does not excuse a different recording than the row's.
  const forged = verifyRecordings(store.dir, [row(3, { id: old.id, sha256: 'a'.repeat(64) })]);
  assert.equal(forged.problems[0]?.problem, 'missing');
  assert.equal(store.prune(0), 1);
  assert.throws(() => store.prune(-1), RangeError);
});

test('verifyRecordings: edited, missing and malformed references are named with their row', async () => {
  const store = new FileRecordingStore(stateDir());
  const rec = store.startTerminal(meta);
  rec.output(Buffer.from('hello'));
  const result = await rec.end();
  const row = (id: number, ref: unknown): AuditRow => ({ id, detail: { recording: ref } } as unknown as AuditRow);
  const path = store.open(rec.id).path;
  writeFileSync(path, readFileSync(path, 'utf8').replace('hello', 'jello'));
  const verified = verifyRecordings(store.dir, [
    row(7, { id: rec.id, sha256: result.sha256 }),
    row(8, { id: '20200101T000000Z-deadbeef', sha256: result.sha256 }),
    row(9, { id: '../x', sha256: result.sha256 }),
    { id: 10, detail: { host: 'web01' } } as unknown as AuditRow,
  ]);
  assert.deepEqual(verified.problems.map((p) => [p.rowId, p.problem]), [[7, 'edited'], [8, 'missing'], [9, 'bad-reference']]);
  assert.match(verified.problems[0]!.message, new RegExp(`recording ${rec.id} \\(row 7\\) was changed`));
});

test('gateway ops: an operator lists and fetches her own; recordings: all sees every one; others look unknown', async () => {
  const store = new FileRecordingStore(stateDir());
  const a = store.startTerminal({ ...meta, operator: 'alice' });
  a.output(Buffer.from('alice was here'));
  await a.end();
  const b = store.startTerminal({ ...meta, operator: 'bob' });
  await b.end();
  const list = async (op: ReturnType<typeof recordingsOp>) => JSON.parse(await readAll(op.body)) as Array<{ id: string }>;
  assert.deepEqual((await list(recordingsOp(store, 'alice', { op: 'recordings' }, false))).map((r) => r.id), [a.id]);
  assert.deepEqual(new Set((await list(recordingsOp(store, 'root', { op: 'recordings' }, true))).map((r) => r.id)), new Set([a.id, b.id]));
  assert.deepEqual((await list(recordingsOp(store, 'root', { op: 'recordings', user: 'bob' }, true))).map((r) => r.id), [b.id]);
  assert.throws(() => recordingsOp(store, 'alice', { op: 'recordings', user: 'bob' }, false), (err: Error & { code?: string }) => err.code === ErrorCode.DENIED && /recordings: all/.test(err.message));
  const fetched = recordingsOp(store, 'alice', { op: 'recording', id: a.id }, false);
  assert.match(await readAll(fetched.body), /alice was here/);
  const unknown = (err: Error & { code?: string }) => err.code === ErrorCode.NO_RECORDING;
  assert.throws(() => recordingsOp(store, 'alice', { op: 'recording', id: b.id }, false), unknown);
  assert.throws(() => recordingsOp(store, 'alice', { op: 'recording', id: '20200101T000000Z-deadbeef' }, false), unknown);
  const theirs = recordingsOp(store, 'root', { op: 'recording', id: b.id }, true);
  assert.ok(theirs.bytes > 0);
  theirs.body.destroy();
  assert.throws(() => recordingsOp(store, 'alice', { op: 'nope' }, false), (err: Error & { code?: string }) => err.code === ErrorCode.BAD_REQUEST);
  assert.throws(() => recordingsOp(store, 'alice', { op: 'recording' }, false), (err: Error & { code?: string }) => err.code === ErrorCode.BAD_REQUEST);
});

test('any chunking of a terminal\'s output records the same text as the whole output (through the store, on disk)', async () => {
  const { default: fc } = await import('fast-check');
  const store = new FileRecordingStore(stateDir());
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
    const rec = store.startTerminal(meta);
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    let last = 0;
    for (const p of [...points, bytes.length]) {
      rec.output(Buffer.from(bytes.subarray(last, p)));
      last = p;
    }
    await rec.end();
    const cast = parseCast(readFileSync(store.open(rec.id).path, 'utf8'));
    assert.equal(cast.events.map((e) => e[2]).join(''), new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes));
  }), { numRuns: 100 });
});

test('an exec output file read in chunks of any size gives the same records', async () => {
  const { default: fc } = await import('fast-check');
  const { ExecOutputReader } = await import('../../src/audit/exec-output.js');
  const store = new FileRecordingStore(stateDir());
  const rec = store.startExecOutput({ operator: 'bob', host: 'db01', as: 'ops', command: 'x' });
  const sent = [Buffer.from([1, 2, 3]), Buffer.alloc(300, 7), Buffer.from('err'), Buffer.from([0xff])];
  sent.forEach((b, i) => (i % 2 === 0 ? rec.stdout(b) : rec.stderr(b)));
  await rec.end();
  const file = readFileSync(store.open(rec.id).path);
  const whole = readExecOutput(file).map((r) => `${r.stream}:${r.data.toString('hex')}`);
  fc.assert(fc.property(fc.array(fc.nat({ max: file.length }), { maxLength: 10 }), (cuts) => {
    const reader = new ExecOutputReader();
    const got: string[] = [];
    let last = 0;
    for (const p of [...[...new Set(cuts)].sort((a, b) => a - b), file.length]) {
      got.push(...reader.push(file.subarray(last, p)).map((r) => `${r.stream}:${r.data.toString('hex')}`));
      last = p;
    }
    reader.end();
    assert.deepEqual(got, whole);
  }));
  const cut = new ExecOutputReader();
  cut.push(file.subarray(0, file.length - 1));
  assert.throws(() => cut.end(), /cut short/);
});
