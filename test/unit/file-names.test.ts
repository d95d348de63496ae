/**
 * How `shellwire ls` shows names that are not UTF-8 (issue 9 item 1): lossless in JSON
 * (a `\udcXX` escape plus base64 bytes), `?` on a terminal for bytes and control characters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forTerminal, jsonEntry } from '../../src/cli/files.js';
import { decodeOsBytes, encodeOsBytes } from '../../src/protocol/os-bytes.js';

const latin1 = decodeOsBytes(Buffer.from('caf\xe9.txt', 'latin1'));

test('ls --json: a name that is not UTF-8 is a \\udcXX escape and its bytes in nameBase64', () => {
  const row = jsonEntry({ name: latin1, type: 'symlink', size: 1, mode: 0o777, mtimeMs: 0, target: latin1 });
  const text = JSON.stringify(row);
  assert.ok(text.includes('"name":"caf\\udce9.txt"'), text);
  assert.equal(row.nameBase64, Buffer.from('caf\xe9.txt', 'latin1').toString('base64'));
  assert.equal(row.targetBase64, row.nameBase64);
  // Read back: the escape gives the same string, hence the same bytes.
  const back = JSON.parse(text) as { name: string };
  assert.deepEqual(encodeOsBytes(back.name), Buffer.from('caf\xe9.txt', 'latin1'));
  const utf8 = jsonEntry({ name: 'café.txt', type: 'file', size: 1, mode: 0o644, mtimeMs: 0 });
  assert.equal(utf8.nameBase64, undefined);
  assert.equal(utf8.targetBase64, undefined);
});

test('ls on a terminal: bytes that are not UTF-8 and control characters show as ?', () => {
  assert.equal(forTerminal(latin1), 'caf?.txt');
  assert.equal(forTerminal('evil\x1b]0;title\x07name'), 'evil?]0;title?name');
  assert.equal(forTerminal('café ✓'), 'café ✓');
});
