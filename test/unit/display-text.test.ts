import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quoteForDisplay } from '../../src/client/display-text.js';

test('error messages show what a terminal would hide: NBSP, controls, escapes, undecodable bytes', () => {
  assert.equal(quoteForDisplay('ls /etc'), '"ls /etc"');
  assert.equal(quoteForDisplay('ls\u00a0/etc'), '"ls\\u{a0}/etc"');
  assert.equal(quoteForDisplay('a\u200bb\u202ec'), '"a\\u{200b}b\\u{202e}c"');
  assert.equal(quoteForDisplay('x\x1b[31my\n'), '"x\\u{1b}[31my\\n"');
  assert.equal(quoteForDisplay('caf\udce9 "q" \\'), '"caf\\xe9 \\"q\\" \\\\"');
  assert.equal(quoteForDisplay('caf\u00e9 \u{1f480}'), '"caf\u00e9 \u{1f480}"', 'printable text stays as it is');
});
