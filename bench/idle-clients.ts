/**
 * Helper process for the memory benchmark: opens N authenticated connections to a daemon
 * and keeps them idle until its stdin closes (or it gets SIGTERM), then closes them.
 *
 *   node --import tsx bench/idle-clients.ts 127.0.0.1:PORT N
 *   env: SHELLWIRE_TOKEN, BENCH_FINGERPRINT
 *
 * Prints `ready N` on stdout once all N are authenticated (WELCOME received).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../dist/index.js';

const [address, countText] = process.argv.slice(2);
const count = Number(countText);
const token = process.env.SHELLWIRE_TOKEN!;
const fingerprint = process.env.BENCH_FINGERPRINT!;
const sw: typeof Shellwire = await import(pathToFileURL(resolve(import.meta.dirname, '../dist/index.js')).href);

const conns: Shellwire.Connection[] = [];
const BATCH = 10;
try {
  for (let i = 0; i < count; i += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, count - i) }, () =>
        sw.connect(address!, { token, fingerprint, connectTimeoutMs: 30_000 }),
      ),
    );
    conns.push(...batch);
  }
} catch (err) {
  process.stderr.write(`idle-clients: connect failed after ${conns.length}: ${(err as Error).message}\n`);
  process.exit(1);
}
const lost = () => conns.filter((c) => c.closed).length;
process.stdout.write(`ready ${conns.length}\n`);

let closing = false;
async function closeAll(): Promise<void> {
  if (closing) return;
  closing = true;
  const dropped = lost();
  await Promise.all(conns.map((c) => c.close().catch(() => {})));
  process.stdout.write(`closed ${conns.length} lost-before-close ${dropped}\n`);
  process.exit(0);
}
process.stdin.on('end', () => void closeAll());
process.stdin.on('close', () => void closeAll());
process.stdin.resume();
process.on('SIGTERM', () => void closeAll());
