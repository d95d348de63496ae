// docs/protocol.md §4: control payloads are UTF-8 JSON with no repeated key in one object.
// Invalid UTF-8 is refused, never replaced with U+FFFD; a repeated key is refused, never
// "last one wins" (a parser differential: a filtering proxy would see another command).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { duplicateKey, parseJsonObject, parseWireJson } from '../../src/protocol/fields.js';
import { decodeOpen, decodeHello, decodeExit } from '../../src/protocol/messages.js';
import { decodeFileEntry } from '../../src/protocol/file-messages.js';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

const isBadMessage = (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.BAD_MESSAGE;
const open = (body: string) => Buffer.concat([Buffer.from('{"kind":"exec","window":65536,"maxPacket":16384,"command":"printf %s caf'), Buffer.from(body, 'latin1'), Buffer.from('"}')]);

test('invalid UTF-8 in a control payload is SW_ERR_BAD_MESSAGE, never U+FFFD', () => {
  for (const bytes of ['\xe9', '\xc0\xaf', '\xed\xa0\x80', '\xf8\x88\x80\x80\x80', '\xff', '\xe2\x82']) {
    assert.throws(() => decodeOpen(open(bytes)), (err) => isBadMessage(err) && /not valid UTF-8/.test((err as Error).message), JSON.stringify(bytes));
  }
  // Valid UTF-8 and the \udcXX escapes of OS bytes pass.
  assert.equal((decodeOpen(open('\xc3\xa9')) as { params: { command: string } }).params.command, 'printf %s café');
  assert.equal((decodeOpen(open('\\udce9')) as { params: { command: string } }).params.command, 'printf %s caf\udce9');
  assert.throws(() => decodeExit(Buffer.from('{"exitCode":0,"signal":null,"x":"\xe9"}', 'latin1')), isBadMessage);
  assert.throws(() => decodeHello(Buffer.from('{"magic":"\xe9"}', 'latin1')), isBadMessage);
  assert.throws(() => decodeFileEntry(Buffer.from('{"name":"\xe9","type":"file","size":0,"mode":0,"mtimeMs":0}', 'latin1')), isBadMessage);
  // A BOM is not JSON.
  assert.throws(() => parseJsonObject(FrameType.OPEN, Buffer.from('\ufeff{}')), isBadMessage);
});

test('a repeated key in one object, at any depth, is SW_ERR_BAD_MESSAGE', () => {
  const body = '{"kind":"exec","window":65536,"maxPacket":16384,"command":"echo first","command":"echo second"}';
  assert.throws(() => decodeOpen(Buffer.from(body)), (err) => isBadMessage(err) && /"command" appears twice/.test((err as Error).message));
  assert.throws(() => parseJsonObject(FrameType.OPEN, Buffer.from('{"env":{"A":"1","\\u0041":"2"}}')), isBadMessage);
  assert.throws(() => parseJsonObject(FrameType.OPEN, Buffer.from('{"a":[{"b":1},{"c":{"d":1,"d":2}}]}')), isBadMessage);
  assert.throws(() => decodeFileEntry('{"name":"a","name":"b","type":"file","size":0,"mode":0,"mtimeMs":0}'), isBadMessage);
  // The same key in sibling objects, as a value, or inside a string is no repeat.
  assert.deepEqual(parseJsonObject(FrameType.OPEN, Buffer.from('{"a":[{"k":1},{"k":2}],"b":"a","c":"\\"a\\":1,\\"a\\":2","k":{"k":{"k":0}}}')), { a: [{ k: 1 }, { k: 2 }], b: 'a', c: '"a":1,"a":2', k: { k: { k: 0 } } });
});

// Object text with `key` repeated in one object somewhere inside `value`.
const jsonValue = fc.jsonValue({ maxDepth: 4 });
test('property: JSON.stringify output is accepted; any object text with a repeated key at any depth is refused', () => {
  fc.assert(
    fc.property(jsonValue, (value) => {
      const text = JSON.stringify(value);
      assert.equal(duplicateKey(text), null);
      assert.deepEqual(parseWireJson(Buffer.from(text), (why) => new Error(why)), JSON.parse(text));
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.string(), jsonValue, jsonValue, fc.dictionary(fc.string(), jsonValue, { maxKeys: 4 }), fc.array(fc.nat(3), { maxLength: 4 }), fc.boolean(),
      (key, first, second, others, path, escape) => {
        const members = Object.entries(others).filter(([k]) => k !== key).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
        // The repeat may be spelled with \u escapes: it is still the same key.
        const spelled = escape ? `"${[...key].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(key);
        let text = `{${[...members.slice(0, 2), `${JSON.stringify(key)}:${JSON.stringify(first)}`, ...members.slice(2), `${spelled}:${JSON.stringify(second)}`].join(',')}}`;
        // Nested at any depth, inside arrays and objects.
        for (const step of path) text = step % 2 === 0 ? `[1,${text},"x"]` : `{"k${step}":${text}}`;
        assert.equal(duplicateKey(text), key);
        assert.throws(() => parseWireJson(Buffer.from(text), (why) => new Error(why)), /appears twice/);
      },
    ),
    { numRuns: 300 },
  );
});
