/**
 * The daemon reads a command's output straight into the frames it sends, reusing their
 * buffers (src/process/direct-read.ts, src/server/output-pump.ts; issue 12 item 2). A buffer
 * given back too early, a frame sent twice or a read put out of order would corrupt the
 * stream: random write sizes, windows, packet sizes and reader stalls must come out byte-exact,
 * on stdout and stderr at once, with and without the spawner.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import fc from 'fast-check';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';

const DATA_BYTES = 2 * 1024 * 1024;
let dir: string;
let out: Buffer;
let err: Buffer;
let daemon: TestDaemon;
let plain: TestDaemon;

/** Writes `out` to stdout and `err` to stderr, alternating, in the given chunk sizes (cycled). */
const WRITER = String.raw`
import os, sys
out = open(sys.argv[1], 'rb').read(); err = open(sys.argv[2], 'rb').read()
sizes = [int(s) for s in sys.argv[3].split(',')]
i = j = k = 0
while i < len(out) or j < len(err):
    n = sizes[k % len(sizes)]; k += 1
    if i < len(out):
        sys.stdout.buffer.write(out[i:i + n]); sys.stdout.buffer.flush(); i += n
    if j < len(err) and k % 3 == 0:
        sys.stderr.buffer.write(err[j:j + 3 * n]); sys.stderr.buffer.flush(); j += 3 * n
`;

before(async () => {
  dir = tempDir();
  out = randomBytes(DATA_BYTES);
  err = randomBytes(DATA_BYTES / 4);
  writeFileSync(join(dir, 'out'), out);
  writeFileSync(join(dir, 'err'), err);
  writeFileSync(join(dir, 'writer.py'), WRITER);
  daemon = await startDaemon();
  plain = await startDaemon({ spawner: false });
});

after(async () => {
  await daemon?.stop();
  await plain?.stop();
  if (dir) removeDir(dir);
});

/** All of `stream`, reading with stalls of `stallMs` every `every` chunks (0: none). */
async function collect(stream: Readable, every: number, stallMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    if (every > 0 && ++n % every === 0) await new Promise((r) => setTimeout(r, stallMs));
  }
  return Buffer.concat(chunks);
}

const writeSize = fc.oneof(fc.integer({ min: 1, max: 70_000 }), fc.constantFrom(1, 4096, 16_384, 16_391, 65_527, 65_536, 65_537, 131_072, 200_000));

test('random write sizes, windows, packet sizes and reader stalls: stdout and stderr byte-exact', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(writeSize, { minLength: 1, maxLength: 12 }),
      fc.constantFrom(16 * 1024, 64 * 1024, 100_000, 2 * 1024 * 1024),
      fc.constantFrom(16 * 1024, 20_000, 64 * 1024),
      fc.nat({ max: 6 }),
      fc.boolean(),
      async (sizes, window, maxPacket, every, spawner) => {
        const conn = await (spawner ? daemon : plain).connect({ window, maxPacket });
        try {
          const proc = conn.spawn(['python3', join(dir, 'writer.py'), join(dir, 'out'), join(dir, 'err'), sizes.join(',')]);
          const [stdout, stderr, exit] = await Promise.all([collect(proc.stdout, every, 3), collect(proc.stderr, every ? every + 1 : 0, 5), proc.exited]);
          assert.equal(exit.exitCode, 0);
          assert.equal(stdout.length, out.length);
          assert.ok(stdout.equals(out), 'stdout differs');
          assert.equal(stderr.length, err.length);
          assert.ok(stderr.equals(err), 'stderr differs');
        } finally {
          await conn.close();
        }
      },
    ),
    { numRuns: 12 },
  );
});

test('many commands streaming at once share the frame buffers without mixing their bytes', async () => {
  const conn = await daemon.connect();
  try {
    const sizes = ['65536', '1,65536,7', '16384,100000', '4096'];
    const runs = Array.from({ length: 8 }, (_, i) => {
      const proc = conn.spawn(['python3', join(dir, 'writer.py'), join(dir, 'out'), join(dir, 'err'), sizes[i % sizes.length]!]);
      return Promise.all([collect(proc.stdout, i % 3, 2), collect(proc.stderr, 0, 0), proc.exited]);
    });
    for (const [stdout, stderr, exit] of await Promise.all(runs)) {
      assert.equal(exit.exitCode, 0);
      assert.ok(stdout.equals(out), 'stdout differs');
      assert.ok(stderr.equals(err), 'stderr differs');
    }
  } finally {
    await conn.close();
  }
});
