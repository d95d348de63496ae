/**
 * OS byte strings (surrogateescape, PEP 383): every byte sequence survives bytes → string →
 * JSON → string → bytes, and the well-formed UTF-8 text stays plain text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeOsBytes, encodeOsBytes, isOsString, OsBytesError } from '../../src/protocol/os-bytes.js';

test('a Latin-1 name decodes to a lone surrogate per invalid byte and encodes back', () => {
  const latin1 = Buffer.from('caf\xe9.txt', 'latin1');
  const text = decodeOsBytes(latin1);
  assert.equal(text, 'caf\udce9.txt');
  assert.deepEqual(encodeOsBytes(text), latin1);
  assert.equal(JSON.stringify(text), '"caf\\udce9.txt"', 'JSON carries it as an escape');
  assert.deepEqual(encodeOsBytes(JSON.parse(JSON.stringify(text)) as string), latin1);
});

test('valid UTF-8 is plain text; sequences that are not UTF-8 are escaped byte by byte', () => {
  assert.equal(decodeOsBytes(Buffer.from('h\u00e9\u20ac\u{1f480}', 'utf8')), 'h\u00e9\u20ac\u{1f480}');
  // overlong '/', an encoded surrogate, a truncated 3-byte sequence, a stray continuation byte, 0xff
  for (const hex of ['c0af', 'eda080', 'e282', '80', 'ff', 'f4908080']) {
    const bytes = Buffer.from(hex, 'hex');
    const text = decodeOsBytes(bytes);
    assert.equal(text, [...bytes].map((b) => String.fromCharCode(0xdc00 + b)).join(''), hex);
    assert.deepEqual(encodeOsBytes(text), bytes, hex);
  }
});

test('a string with an unpaired surrogate outside U+DC80..U+DCFF names no bytes', () => {
  for (const text of ['a\ud800', '\udc00', '\udd00x', '\ud83d']) {
    assert.equal(isOsString(text), false);
    assert.throws(() => encodeOsBytes(text), (err: OsBytesError) => err instanceof OsBytesError && err.index >= 0);
  }
  assert.equal(isOsString('\u{1f480}'), true, 'a proper pair whose low half is in DC80..DCFF is plain UTF-16');
  assert.deepEqual(encodeOsBytes('\u{1f480}'), Buffer.from('\u{1f480}', 'utf8'));
});

test('property: any bytes survive decode → JSON → encode', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const text = JSON.parse(JSON.stringify(decodeOsBytes(bytes))) as string;
      assert.deepEqual(encodeOsBytes(text), Buffer.from(bytes));
    }),
    { numRuns: 2000 },
  );
});

test('property: well-formed text encodes as UTF-8 and decodes to itself', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 32 }), (text) => {
      const bytes = encodeOsBytes(text);
      assert.deepEqual(bytes, Buffer.from(text, 'utf8'));
      assert.equal(decodeOsBytes(bytes), text);
    }),
  );
});
