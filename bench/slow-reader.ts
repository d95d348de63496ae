/**
 * Helper process for the memory benchmark: runs `yes` on the daemon and reads its output
 * slowly (100 KB every 100 ms ≈ 1 MB/s) for DURATION seconds, then closes the command.
 *
 *   node --import tsx bench/slow-reader.ts 127.0.0.1:PORT DURATION_S
 *   env: SHELLWIRE_TOKEN, BENCH_FINGERPRINT
 *
 * Prints `streaming` once the command started, and a JSON summary line at the end.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../dist/index.js';

const [address, durationText] = process.argv.slice(2);
const durationMs = Number(durationText) * 1000;
const sw: typeof Shellwire = await import(pathToFileURL(resolve(import.meta.dirname, '../dist/index.js')).href);
const conn = await sw.connect(address!, { token: process.env.SHELLWIRE_TOKEN!, fingerprint: process.env.BENCH_FINGERPRINT! });

const proc = conn.spawn('yes');
proc.stderr.resume();
proc.stdout.pause(); // paused mode: nothing is consumed except by read() below
await proc.started;
process.stdout.write('streaming\n');
const started = performance.now();
let bytes = 0;
let maxBuffered = 0;
const STEP = 100_000;
await new Promise<void>((done) => {
  const timer = setInterval(() => {
    maxBuffered = Math.max(maxBuffered, proc.stdout.readableLength);
    let want = STEP;
    // read(n) returns exactly n bytes when that many are buffered; read() would take the lot.
    while (want > 0) {
      const n = Math.min(want, proc.stdout.readableLength);
      if (n <= 0) break;
      const chunk = proc.stdout.read(n) as Buffer | null;
      if (!chunk) break;
      bytes += chunk.length;
      want -= chunk.length;
    }
    if (want > 0) proc.stdout.read(0); // ask for more (returns credit for what was taken)
    if (performance.now() - started >= durationMs) {
      clearInterval(timer);
      done();
    }
  }, 100);
});
const seconds = (performance.now() - started) / 1000;
proc.close();
await proc.exited.catch(() => {});
await conn.close();
process.stdout.write(JSON.stringify({ bytes, seconds, mbPerS: bytes / 1e6 / seconds, maxClientBufferedBytes: maxBuffered }) + '\n');
process.exit(0);
