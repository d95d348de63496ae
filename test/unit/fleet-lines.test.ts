/**
 * Fleet output as bytes: the line splitter and the JSON Lines records, for any bytes and any
 * chunking (fast-check), plus the reported inputs as fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { LineSplitter, HostLines, MAX_LINE_BYTES, characterBoundary, type Line } from '../../src/fleet/line-splitter.js';
import { JsonLines, fieldBytes } from '../../src/fleet/json-lines.js';
import type { HostResult } from '../../src/fleet/results.js';
import { OutputBuffer } from '../../src/fleet/run-on.js';
import { validate, JSON_LINE_SCHEMA } from '../integration/fleet-helpers.js';

/** Bytes rich in what breaks splitters: newlines, CR, multi-byte characters, invalid bytes. */
const piece = fc.oneof(
  fc.constantFrom('\n', '\r', '\r\n', 'a', 'é', '€', '𝄞', '\n\n').map((t) => Buffer.from(t)),
  fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => Buffer.from(b)),
  fc.constantFrom(Buffer.of(0xc3), Buffer.of(0xe2, 0x82), Buffer.of(0xf0, 0x9d, 0x84), Buffer.of(0xff), Buffer.of(0x80)),
);
const outputBytes = fc.array(piece, { maxLength: 60 }).map((parts) => Buffer.concat(parts));
const utf8Bytes = fc.string({ unit: 'grapheme', maxLength: 80 }).map((s) => Buffer.from(s));

/** Cut `bytes` into chunks at the given offsets (any chunking). */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const o of [...offsets, bytes.length]) {
    chunks.push(bytes.subarray(at, o));
    at = o;
  }
  return chunks;
}

function splitAll(chunks: Buffer[], maxLine: number): Line[] {
  const splitter = new LineSplitter(maxLine);
  return [...chunks.flatMap((c) => splitter.push(c)), ...splitter.end()];
}

const rejoin = (lines: Line[]) => Buffer.concat(lines.flatMap((l) => (l.end === 'newline' ? [l.bytes, Buffer.of(0x0a)] : [l.bytes])));

test('LineSplitter: for any bytes and any chunking the lines give back the input, bounded, the same lines whatever the chunking', () => {
  fc.assert(
    fc.property(outputBytes, fc.array(fc.nat(), { maxLength: 30 }), fc.integer({ min: 4, max: 24 }), (bytes, cuts, maxLine) => {
      const lines = splitAll(chunked(bytes, cuts), maxLine);
      assert.deepEqual(rejoin(lines), bytes);
      assert.deepEqual(lines, splitAll([bytes], maxLine), 'the chunking does not change the lines');
      lines.forEach((l, i) => {
        assert.ok(l.bytes.length <= maxLine, 'no line or piece is longer than maxLine');
        assert.ok(!l.bytes.includes(0x0a));
        if (l.end === 'eof') assert.equal(i, lines.length - 1, 'only the last line can lack its newline');
        if (l.end === 'continued') assert.ok(i < lines.length - 1, 'a continued piece is followed by the rest');
        if (l.end !== 'newline') assert.ok(l.bytes.length > 0);
      });
    }),
    { numRuns: 500 },
  );
});

test('LineSplitter: UTF-8 input is never cut inside a character, even in the pieces of an over-long line', () => {
  fc.assert(
    fc.property(utf8Bytes, fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 4, max: 12 }), (bytes, cuts, maxLine) => {
      for (const l of splitAll(chunked(bytes, cuts), maxLine)) assert.ok(isUtf8(l.bytes), l.bytes.toString('hex'));
    }),
    { numRuns: 500 },
  );
});

test('LineSplitter: the reported inputs', () => {
  // printf 'abc\303': the incomplete character is the unterminated last line, kept as a byte.
  assert.deepEqual(splitAll([Buffer.from('abc\xc3', 'latin1')], MAX_LINE_BYTES), [{ bytes: Buffer.from('abc\xc3', 'latin1'), end: 'eof' }]);
  // A 421,083-byte line in 64 KiB chunks is one line.
  const long = Buffer.concat([Buffer.alloc(421_082, 'x'), Buffer.from('\n')]);
  const chunks = Array.from({ length: Math.ceil(long.length / 65_536) }, (_, i) => long.subarray(i * 65_536, (i + 1) * 65_536));
  assert.deepEqual(splitAll(chunks, MAX_LINE_BYTES).map((l) => [l.bytes.length, l.end]), [[421_082, 'newline']]);
  // 150,000 "€" cut every 64 KiB (inside characters): one line, intact.
  const euro = Buffer.from(`${'€'.repeat(150_000)}\n`);
  const euroChunks = Array.from({ length: Math.ceil(euro.length / 65_536) }, (_, i) => euro.subarray(i * 65_536, (i + 1) * 65_536));
  const lines = splitAll(euroChunks, MAX_LINE_BYTES);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.bytes.toString(), '€'.repeat(150_000));
  // Longer than the limit: pieces of whole characters, marked.
  const big = splitAll([Buffer.from('€'.repeat(700_000))], MAX_LINE_BYTES);
  assert.deepEqual(big.map((l) => l.end), ['continued', 'continued', 'eof']);
  assert.ok(big.every((l) => isUtf8(l.bytes) && l.bytes.length <= MAX_LINE_BYTES));
});

test('LineSplitter: memory stays bounded by maxLine however long the line', () => {
  const splitter = new LineSplitter(1024);
  let pieces = 0;
  for (let i = 0; i < 1000; i++) {
    pieces += splitter.push(Buffer.alloc(100, 'y')).length;
    assert.ok(splitter.pendingBytes <= 1024);
  }
  assert.equal(pieces, Math.floor(100_000 / 1024));
});

