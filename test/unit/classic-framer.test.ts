/** The classic port's framer: lines, recv-sized messages, refusals — however the bytes are split. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClassicFramer, type MessageEnd } from '../../src/server/classic-framer.js';

type Event = [string, MessageEnd] | ['too-long'];

function framer(max = 16): { f: ClassicFramer; events: Event[] } {
  const events: Event[] = [];
  const f = new ClassicFramer(max, {
    onMessage: (message, end) => events.push([message.toString('latin1'), end]),
    onTooLong: () => events.push(['too-long']),
  });
  return { f, events };
}

const INPUT = 'tok\necho a\r\n\nxxxxxxxxxxxxxxxxxxxxxxxx\necho b\nlast';
const EXPECTED: Event[] = [
  ['tok', 'newline'],
  ['echo a', 'newline'],
  ['', 'newline'],
  ['too-long'],
  ['echo b', 'newline'],
  ['last', 'eof'],
];

test('lines, CRLF, an over-long line and an unterminated last line: same events for any chunking', () => {
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const { f, events } = framer();
    f.lineMode = true;
    const bytes = Buffer.from(INPUT, 'latin1');
    for (let i = 0; i < bytes.length; i += size) f.push(bytes.subarray(i, i + size));
    f.end();
    assert.deepEqual(events, EXPECTED, `chunk size ${size}`);
  }
});

test('a newline-less client: a pause ends a message; in line mode a pause ends nothing', () => {
  const recv = framer();
  recv.f.push(Buffer.from('echo '));
  recv.f.push(Buffer.from('hi'));
  recv.f.idle();
  assert.deepEqual(recv.events, [['echo hi', 'idle']]);

  const line = framer();
  line.f.lineMode = true;
  line.f.push(Buffer.from('echo '));
  line.f.idle();
  line.f.push(Buffer.from('hi\n'));
  assert.deepEqual(line.events, [['echo hi', 'newline']]);
});

test('an over-long newline-less message is refused once and its tail skipped until the pause', () => {
  const { f, events } = framer(8);
  f.push(Buffer.from('0123456789'));
  f.push(Buffer.from('abcdef'));
  assert.equal(f.pendingBytes, 0);
  f.idle();
  f.push(Buffer.from('ok'));
  f.idle();
  assert.deepEqual(events, [['too-long'], ['ok', 'idle']]);
});
