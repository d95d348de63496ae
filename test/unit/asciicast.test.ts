/**
 * asciicast v2 as written and read: the streaming decoder keeps characters whole across any
 * chunking, every line is JSON, times never go back, and the playback schedule (speed,
 * idle limit) is checked as logic, not with a clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { castEventLine, castHeaderLine, castSeconds, parseCast, playbackSchedule, StreamText, type ParsedCast } from '../../src/audit/asciicast.js';

/** Split `bytes` at `cuts` (any offsets, any order, duplicates allowed). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  return out;
}

/** Bytes that are mostly UTF-8 (with 2-, 3- and 4-byte characters) and sometimes not. */
const terminalBytes = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 32 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
  fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }).map((s) => Buffer.from(s, 'utf8')), fc.uint8Array({ maxLength: 3 }).map((b) => Buffer.from(b))), { maxLength: 12 })
    .map((parts) => new Uint8Array(Buffer.concat(parts))),
);

test('any chunking of any bytes decodes to the same text as decoding them whole', () => {
  fc.assert(fc.property(terminalBytes, fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
    const whole = new StreamText();
    const expected = whole.push(bytes) + whole.end();
    const streamed = new StreamText();
    const got = chunk(bytes, cuts).map((c) => streamed.push(c)).join('') + streamed.end();
    assert.equal(got, expected);
    // Valid UTF-8 comes out exactly; U+FFFD appears only where the input was not UTF-8.
    const valid = Buffer.from(bytes).toString('utf8');
    if (!valid.includes('\uFFFD')) assert.equal(got, valid);
  }), { numRuns: 2000 });
});

test('a character split byte by byte stays whole; only truly invalid bytes become U+FFFD', () => {
  const euro = Buffer.from('€🎉', 'utf8'); // 3 + 4 bytes
  const text = new StreamText();
  const pieces = [...euro].map((b) => text.push(Buffer.of(b)));
  assert.deepEqual(pieces.filter((p) => p !== ''), ['€', '🎉']);
  assert.equal(text.end(), '');
  const bad = new StreamText();
  assert.equal(bad.push(Buffer.from([0x61, 0xff, 0x62])) + bad.end(), 'a\uFFFDb');
  const cut = new StreamText();
  assert.equal(cut.push(Buffer.from([0x61, 0xe2, 0x82])), 'a', 'a partial character waits');
  assert.equal(cut.end(), '\uFFFD', 'and becomes U+FFFD only at the end');
  const bom = new StreamText();
  assert.equal(bom.push(Buffer.from([0xef, 0xbb, 0xbf, 0x41])), '\uFEFFA', 'a BOM is output, kept');
});

test('a written recording parses line by line as JSON, with non-decreasing microsecond times', () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.double({ min: 0, max: 1e7, noNaN: true }), fc.constantFrom('o', 'i', 'r'), fc.string({ unit: 'binary', maxLength: 20 })), { maxLength: 30 }),
    (events) => {
      let clock = 0;
      let text = castHeaderLine({ version: 2, width: 80, height: 24, timestamp: 1_700_000_000, env: { TERM: 'xterm' }, title: 'a@b' });
      for (const [step, code, data] of events) {
        clock += step;
        text += castEventLine(castSeconds(clock), code as 'o', data);
      }
      const lines = text.split('\n');
      assert.equal(lines.pop(), '');
      for (const line of lines) JSON.parse(line);
      const parsed = parseCast(text);
      assert.equal(parsed.events.length, events.length);
      for (let i = 1; i < parsed.events.length; i++) assert.ok(parsed.events[i]![0] >= parsed.events[i - 1]![0]);
      for (const [seconds] of parsed.events) assert.equal(Math.round(seconds * 1e6) / 1e6, seconds, 'at most 6 decimals');
      assert.deepEqual(parsed.events.map((e) => e[2]), events.map((e) => e[2]));
    },
  ));
});

test('castSeconds rounds to the microsecond, never below zero', () => {
  assert.equal(castSeconds(1234.5678), 1.234568);
  assert.equal(castSeconds(-5), 0);
  assert.equal(castEventLine(castSeconds(1500), 'o', '\x1b[31mred\r\n'), '[1.5,"o","\\u001b[31mred\\r\\n"]\n');
});

test('parseCast names the line that is not asciicast', () => {
  assert.throws(() => parseCast('{"version":1}\n'), /line 1/);
  assert.throws(() => parseCast('{"version":2,"width":1,"height":1}\n[1,"o","x"]\nnope\n'), /line 3: not JSON/);
  assert.throws(() => parseCast('{"version":2,"width":1,"height":1}\n[1,"o"]\n'), /line 2/);
  // asciinema 2.2+ markers ("m") are skipped, not fatal.
  assert.deepEqual(parseCast('{"version":2,"width":1,"height":1}\n[1,"m",""]\n[2,"o","x"]\n').events, [[2, 'o', 'x']]);
});

const cast = (times: number[], idle?: number): ParsedCast => ({
  header: { version: 2, width: 80, height: 24, timestamp: 0, ...(idle === undefined ? {} : { idle_time_limit: idle }) },
  events: times.map((t) => [t, 'o', 'x']),
});

test('playback schedule: gaps scaled by speed, capped by the idle limit, never negative', () => {
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5])).map((s) => s.delayMs), [500, 1000, 10_000]);
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5]), { speed: 2 }).map((s) => s.delayMs), [250, 500, 5000]);
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5]), { idleLimit: 2 }).map((s) => s.delayMs), [500, 1000, 2000]);
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5]), { idleLimit: 2, speed: 4 }).map((s) => s.delayMs), [125, 250, 500]);
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5], 1)).map((s) => s.delayMs), [500, 1000, 1000], 'the header\'s idle_time_limit');
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5], 1), { idleLimit: 3 }).map((s) => s.delayMs), [500, 1000, 3000], 'the flag wins over the header');
  assert.deepEqual(playbackSchedule(cast([0.5, 1.5, 11.5]), { speed: 0 }).map((s) => s.delayMs), [0, 0, 0], '--speed 0 prints at once');
  assert.deepEqual(playbackSchedule(cast([5, 3, 4])).map((s) => s.delayMs), [5000, 0, 0], 'an out-of-order file does not go back in time');
});

test('playback schedule: the total never exceeds the recording length / speed', () => {
  fc.assert(fc.property(
    fc.array(fc.double({ min: 0, max: 1e5, noNaN: true }), { maxLength: 20 }),
    fc.double({ min: 0.1, max: 100, noNaN: true }),
    fc.option(fc.double({ min: 0.01, max: 100, noNaN: true }), { nil: undefined }),
    (times, speed, idleLimit) => {
      const steps = playbackSchedule(cast(times), { speed, ...(idleLimit === undefined ? {} : { idleLimit }) });
      const total = steps.reduce((sum, s) => sum + s.delayMs, 0);
      const length = Math.max(0, ...times);
      assert.ok(total <= (length * 1000) / speed + 1e-6);
      for (const s of steps) {
        assert.ok(s.delayMs >= 0);
        if (idleLimit !== undefined) assert.ok(s.delayMs <= (idleLimit * 1000) / speed + 1e-6);
      }
    },
  ));
});
