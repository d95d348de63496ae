/** The load the measures put on a daemon (and on the local reference): sequential batches and pools. */
import { spawn } from 'node:child_process';

/** The local reference for one command: `spawn('/bin/sh', ['-c', 'true'])` awaited to 'close'. */
export function localTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'true']);
    child.once('error', reject);
    child.once('close', () => resolve());
  });
}

/** Run `fn` `total` times keeping `concurrency` in flight; returns runs per second. */
export async function pool(total: number, concurrency: number, fn: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < total) {
        started++;
        await fn();
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/** Sequential batch: per-call latencies (ms) and the batch's rate (calls/s). */
export async function sequential(n: number, fn: () => Promise<unknown>): Promise<{ latMs: number[]; rate: number }> {
  const latMs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    latMs.push(performance.now() - t);
  }
  return { latMs, rate: n / ((performance.now() - t0) / 1000) };
}
