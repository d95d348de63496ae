/**
 * Many commands at once on one connection, and many clients at once on one daemon:
 * every command gets exactly its own output and status.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import type { Connection } from '../../src/client/connection.js';

let daemon: TestDaemon;

before(async () => {
  daemon = await startDaemon();
});

after(async () => {
  await daemon?.stop();
});

/** `seq FROM FROM+count-1` as text. */
function seqRange(from: number, count: number): string {
  let text = '';
  for (let n = from; n < from + count; n++) text += `${n}\n`;
  return text;
}

test('200 concurrent commands on one connection each get their own output and status', async () => {
  const conn = await daemon.connect();
  try {
    const N = 200;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        conn.exec(`echo start-${i}; seq ${i * 1000} ${i * 1000 + 1999}; echo err-${i} >&2; exit ${i % 4}`, { reject: false }),
      ),
    );
    results.forEach((result, i) => {
      assert.equal(result.stdout, `start-${i}\n${seqRange(i * 1000, 2000)}`, `command ${i} stdout`);
      assert.equal(result.stderr, `err-${i}\n`, `command ${i} stderr`);
      assert.equal(result.exitCode, i % 4, `command ${i} exit code`);
    });
    assert.equal(conn.channelCount, 0, 'every channel was released');
    // And the connection is still good afterwards.
    assert.equal((await conn.exec('echo ok')).stdout, 'ok\n');
  } finally {
    await conn.close();
  }
});

test('a command with large output does not hold up small ones on the same connection', async () => {
  const conn = await daemon.connect();
  try {
    // The big one is read by nobody until the small ones are done: its window fills and it
    // must wait, while the others still run to completion.
    const big = conn.spawn('head -c 20000000 /dev/zero; echo big-done >&2');
    big.stdin.end();
    const small = await Promise.all(Array.from({ length: 20 }, (_, i) => conn.exec(`echo small-${i}`)));
    small.forEach((result, i) => assert.equal(result.stdout, `small-${i}\n`));
    let bytes = 0;
    let stderr = '';
    const ended = Promise.all([
      new Promise((resolve) => big.stdout.once('end', resolve)),
      new Promise((resolve) => big.stderr.once('end', resolve)),
    ]);
    big.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    big.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [exit] = await Promise.all([big.exited, ended]);
    assert.equal(exit.exitCode, 0);
    assert.equal(bytes, 20_000_000);
    assert.equal(stderr, 'big-done\n');
  } finally {
    await conn.close();
  }
});

test('20 concurrent library clients (20 connections) all succeed', async () => {
  const N = 20;
  const conns: Connection[] = await Promise.all(Array.from({ length: N }, () => daemon.connect()));
  try {
    const results = await Promise.all(conns.map((conn, i) => conn.exec(`echo client-${i}; seq 1 5000 | wc -l`)));
    results.forEach((result, i) => assert.equal(result.stdout, `client-${i}\n5000\n`));
  } finally {
    await Promise.all(conns.map((conn) => conn.close()));
  }
});

test('20 concurrent CLI processes all succeed', async () => {
  const N = 20;
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => runCli(['exec', daemon.address, '--', `echo cli-${i}; exit ${i % 3}`], { env: daemon.env })),
  );
  results.forEach((result, i) => {
    assert.equal(result.stdout.toString('utf8'), `cli-${i}\n`, `CLI ${i}: ${result.stderr}`);
    assert.equal(result.code, i % 3, `CLI ${i}: ${result.stderr}`);
  });
});
