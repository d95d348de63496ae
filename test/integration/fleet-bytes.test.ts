/**
 * Fleet output is bytes (issue 9): `run --json` is byte-exact at any chunk boundary (text
 * where the bytes are UTF-8, base64 where not), `run --stream` never splits a line (or a
 * character) except a line past MAX_LINE_BYTES, in pieces it marks, grouped output compares
 * and prints raw bytes, and `runOn()` results carry the exact bytes. Real CLI, real daemons.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli, CLI } from '../helpers/daemon.js';
import { encodeOsBytes } from '../../src/protocol/os-bytes.js';
import { runOn } from '../../src/fleet/run-on.js';
import { loadInventory } from '../../src/fleet/inventory.js';
import { resolveTargets } from '../../src/fleet/targets.js';
import { MAX_LINE_BYTES } from '../../src/fleet/line-splitter.js';
import { startFleet, validate, JSON_LINE_SCHEMA, type TestFleet } from './fleet-helpers.js';

let fleet: TestFleet;

before(async () => {
  fleet = await startFleet([{ name: 'web01', role: 'a' }, { name: 'web02', role: 'b' }], 30);
});

after(async () => {
  await fleet?.stop();
});

const cli = (args: string[]) => runCli(['run', '--inventory', fleet.inventory, ...args], { env: fleet.env, timeoutMs: 30_000 });

/** A fixture file the remote command cats (the daemons run on this machine). */
function fixture(name: string, bytes: Buffer): string {
  const path = join(fleet.root, name);
  writeFileSync(path, bytes);
  return path;
}

interface JsonRecord { type: string; host?: string; stream?: string; data?: string; dataBase64?: string; partial?: boolean; [key: string]: unknown }

function records(stdout: Buffer): JsonRecord[] {
  const lines = stdout.toString('utf8').split('\n');
  assert.equal(lines.pop(), '', 'every record ends with a newline');
  const parsed = lines.map((l) => JSON.parse(l) as JsonRecord);
  for (const r of parsed) assert.equal(validate(r, JSON_LINE_SCHEMA), null, JSON.stringify(r).slice(0, 300));
  return parsed;
}

/** The JSON rule: `data` is the bytes as text (valid UTF-8), `dataBase64` the bytes otherwise. */
const bytesOf = (r: JsonRecord, field = 'data'): Buffer => {
  const text = r[field];
  const b64 = r[`${field}Base64`];
  assert.ok((typeof text === 'string') !== (typeof b64 === 'string'), `exactly one of ${field}/${field}Base64: ${JSON.stringify(r).slice(0, 200)}`);
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(b64 as string, 'base64');
};

const outputOf = (recs: JsonRecord[], host: string, stream = 'stdout') =>
  Buffer.concat(recs.filter((r) => r.type === 'output' && r.host === host && r.stream === stream).map((r) => bytesOf(r)));

test('--json: a trailing incomplete UTF-8 sequence is emitted (as base64), and the result keeps it', async () => {
  const r = await cli(['--json', 'web01', '--', "printf 'abc\\303'"]);
  assert.equal(r.code, 0, r.stderr);
  const recs = records(r.stdout);
  assert.deepEqual(outputOf(recs, 'web01'), Buffer.from('abc\xc3', 'latin1'));
  const result = recs.find((x) => x.type === 'result')!;
  assert.equal(result.stdout, undefined, 'not UTF-8: no text form');
  assert.deepEqual(bytesOf(result, 'stdout'), Buffer.from('abc\xc3', 'latin1'));
  assert.equal(result.stderr, '');
  assert.ok(!r.stdout.toString('utf8').includes('\ufffd'));
});

test('--json: any bytes (random binary, long lines) come back exactly from the records', async () => {
  const euro = Buffer.from(`${'€'.repeat(150_000)}\n`);
  const binary = randomBytes(300_000);
  const input = Buffer.concat([euro, binary, Buffer.from('\nlast line without newline é')]);
  const r = await cli(['--json', 'web01,web02', '--', `cat ${fixture('mixed.bin', input)}`]);
  assert.equal(r.code, 0, r.stderr);
  const recs = records(r.stdout);
  for (const host of ['web01', 'web02']) {
    assert.ok(outputOf(recs, host).equals(input), `${host}: the records give back the exact bytes`);
    const result = recs.find((x) => x.type === 'result' && x.host === host)!;
    assert.ok(bytesOf(result, 'stdout').equals(input), `${host}: result.stdoutBase64 is exact`);
  }
  const euroRecords = recs.filter((x) => x.type === 'output' && x.host === 'web01' && x.data?.startsWith('€'));
  assert.equal(euroRecords.length, 1, 'the € line is one record');
  assert.equal(euroRecords[0]!.data, euro.toString());
});

test('--stream: a 421,083-byte line and a line of 150,000 "€" are one record each, byte for byte', async () => {
  const long = Buffer.concat([Buffer.alloc(421_082, 'x'), Buffer.from('\n')]);
  const euro = Buffer.from(`${'€'.repeat(150_000)}\n`);
  const r = await cli(['--stream', 'web01', '--', `cat ${fixture('long.txt', long)} ${fixture('euro.txt', euro)}`]);
  assert.equal(r.code, 0, r.stderr);
  const expected = Buffer.concat([Buffer.from('web01 | '), long, Buffer.from('web01 | '), euro]);
  assert.equal(r.stdout.length, expected.length);
  assert.ok(r.stdout.equals(expected));
});

