// The web console's pure helpers for text and input a remote side controls (ui/src/*.ts, bundled
// into the browser code): control and bidi characters shown as escapes (review finding 3), a
// push to `DIR/` (finding 4), terminal input in chunks under the console's message limit
// (finding 5), recordings the player would refuse whole (finding 15).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oneLine, outputText, visible } from '../../ui/src/visible-text.ts';
import { finalPushPath } from '../../ui/src/push-path.ts';
import { playableCast } from '../../ui/src/cast-text.ts';
import { INPUT_CHUNK_BYTES, INPUT_HIGH_WATER_BYTES, INPUT_MAX_PENDING_BYTES, PacedSender, type InputSocket } from '../../ui/src/paced-sender.ts';

test('ui visible text: bidi controls and marks are shown as \\uXXXX, so a row cannot read backwards', () => {
  for (const c of ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c']) {
    const shown = oneLine(`a${c}b`);
    assert.equal(shown, `a\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}b`);
    assert.equal(visible(`a${c}b`), shown);
  }
  // The reviewer's path: newline and U+202E, then the rest of an audit row.
  assert.equal(oneLine('/tmp/swa-push/new\nline-\u202e.txt bytes=4'), '/tmp/swa-push/new\\nline-\\u202e.txt bytes=4');
});

test('ui visible text: C0, DEL and C1 controls are escaped; one-line text escapes newline, tab and CR too', () => {
  assert.equal(oneLine('a\x1b[31mred\x07\x7f\x85\x9b'), 'a\\u001b[31mred\\u0007\\u007f\\u0085\\u009b');
  assert.equal(oneLine('a\r\nb\tc'), 'a\\r\\nb\\tc');
  assert.equal(oneLine('\u2028\u2029\ufeff'), '\\u2028\\u2029\\ufeff');
  // Messages keep their line breaks and tabs; everything else as above.
  assert.equal(visible('line one\n\tline two\r\x1b'), 'line one\n\tline two\\r\\u001b');
});

test('ui visible text: non-UTF-8 bytes of an OS string (U+DC80..U+DCFF) show as \\xNN; other lone surrogates as \\uXXXX', () => {
  assert.equal(oneLine('caf\udce9'), 'caf\\xe9');
  assert.equal(oneLine('x\ud800y'), 'x\\ud800y');
});

test('ui visible text: ordinary text is unchanged, right-to-left scripts and emoji included', () => {
  for (const s of ['web01', 'env=prod', 'שלום עולם', 'مرحبا', 'naïve café', '👩‍💻 ok', '/etc/motd', 'a b\\c']) assert.equal(oneLine(s), s);
});

test('ui output text: a command\'s output keeps newlines, tabs and its bidi characters; its controls are escaped', () => {
  assert.equal(outputText('a\tb\nשלום \u202eabc\n'), 'a\tb\nשלום \u202eabc\n');
  assert.equal(outputText('\x1b[1mbold\r\n'), '\\u001b[1mbold\\r\n');
  // Binary output (not UTF-8) is shown with U+FFFD for its controls as for its undecodable bytes.
  assert.equal(outputText('\x7fELF\x02\0\0\ufffd\n', true), '\ufffdELF\ufffd\ufffd\ufffd\ufffd\n');
});

test('ui push path: a remote path ending in / means "into this directory", under the file\'s own name (as scp)', () => {
  assert.equal(finalPushPath('/srv/app/', 'app.tar'), '/srv/app/app.tar');
  assert.equal(finalPushPath('into-dir/', 'payload.bin'), 'into-dir/payload.bin');
  assert.equal(finalPushPath('/', 'x'), '/x');
  assert.equal(finalPushPath('/srv/app.tar', 'other.tar'), '/srv/app.tar');
  assert.equal(finalPushPath('/tmp/new\n\u202e/', 'f'), '/tmp/new\n\u202e/f');
  assert.equal(finalPushPath('/tmp/', 'a/b'), '/tmp/a_b');
});

test('ui cast text: a torn last line is dropped and counted; a recording without events says so; a bad header is refused', () => {
  const header = JSON.stringify({ version: 2, width: 80, height: 24 });
  const torn = playableCast(`${header}\n[0.1, "o", "hello"]\n[0.2, "o", "wor`);
  assert.deepEqual(torn, { text: `${header}\n[0.1, "o", "hello"]\n`, events: 1, dropped: 1 });
  assert.deepEqual(playableCast(`${header}\n`), { text: `${header}\n`, events: 0, dropped: 0 });
  assert.equal(playableCast('not a cast').text, null);
  assert.equal(playableCast(JSON.stringify({ version: 1 })).text, null);
  const whole = `${header}\n[0.1, "o", "a"]\n[0.5, "i", "b"]\n`;
  assert.deepEqual(playableCast(whole), { text: whole, events: 2, dropped: 0 });
});

/** A socket whose send buffer drains when `drain()` is called. */
class FakeSocket implements InputSocket {
  readyState = 1;
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  send(data: Uint8Array): void {
    this.sent.push(data);
    this.bufferedAmount += data.length;
  }
  drain(): void {
    this.bufferedAmount = 0;
  }
}

test('ui paced sender: a 3 MiB paste goes out in order, in chunks of at most 64 KiB, never more than 1 MiB buffered', async () => {
  const ws = new FakeSocket();
  const refused: string[] = [];
  const sender = new PacedSender(() => ws, (m) => refused.push(m));
  const paste = new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => i % 251);
  sender.send(paste);
  sender.send(new Uint8Array([1, 2, 3])); // a keystroke typed meanwhile comes after the paste
  assert.ok(ws.bufferedAmount <= INPUT_HIGH_WATER_BYTES + INPUT_CHUNK_BYTES, `buffered ${ws.bufferedAmount}`);
  assert.ok(sender.waiting > 0, 'the rest waits for the socket to drain');
  for (let i = 0; i < 200 && sender.waiting > 0; i++) {
    ws.drain();
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(sender.waiting, 0);
  assert.deepEqual(refused, []);
  for (const c of ws.sent) assert.ok(c.length <= INPUT_CHUNK_BYTES);
  const all = Buffer.concat(ws.sent);
  assert.deepEqual(all, Buffer.concat([paste, Buffer.from([1, 2, 3])]));
});

test('ui paced sender: a paste over 16 MiB is refused whole with a message naming the limit; the terminal goes on', () => {
  const ws = new FakeSocket();
  const refused: string[] = [];
  const sender = new PacedSender(() => ws, (m) => refused.push(m));
  sender.send(new Uint8Array(INPUT_MAX_PENDING_BYTES + 1));
  assert.equal(ws.sent.length, 0);
  assert.equal(refused.length, 1);
  assert.match(refused[0]!, /16\.0 MiB/);
  sender.send(new Uint8Array([0x6c, 0x73, 0x0d]));
  assert.deepEqual(Buffer.concat(ws.sent), Buffer.from('ls\r'));
  sender.clear();
});

test('ui paced sender: nothing is sent once the socket closed, and what waited is dropped', () => {
  const ws = new FakeSocket();
  const sender = new PacedSender(() => ws, () => {});
  ws.bufferedAmount = INPUT_HIGH_WATER_BYTES;
  sender.send(new Uint8Array(10));
  assert.equal(sender.waiting, 10);
  ws.readyState = 3;
  sender.send(new Uint8Array(1));
  assert.equal(sender.waiting, 0);
  assert.equal(ws.sent.length, 0);
});
