/**
 * Harness-only preload for the fuzz daemon (never loaded in production): on SIGUSR2 it runs a
 * full gc and writes process.memoryUsage() as JSON to $FUZZ_MEMPROBE, so the fuzz can tell
 * retained JS objects (heapUsed), Buffers/ArrayBuffers (external, arrayBuffers) and what the
 * allocator keeps (RSS) apart. If $FUZZ_MEMPROBE.snap-request names a path, a heap snapshot
 * is written there first (for a diff by constructor). Needs `node --expose-gc -r <this>`.
 */
'use strict';
const { existsSync, readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { getHeapSpaceStatistics, writeHeapSnapshot } = require('node:v8');

const out = process.env.FUZZ_MEMPROBE;
if (out && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    const request = `${out}.snap-request`;
    if (existsSync(request)) {
      const path = readFileSync(request, 'utf8').trim();
      rmSync(request, { force: true });
      writeHeapSnapshot(path);
    }
    // Twice: the first pass may only run finalizers that release more on the second.
    globalThis.gc();
    globalThis.gc();
    // How much of the JS heap is resident (heapTotal is what V8 reserved, e.g. a grown new
    // space it keeps): RSS minus this is the memory outside the JS heap.
    const heapPhysical = getHeapSpaceStatistics().reduce((sum, space) => sum + space.physical_space_size, 0);
    const usage = { ...process.memoryUsage(), heapPhysical, handles: process._getActiveHandles().length, at: Date.now() };
    writeFileSync(`${out}.tmp`, JSON.stringify(usage));
    renameSync(`${out}.tmp`, out);
  });
}