test('--stream and --json: a line past MAX_LINE_BYTES comes in marked pieces, each whole characters, that join back exactly', async () => {
  const line = Buffer.from('€'.repeat(Math.ceil((2.5 * MAX_LINE_BYTES) / 3)));
  const input = Buffer.concat([line, Buffer.from('\ntail')]);
  const path = fixture('huge.txt', input);

  const s = await cli(['--stream', 'web01', '--', `cat ${path}`]);
  assert.equal(s.code, 0, s.stderr);
  const text = s.stdout.toString('utf8');
  assert.ok(!text.includes('\ufffd'), 'no character is cut');
  const recordLines = text.split('\n').slice(0, -1);
  assert.deepEqual(recordLines.map((l) => l.slice(0, 9)), ['web01 |+ ', 'web01 |+ ', 'web01 | €', 'web01 | t']);
  const piece = (l: string) => (l.startsWith('web01 |+ ') ? l.slice(9) : l.slice(8));
  assert.equal(recordLines.slice(0, 3).map(piece).join(''), line.toString());
  for (const l of recordLines) assert.ok(Buffer.byteLength(piece(l)) <= MAX_LINE_BYTES);
  assert.equal(recordLines[3], 'web01 | tail');

  const j = await cli(['--json', 'web01', '--', `cat ${path}`]);
  assert.equal(j.code, 0, j.stderr);
  const outs = records(j.stdout).filter((r) => r.type === 'output');
  assert.deepEqual(outs.map((r) => r.partial ?? false), [true, true, false, false]);
  for (const r of outs) assert.ok(Buffer.byteLength(r.data!) <= MAX_LINE_BYTES + 1);
  assert.ok(outputOf(outs, 'web01').equals(input));
  assert.equal(outs.at(-1)!.data, 'tail', 'the unterminated last line has no "\\n"');
});

test('grouped output: hosts whose bytes differ are not merged, and the bytes are printed raw', async () => {
  const r = await cli(['web01,web02', '--', `if [ "$ROLE" = a ]; then printf '\\377\\n'; else printf '\\376\\n'; fi`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout, Buffer.concat([Buffer.from('web01 (1): '), Buffer.of(0xff, 0x0a), Buffer.from('web02 (1): '), Buffer.of(0xfe, 0x0a)]));
});

test('--stream: a carriage return inside a line repeats the host prefix, so no text shows unlabelled', async () => {
  const r = await cli(['--stream', 'web01', '--', "printf '10%%\\r20%%\\rdone\\r\\n'"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'web01 | 10%\rweb01 | 20%\rweb01 | done\r\n');
});

test('runOn(): results carry the exact bytes (stdoutBytes/stderrBytes)', async () => {
  const hosts = resolveTargets('web01', loadInventory(fleet.inventory));
  const summary = await runOn(hosts, "printf 'abc\\303'; printf '\\351t\\351' >&2", { connect: { token: fleet.token, home: fleet.home } }).result();
  const result = summary.results[0]!;
  assert.equal(result.status, 'ok');
  assert.deepEqual(result.stdoutBytes, Buffer.from('abc\xc3', 'latin1'));
  assert.deepEqual(result.stderrBytes, Buffer.from('\xe9t\xe9', 'latin1'));
});

test('truncated results: the kept 1 MiB ends between characters (--json keeps it as text), and a big grouped report prints', async () => {
  const euro = Buffer.from('€'.repeat(400_000)); // 1.2 MB: the 1 MiB cut falls inside a character
  const j = await cli(['--json', 'web01', '--', `cat ${fixture('trunc.txt', euro)}`]);
  assert.equal(j.code, 0, j.stderr);
  const result = records(j.stdout).find((r) => r.type === 'result')!;
  assert.equal(result.truncated, true);
  assert.equal(typeof result.stdout, 'string', 'still text');
  const kept = Buffer.from(result.stdout as string);
  assert.ok(kept.length <= 1024 * 1024 && kept.length > 1024 * 1024 - 3 && euro.subarray(0, kept.length).equals(kept));

  const g = await cli(['web01', '--', 'seq 1 1000000']);
  assert.equal(g.code, 0, g.stderr);
  const lines = g.stdout.toString().split('\n');
  assert.equal(lines[0], 'web01 (1):');
  assert.equal(lines[1], '  1');
  assert.equal(lines.at(-2), '  (output truncated)');
});

test('command text: bytes that are not UTF-8 are kept (surrogateescape), not turned into U+FFFD', async () => {
  // Node's process.argv cannot hold the byte 0xff; a shell puts it in the CLI's argv.
  const script = `exec "${process.execPath}" "${CLI}" run --json --inventory "${fleet.inventory}" web01 -- ": $(printf '\\377')"`;
  const child = spawnSync('/bin/sh', ['-c', script], { env: fleet.env, timeout: 20_000 });
  assert.equal(child.status, 0, child.stderr.toString());
  const summary = records(child.stdout).find((r) => r.type === 'summary')!;
  assert.equal(summary.command, ': \udcff');
  assert.deepEqual(encodeOsBytes(summary.command as string), Buffer.from(': \xff', 'latin1'));
});
