/**
 * direct-read.ts re-creates a socket over its handle so that reads land in buffers a
 * consumer chooses. Bytes the old socket had read already, bytes read before a target is
 * attached and bytes read into the target's buffers must all come out once, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { directReadable, readInto } from '../../src/process/direct-read.js';

/** A connected unix socket pair: [accepted (read side), client (write side)]. */
async function socketPair(): Promise<{ server: Socket; client: Socket; done(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'direct-read-'));
  const path = join(dir, 's');
  const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((r) => listener.listen(path, r));
  const accepted = new Promise<Socket>((r) => listener.once('connection', r));
  const client = connect(path);
  const server = await accepted;
  return { server, client, done: () => { listener.close(); rmSync(dir, { recursive: true, force: true }); } };
}

async function writeAll(client: Socket, data: Buffer, sizes: number[]): Promise<void> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    if (!client.write(data.subarray(offset, offset + n))) await new Promise((r) => client.once('drain', r));
    offset += n;
    if (i % 5 === 0) await new Promise((r) => setImmediate(r));
  }
  client.end();
}

test('bytes read before the switch, into the shared buffer and into a target all come out once, in order', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: 250_000 }),
      fc.integer({ min: 1, max: 70_000 }),
      fc.boolean(),
      async (sizes, attachAfter, targetSize, stopSometimes) => {
        const data = randomBytes(300_000);
        const { server, client, done } = await socketPair();
        try {
          // What the spawner does first: read a header with a plain socket, and maybe more.
          client.write(data.subarray(0, 20_000));
          const readable = new Promise((r) => server.once('readable', r));
          server.read(0);
          await readable;
          const header = server.read(7) as Buffer | null;
          assert.ok(header);
          const got: Buffer[] = [header];
          const direct = directReadable(server);
          assert.notEqual(direct, server);
          let total = got.reduce((n, b) => n + b.length, 0);
          let attached = false;
          let reads = 0;
          const ended = new Promise<void>((r) => direct.on('end', r));
          direct.on('data', (chunk: Buffer) => {
            got.push(chunk);
            total += chunk.length;
            if (!attached && total >= attachAfter) {
              attached = true;
              let mine = Buffer.alloc(targetSize);
              readInto(direct, {
                buffer: () => mine,
                filled: (buffer, bytes) => {
                  // Copy, then hand out a fresh buffer and scribble on the old one: a reuse bug shows.
                  got.push(Buffer.from(buffer.subarray(0, bytes)));
                  if (buffer === mine) {
                    mine = Buffer.alloc(targetSize);
                    buffer.fill(0xee);
                  }
                  if (stopSometimes && ++reads % 4 === 0) {
                    setTimeout(() => direct.resume(), 1);
                    direct.pause();
                    return false;
                  }
                  return true;
                },
              });
            }
          });
          await writeAll(client, data.subarray(20_000), sizes);
          await ended;
          assert.ok(Buffer.concat(got).equals(data), 'bytes differ');
          direct.destroy();
        } finally {
          client.destroy();
          done();
        }
      },
    ),
    { numRuns: 8 },
  );
});

test('a socket whose handle is gone comes back unchanged', async () => {
  const { server, client, done } = await socketPair();
  server.destroy();
  assert.equal(directReadable(server), server);
  client.destroy();
  done();
});
