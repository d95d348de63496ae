/** Output shaping: whole lines per host whatever the chunking, grouping, JSON Lines, discovery codec. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatGrouped, formatSummary, groupResults, prefixLine } from '../../src/fleet/format.js';
import { JsonLines } from '../../src/fleet/json-lines.js';
import { truncateColumns, textColumns } from '../../src/fleet/columns.js';
import { StatusLine } from '../../src/fleet/status-line.js';
import type { FleetSummary, HostResult } from '../../src/fleet/results.js';
import { ErrorCode, UsageError } from '../../src/errors.js';
import { TokenBucket, encodeProbe, parseProbe, expandSubnet, PROBE_SIZE } from '../../src/fleet/discovery.js';
import { validate, JSON_LINE_SCHEMA } from '../integration/fleet-helpers.js';

function result(host: string, extra: Partial<HostResult> = {}): HostResult {
  const r: HostResult = { host, address: `${host}:1`, status: 'ok', exitCode: 0, signal: null, durationMs: 5, stdout: '', stderr: '', stdoutBytes: Buffer.alloc(0), stderrBytes: Buffer.alloc(0), truncated: false, error: null, batch: 0, ...extra };
  // Tests give text; the bytes are what counts.
  if (extra.stdout !== undefined && extra.stdoutBytes === undefined) r.stdoutBytes = Buffer.from(extra.stdout);
  if (extra.stderr !== undefined && extra.stderrBytes === undefined) r.stderrBytes = Buffer.from(extra.stderr);
  return r;
}

function summaryOf(results: HostResult[]): FleetSummary {
  return { command: 'x', total: results.length, ok: results.filter((r) => r.status === 'ok').length, failed: 0, unreachable: 0, canceled: 0, skipped: 0, durationMs: 420, success: false, stoppedBy: null, results };
}

test('grouping: identical output once, folded names and counts; failures last with exit codes', () => {
  const results = [
    ...['web01', 'web02', 'web03'].map((h) => result(h, { stdout: 'up 3 days\n' })),
    result('web04', { status: 'failed', exitCode: 3, stdout: 'boom\n' }),
    result('db03', { stdout: 'up 3 days\n' }),
    result('web05', { status: 'failed', exitCode: 3, stdout: 'boom\n' }),
    result('web06', { stdout: 'two\nlines\n', stderr: 'warn\n' }),
    result('db09', { status: 'unreachable', exitCode: null, error: { code: 'SW_ERR_CONNECT_FAILED', message: 'Connection refused by db09:1' } }),
  ];
  assert.equal(groupResults(results).length, 3);
  const text = formatGrouped(summaryOf(results), { color: false }).toString();
  assert.equal(
    text,
    'web[01-03],db03 (4): up 3 days\n' +
      'web06 (1):\n  two\n  lines\n  ! warn\n' +
      'web[04-05] (2): exit 3\n  boom\n' +
      'db09: unreachable: Connection refused by db09:1\n',
  );
  assert.equal(formatSummary(summaryOf(results), { color: false }), 'shellwire: 5/8 ok, 2 failed (web[04-05]), 1 unreachable (db09), 0.42 s\n');
});

test('JSON Lines: UTF-8 split across chunks stays whole; other bytes go out as base64; lines match the schema', () => {
  const json = new JsonLines();
  const euro = Buffer.from('€\n');
  const a = json.records({ type: 'output', host: 'h', stream: 'stdout', data: euro.subarray(0, 1) });
  const b = json.records({ type: 'output', host: 'h', stream: 'stdout', data: euro.subarray(1) });
  assert.equal(a, '');
  assert.deepEqual(JSON.parse(b), { type: 'output', host: 'h', stream: 'stdout', data: '€\n' });
  const bin = JSON.parse(json.records({ type: 'output', host: 'g', stream: 'stderr', data: Buffer.from([0xff, 0xfe, 0x0a]) }));
  assert.equal(bin.data, undefined);
  assert.equal(Buffer.from(bin.dataBase64, 'base64').toString('hex'), 'fffe0a');
  const r = JSON.parse(json.records({ type: 'result', host: 'h', result: result('h') }));
  const s = JSON.parse(json.records({ type: 'summary', summary: summaryOf([result('h')]) }));
  for (const line of [JSON.parse(b), bin, r, s]) assert.equal(validate(line, JSON_LINE_SCHEMA), null, JSON.stringify(line));
  assert.notEqual(validate({ ...r, exitCode: 'zero' }, JSON_LINE_SCHEMA), null, 'the validator rejects a bad line');
  assert.notEqual(validate({ ...r, stdoutBase64: '' }, JSON_LINE_SCHEMA), null, 'text and base64 forms together are refused');
  assert.notEqual(validate({ ...bin, partial: false }, JSON_LINE_SCHEMA), null, 'partial is only ever true');
});

test('grouping compares bytes: different invalid bytes are different groups, printed raw', () => {
  const results = [
    result('a1', { stdout: '\ufffd\n', stdoutBytes: Buffer.of(0xff, 0x0a) }),
    result('a2', { stdout: '\ufffd\n', stdoutBytes: Buffer.of(0xff, 0x0a) }),
    result('b1', { stdout: '\ufffd\n', stdoutBytes: Buffer.of(0xfe, 0x0a) }),
  ];
  assert.equal(groupResults(results).length, 2);
  assert.deepEqual(formatGrouped(summaryOf(results), { color: false }), Buffer.concat([Buffer.from('a[1-2] (2): '), Buffer.of(0xff, 0x0a), Buffer.from('b1 (1): '), Buffer.of(0xfe, 0x0a)]));
});

test('grouping: a carriage return in the output never overwrites the host names', () => {
  const text = formatGrouped(summaryOf([result('a1', { stdout: '10%\r100%\n' }), result('b1', { status: 'failed', exitCode: 1, stdout: 'x\ry\n', stderr: 'e\rf' })]), { color: false });
  assert.equal(text.toString(), 'a1 (1):\n  10%\r  100%\nb1 (1): exit 1\n  x\r  y\n  ! e\r  ! f\n');
});

test('--stream records: the host prefix, the mark for continued pieces, the prefix again after a carriage return', () => {
  const line = (bytes: string, end: 'newline' | 'eof' | 'continued') => ({ bytes: Buffer.from(bytes, 'latin1'), end });
  assert.equal(prefixLine('web01', 'stdout', line('ok', 'newline'), 6, { color: false }).toString(), 'web01  | ok\n');
  assert.equal(prefixLine('web01', 'stderr', line('ok', 'eof'), 5, { color: false }).toString(), 'web01 ! ok\n');
  assert.equal(prefixLine('w', 'stdout', line('abc', 'continued'), 1, { color: false }).toString(), 'w |+ abc\n');
  assert.equal(prefixLine('w', 'stdout', line('a\rb\r', 'newline'), 1, { color: false }).toString(), 'w | a\rw | b\r\n');
  assert.deepEqual(prefixLine('w', 'stdout', line('\xff\xc3', 'newline'), 1, { color: false }), Buffer.from('w | \xff\xc3\n', 'latin1'));
});

test('grouped and --stream output of a million lines or carriage returns: no call-stack limit is hit', () => {
  const lines = Buffer.from('x\n'.repeat(1_000_000));
  const grouped = formatGrouped(summaryOf([result('a', { stdoutBytes: lines, stderrBytes: Buffer.from('e\n') })]), { color: false });
  assert.equal(grouped.length, 'a (1):\n'.length + 4 * 1_000_000 + '  ! e\n'.length);
  const returns = Buffer.from('\r'.repeat(1_000_000));
  const record = prefixLine('w', 'stdout', { bytes: returns, end: 'newline' }, 1, { color: false });
  assert.equal(record.length, 'w | '.length + 1_000_000 + (1_000_000 - 1) * 'w | '.length + 1);
});

test('truncateColumns: never splits a character, a surrogate pair or a colour escape; counts wide characters as two', () => {
  assert.equal(truncateColumns('abcdef', 4), 'abc…');
  assert.equal(truncateColumns('abcd', 4), 'abcd');
  assert.equal(truncateColumns('ab😀cd', 4), 'ab…', 'the emoji takes two columns and is not halved');
  assert.equal(truncateColumns('e\u0301e\u0301e\u0301', 2), 'e\u0301…', 'combining marks stay with their letter');
  assert.equal(truncateColumns('漢字漢字', 5), '漢字…');
  assert.equal(truncateColumns('1 | \x1b[31m2 failed\x1b[0m | 3', 8), '1 | \x1b[31m2 f\x1b[0m…');
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.integer({ min: 1, max: 20 }), (text, max) => {
      const cut = truncateColumns(text, max);
      assert.ok(textColumns(cut) <= max);
      assert.ok(cut === text || text.startsWith(cut.slice(0, -1)));
      assert.doesNotMatch(cut, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/, 'no lone surrogate');
    }),
  );
});

test('status line: on a narrow terminal it is cut between characters, and a colour escape is closed', () => {
  const run = {
    counts: () => ({ total: 9, ok: 1, failed: 2, running: 3, queued: 3 }),
    running: () => [{ host: 'ħost-😀😀😀😀', phase: 'running' as const, elapsedMs: 4_100 }],
  };
  for (let columns = 10; columns <= 80; columns++) {
    const writes: string[] = [];
    const stream = { columns, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const status = new StatusLine(run, { color: true }, stream);
    status.start();
    status.render();
    status.stop();
    assert.ok(writes[0]!.startsWith('\r\x1b[K'));
    const shown = writes[0]!.slice(4);
    assert.ok(textColumns(shown) <= columns - 1, `${columns}: ${JSON.stringify(shown)}`);
    assert.doesNotMatch(shown, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/, `${columns}: a lone surrogate`);
    if (shown.includes('\x1b[31m')) assert.ok(shown.lastIndexOf('\x1b[31m') < shown.lastIndexOf('\x1b[0m'), `${columns}: the colour is reset: ${JSON.stringify(shown)}`);
  }
});

test('discovery codec: only the exact padded probe is understood', () => {
  const probe = encodeProbe('0123456789abcdef');
  assert.equal(probe.length, PROBE_SIZE);
  assert.equal(parseProbe(probe), '0123456789abcdef');
  assert.equal(parseProbe(probe.subarray(0, 100)), null, 'short probes would allow amplification');
  assert.equal(parseProbe(Buffer.concat([Buffer.from('exec rm -rf /\n'), Buffer.alloc(600)])), null);
  const bad = Buffer.from(probe);
  bad.write('Z', 12);
  assert.equal(parseProbe(bad), null);
});

test('token bucket: burst, then the rate', () => {
  const bucket = new TokenBucket(10, 3, 0);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false]);
  assert.equal(bucket.take(50), false);
  assert.equal(bucket.take(100), true);
});

test('subnets expand to host addresses', () => {
  assert.deepEqual(expandSubnet('127.0.0.0/30'), ['127.0.0.1', '127.0.0.2']);
  assert.equal(expandSubnet('127.0.0.0/24').length, 254);
  assert.throws(() => expandSubnet('10.0.0.0/8'), /too large/);
  assert.throws(() => expandSubnet('nope'), /not an IPv4 subnet/);
  // A typed error with a stable code, like every other bad target.
  assert.throws(() => expandSubnet('10.0.0.0/8'), (err: unknown) => err instanceof UsageError && err.code === ErrorCode.BAD_TARGET);
  assert.throws(() => expandSubnet('300.0.0.0/24'), (err: unknown) => err instanceof UsageError && err.code === ErrorCode.BAD_TARGET);
});

test('our labels escape what a host sent: bidi overrides and controls in names and errors (issue 14 review 3); output bytes stay', async () => {
  const { formatTransfers } = await import('../../src/fleet/format.js');
  const evil = 'Cannot write to /tmp/new\nweb09 (1): ok-\u202e.txt\x1b[2J: no such directory';
  const results = [
    result('web01', { status: 'error', exitCode: null, error: { code: 'SW_ERR_BAD_REQUEST', message: evil } }),
    result('web02', { stdout: 'raw \u202e output\n' }),
  ];
  const grouped = formatGrouped(summaryOf(results), { color: false }).toString();
  assert.ok(grouped.includes('web01: error: Cannot write to /tmp/new\\nweb09 (1): ok-\\u{202e}.txt\\x1b[2J: no such directory\n'), grouped);
  assert.ok(grouped.includes('web02 (1): raw \u202e output'), 'the command\'s own output is bytes, as it came');
  const put = formatTransfers(summaryOf([{ ...results[0]!, status: 'unreachable' }]), { color: false });
  assert.equal(put, 'web01: unreachable: Cannot write to /tmp/new\\nweb09 (1): ok-\\u{202e}.txt\\x1b[2J: no such directory\n');
  const line = prefixLine('web\u202e01', 'stderr', { bytes: Buffer.from('x'), end: 'newline' }, 8, { color: false }).toString();
  assert.equal(line, 'web\\u{202e}01 ! x\n');
});
