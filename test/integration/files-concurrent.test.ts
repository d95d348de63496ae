/**
 * Several transfers at once on one connection (what `put -r --via` to many hosts does over
 * the one gateway connection, and any library user's Promise.all of puts): each file's bytes
 * arrive in order. The senders of a connection share a read-ahead budget; releasing it woke
 * the sender that was releasing, whose nested pump sent its next 1 MiB read before the one
 * it was sending, so files were stored with blocks swapped and the SHA-256 check failed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { removeDir, tempDir } from '../helpers/fixtures.js';

const FILES = 8;
const SIZE = 4 * 1024 * 1024;
let dir: string;
let daemon: TestDaemon;
const inputs: Buffer[] = [];

before(async () => {
  dir = tempDir('shellwire-concurrent-');
  mkdirSync(join(dir, 'out'));
  mkdirSync(join(dir, 'back'));
  for (let i = 0; i < FILES; i++) {
    inputs.push(randomBytes(SIZE));
    writeFileSync(join(dir, `in${i}.bin`), inputs[i]!);
  }
  daemon = await startDaemon();
});

after(async () => {
  await daemon?.stop();
  removeDir(dir);
});

test(`${FILES} puts, then ${FILES} gets, at once on one connection: every file byte-exact`, async () => {
  const conn = await daemon.connect();
  try {
    const puts = await Promise.allSettled(inputs.map((_, i) => conn.put(join(dir, `in${i}.bin`), join(dir, 'out', `o${i}.bin`))));
    assert.deepEqual(puts.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as Error).message)), inputs.map(() => 'ok'));
    for (let i = 0; i < FILES; i++) assert.ok(readFileSync(join(dir, 'out', `o${i}.bin`)).equals(inputs[i]!), `o${i}.bin`);
    const gets = await Promise.allSettled(inputs.map((_, i) => conn.get(join(dir, `in${i}.bin`), join(dir, 'back', `b${i}.bin`))));
    assert.deepEqual(gets.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as Error).message)), inputs.map(() => 'ok'));
    for (let i = 0; i < FILES; i++) assert.ok(readFileSync(join(dir, 'back', `b${i}.bin`)).equals(inputs[i]!), `b${i}.bin`);
  } finally {
    await conn.close();
  }
});