test('characterBoundary: backs up over a split character only', () => {
  const euro = Buffer.from('a€b'); // 61 e2 82 ac 62
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((at) => characterBoundary(euro, at)), [0, 1, 1, 1, 4, 5]);
  const stray = Buffer.from([0x61, 0x80, 0x80, 0x80, 0x80, 0x62]);
  assert.equal(characterBoundary(stray, 4), 4, 'continuation bytes without a lead byte are cut where asked');
});

function resultFor(host: string, stdoutBytes: Buffer, stderrBytes: Buffer): HostResult {
  return {
    host, address: `${host}:1`, status: 'ok', exitCode: 0, signal: null, durationMs: 1, stdout: stdoutBytes.toString(), stderr: stderrBytes.toString(),
    stdoutBytes, stderrBytes, truncated: false, error: null, batch: 0,
  };
}

test('JsonLines: for any output of several hosts, interleaved in any chunking, the records validate and decode to exactly the bytes', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(outputBytes, outputBytes), { minLength: 1, maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.integer({ min: 4, max: 16 }),
      (outputs, cuts, maxLine) => {
        const json = new JsonLines(maxLine);
        const queues = outputs.flatMap(([out, err], h) => [
          { host: `h${h}`, stream: 'stdout' as const, chunks: chunked(out, cuts) },
          { host: `h${h}`, stream: 'stderr' as const, chunks: chunked(err, cuts.map((c) => c * 7)) },
        ]);
        let text = '';
        for (let turn = 0; queues.some((q) => q.chunks.length > 0); turn++) {
          const open = queues.filter((q) => q.chunks.length > 0);
          const q = open[(cuts[turn % Math.max(1, cuts.length)] ?? 0) % open.length]!;
          text += json.records({ type: 'output', host: q.host, stream: q.stream, data: q.chunks.shift()! });
        }
        outputs.forEach(([out, err], h) => (text += json.records({ type: 'result', host: `h${h}`, result: resultFor(`h${h}`, out, err) })));
        const records = text.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
        for (const r of records) assert.equal(validate(r, JSON_LINE_SCHEMA), null, JSON.stringify(r));
        outputs.forEach(([out, err], h) => {
          for (const [stream, bytes] of [['stdout', out], ['stderr', err]] as const) {
            const mine = records.filter((r) => r.type === 'output' && r.host === `h${h}` && r.stream === stream);
            assert.deepEqual(Buffer.concat(mine.map((r) => fieldBytes(r, 'data')!)), bytes);
            for (const r of mine) if (isUtf8(fieldBytes(r, 'data')!)) assert.equal(typeof r.data, 'string', 'UTF-8 goes out as text');
          }
          const result = records.find((r) => r.type === 'result' && r.host === `h${h}`)!;
          assert.deepEqual(fieldBytes(result, 'stdout'), out);
          assert.deepEqual(fieldBytes(result, 'stderr'), err);
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('JsonLines: the reported input, and the record shapes', () => {
  const json = new JsonLines();
  const text = json.records({ type: 'output', host: 'h', stream: 'stdout', data: Buffer.from('x\nabc\xc3', 'latin1') });
  assert.equal(text, '{"type":"output","host":"h","stream":"stdout","data":"x\\n"}\n');
  const end = json.records({ type: 'result', host: 'h', result: resultFor('h', Buffer.from('x\nabc\xc3', 'latin1'), Buffer.from('ok')) });
  const [tail, result] = end.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(tail, { type: 'output', host: 'h', stream: 'stdout', dataBase64: Buffer.from('abc\xc3', 'latin1').toString('base64') });
  assert.equal(result!.stdout, undefined);
  assert.equal(result!.stdoutBase64, Buffer.from('x\nabc\xc3', 'latin1').toString('base64'));
  assert.equal(result!.stderr, 'ok');
  assert.ok(!('stdoutBytes' in result!));
  const partial = new JsonLines(4).records({ type: 'output', host: 'h', stream: 'stderr', data: Buffer.from('€€\n') });
  assert.equal(partial, '{"type":"output","host":"h","stream":"stderr","data":"€","partial":true}\n{"type":"output","host":"h","stream":"stderr","data":"€\\n"}\n');
});

test('HostLines: output that arrives after its host\'s result is flushed at the summary', () => {
  const lines = new HostLines();
  lines.push('a', 'stdout', Buffer.from('x'));
  assert.deepEqual(lines.end('a').map((l) => [l.stream, l.line.bytes.toString(), l.line.end]), [['stdout', 'x', 'eof']]);
  lines.push('a', 'stderr', Buffer.from('late'));
  lines.push('b', 'stdout', Buffer.from('y\nz'));
  assert.deepEqual(lines.endAll().map((l) => `${l.host}:${l.stream}:${l.line.bytes}`), ['a:stderr:late', 'b:stdout:z']);
  assert.deepEqual(lines.endAll(), []);
});

test('OutputBuffer: a truncated result keeps an exact prefix that does not end inside a character', () => {
  fc.assert(
    fc.property(utf8Bytes, fc.array(fc.nat(), { maxLength: 10 }), fc.nat({ max: 40 }), (bytes, cuts, max) => {
      const buffer = new OutputBuffer(max);
      for (const c of chunked(bytes, cuts)) buffer.add(c);
      const kept = buffer.bytes();
      assert.ok(kept.length <= max && bytes.subarray(0, kept.length).equals(kept), 'an exact prefix');
      assert.equal(buffer.truncated, kept.length < bytes.length);
      assert.ok(isUtf8(kept), 'UTF-8 stays UTF-8');
      assert.ok(kept.length >= Math.min(bytes.length, max) - 3, 'at most one character is dropped at the cut');
    }),
    { numRuns: 500 },
  );
});
