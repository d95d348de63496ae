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

test('escapeControls and the audit table\'s printable: bidi controls and C0/C1 escaped visibly (issue 14 review 3)', async () => {
  const { escapeControls } = await import('../../src/client/display-text.js');
  const { printable } = await import('../../src/audit/audit-text.js');
  const { forTerminal } = await import('../../src/cli/os-text.js');
  const bidi = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c'];
  for (const c of bidi) {
    const code = c.codePointAt(0)!.toString(16);
    assert.equal(escapeControls(`a${c}b`), `a\\u{${code}}b`);
    assert.equal(printable(`a${c}b`), `a\\u{${code}}b`);
    assert.equal(forTerminal(`a${c}b`), 'a?b');
  }
  assert.equal(escapeControls('path=/tmp/new\nline-\u202e.txt bytes=4\x1b[2J\x9b\r'), 'path=/tmp/new\nline-\\u{202e}.txt bytes=4\\x1b[2J\\x9b\\r', 'newlines stay in a message');
  assert.equal(printable('path=/tmp/new\nline-\u202e.txt\tbytes=4'), 'path=/tmp/new\\nline-\\u{202e}.txt\\tbytes=4', 'one line in a table cell');
  assert.equal(escapeControls('caf\udce9'), 'caf\\xe9', 'a byte that is not UTF-8');
  assert.equal(escapeControls('caf\u00e9 \u05e9\u05dc\u05d5\u05dd \u{1f480}'), 'caf\u00e9 \u05e9\u05dc\u05d5\u05dd \u{1f480}', 'letters (Hebrew too) stay');
});
