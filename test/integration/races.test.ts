/**
 * Races the protocol allows (docs/protocol.md §6): frames crossing an OPEN_FAIL or a
 * CLOSE must never bring down the connection and the other commands on it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';
import type { Connection } from '../../src/client/connection.js';

let d: TestDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

async function stillWorks(conn: Connection): Promise<void> {
  assert.equal((await conn.exec('echo alive')).stdout, 'alive\n', 'the connection survived');
}

test('an abort that crosses an OPEN_FAIL: the request fails, the connection lives', async () => {
  const conn = await d.connect();
  const running = conn.exec('sleep 2; echo other');
  // Aborted once the OPEN is sent (an already-aborted signal sends nothing at all).
  const controller = new AbortController();
  const refused = conn.exec('true', { cwd: '/nonexistent-dir', signal: controller.signal });
  controller.abort();
  await assert.rejects(refused, (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  const p = conn.spawn('true', { cwd: '/nonexistent-dir' });
  p.kill('SIGINT');
  await assert.rejects(p.exited, (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  await stillWorks(conn);
  assert.equal((await running).stdout, 'other\n', 'the other command on the connection finished');
  await conn.close();
});

test('a resize that crosses an OPEN_FAIL: the request fails, the connection lives', async () => {
  const conn = await d.connect();
  const running = conn.exec('sleep 1; echo other');
  // RESIZE (like SIGNAL and EOF) may only follow OPEN_OK: a RESIZE for a channel the daemon
  // refused is a frame for an unknown channel, fatal to the whole connection.
  const p = conn.spawn('true', { cwd: '/nonexistent-dir', pty: { term: 'xterm', cols: 80, rows: 24 } });
  p.resize(100, 30);
  p.resize(120, 40);
  await assert.rejects(p.exited, (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  await stillWorks(conn);
  assert.equal((await running).stdout, 'other\n', 'the other command on the connection finished');
  await conn.close();
});

test('resize, signal, stdin end and close all asked before an OPEN_FAIL: nothing crosses it', async () => {
  const conn = await d.connect();
  for (const last of ['none', 'close'] as const) {
    const p = conn.spawn('cat', { cwd: '/nonexistent-dir', pty: { term: 'xterm', cols: 80, rows: 24 } });
    p.resize(90, 30);
    p.kill('SIGINT');
    p.stdin.end('typed before the answer');
    if (last === 'close') p.close();
    await assert.rejects(p.exited, (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  }
  await stillWorks(conn);
  await conn.close();
});

test('a resize asked before OPEN_OK reaches the terminal once the command starts', async () => {
  const conn = await d.connect();
  const p = conn.spawn('sleep 0.3; stty size', { pty: { term: 'xterm', cols: 80, rows: 24 } });
  p.resize(101, 33);
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.resume();
  assert.equal((await p.exited).exitCode, 0);
  assert.match(out, /33 101/);
  await conn.close();
});

test('closing a command with unread stdin sends no WINDOW after CLOSE', async () => {
  const conn = await d.connect();
  for (let i = 0; i < 5; i++) {
    const p = conn.spawn('sleep 0.2; exec cat >/dev/null');
    p.stdout.resume();
    p.stderr.resume();
    p.stdin.write(Buffer.alloc(3 * 1024 * 1024, 0x61));
    await new Promise((r) => setTimeout(r, 250));
    p.close();
    await p.exited;
  }
  await stillWorks(conn);
  await conn.close();
});

test('a program that cannot start reports why without overrunning a small window', async () => {
  const conn = await d.connect({ window: 16 });
  const r = await conn.exec(['/nonexistent/program'], { reject: false });
  assert.equal(r.exitCode, 127);
  assert.match(r.stderr, /Cannot run \/nonexistent\/program/);
  await stillWorks(conn);
  await conn.close();
});

test('NUL bytes in a command are refused before anything is sent, not a crash', async () => {
  const conn = await d.connect();
  // The library checks the request itself (spawn-options.ts); a raw peer sending NUL gets
  // OPEN_FAIL from the daemon (bad-input.test.ts).
  await assert.rejects(conn.exec('echo a\0b'), (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  await assert.rejects(conn.exec(['echo', 'a\0b']), (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  await assert.rejects(conn.exec('echo', { env: { X: 'a\0b' } }), (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  await stillWorks(conn);
  await conn.close();
  const again = await d.connect();
  await stillWorks(again);
  await again.close();
});
