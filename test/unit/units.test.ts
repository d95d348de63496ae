/**
 * Durations and sizes as typed on the command line and in serve.yaml: every unit, bare
 * numbers in each flag's old unit, compound durations, and random text only ever refused
 * with UnitParseError (never NaN, a negative, or another exception).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDuration, parseSize, UnitParseError, DURATION_UNITS, type DurationUnit } from '../../src/cli/units.js';

test('durations: every unit, bare numbers in the given unit, compounds', () => {
  assert.equal(parseDuration('1.5'), 1500);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1s'), 1000);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('1w'), 604_800_000);
  assert.equal(parseDuration(' 1H30M '), 5_400_000);
  assert.equal(parseDuration('2m 30s'), 150_000);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('.5s'), 500);
  assert.equal(parseDuration('5', 'ms'), 5);
  assert.equal(parseDuration('5', 'm'), 300_000);
});

test('durations: typos and impossible values are refused with the accepted forms', () => {
  for (const bad of ['', ' ', '-1', '-1s', '1x', 's', '1s1h', '1m1m', 'NaN', 'Infinity', '1e3', '0x10', '1,5', '1 2', 'ms']) {
    assert.throws(() => parseDuration(bad), (err: Error) => err instanceof UnitParseError && /500ms, 30s, 2m, 1h, 1d/.test(err.message), bad);
  }
  assert.throws(() => parseDuration('x', 'ms'), /1\.5 \(milliseconds\)/);
});

test('durations: N followed by any unit is N times the unit (property)', () => {
  const units = Object.keys(DURATION_UNITS) as DurationUnit[];
  fc.assert(
    fc.property(fc.nat(1_000_000), fc.constantFrom(...units), fc.constantFrom(...units), (n, unit, bare) => {
      assert.equal(parseDuration(`${n}${unit}`, bare), n * DURATION_UNITS[unit]);
      assert.equal(parseDuration(String(n), bare), n * DURATION_UNITS[bare]);
    }),
  );
});

test('durations and sizes: any text is a finite non-negative number or a UnitParseError (property)', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[0-9.]{0,6}\s?[a-zA-Z/]{0,4}$/)), (text) => {
      for (const parse of [() => parseDuration(text), () => parseSize(text)]) {
        try {
          const value = parse();
          assert.ok(Number.isFinite(value) && value >= 0, `${JSON.stringify(text)} → ${value}`);
        } catch (err) {
          assert.ok(err instanceof UnitParseError, `${JSON.stringify(text)} threw ${String(err)}`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('sizes: suffixes as curl (K = 1024), rsync (KB = 1000) and IEC (KiB) read them', () => {
  assert.equal(parseSize('65536'), 65536);
  assert.equal(parseSize('512K'), 512 * 1024);
  assert.equal(parseSize('512k'), 512 * 1024);
  assert.equal(parseSize('5M'), 5 * 1024 ** 2);
  assert.equal(parseSize('1G'), 1024 ** 3);
  assert.equal(parseSize('10MiB'), 10 * 1024 ** 2);
  assert.equal(parseSize('10MB'), 10_000_000);
  assert.equal(parseSize('1.5K'), 1536);
  assert.equal(parseSize('500KB/s'), 500_000);
  assert.equal(parseSize('2T'), 2 * 1024 ** 4);
  assert.equal(parseSize('512B', 1024), 512);
  assert.equal(parseSize('4', 1024), 4096);
  for (const bad of ['', '-5M', '5X', 'M', '5MM', '1e6', 'Infinity', '5 M B']) {
    assert.throws(() => parseSize(bad), (err: Error) => err instanceof UnitParseError && /512K, 5M, 1G or 10MiB/.test(err.message), bad);
  }
  assert.throws(() => parseSize('99999999999T'), /too large/);
});

test('sizes: N followed by a suffix is N times its power (property)', () => {
  fc.assert(
    fc.property(fc.nat(4000), fc.integer({ min: 0, max: 3 }), (n, power) => {
      const letter = 'KMGT'[power]!;
      assert.equal(parseSize(`${n}${letter}`), n * 1024 ** (power + 1));
      assert.equal(parseSize(`${n}${letter}iB`), n * 1024 ** (power + 1));
      assert.equal(parseSize(`${n}${letter}B`), n * 1000 ** (power + 1));
    }),
  );
});
