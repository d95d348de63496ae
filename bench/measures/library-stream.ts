/**
 * Row 4c: 1 GiB through the library alone (`conn.spawn` in the bench process), against the
 * same output piped straight into this process (no daemon, no TLS).
 */
import { spawn } from 'node:child_process';
import { CFG, type Measure } from '../lib/harness.js';
import { fmt, median, range } from '../lib/util.js';

const GIB = 1024 ** 3;
const ROW = { metric: '4c. stream 1 GiB, library only (MB/s)', target: 'info' };

export const libraryStream: Measure = {
  id: 'library-stream',
  name: 'library throughput',
  rows: [ROW],
  daemon: 'shared',
  async run({ conn: c, row, detail }) {
    const mbs: number[] = [];
    for (let r = 0; r < CFG.libRuns; r++) {
      const t0 = performance.now();
      const p = c.spawn('head -c 1G /dev/zero');
      let bytes = 0;
      p.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
      p.stderr.resume();
      const [exit] = await Promise.all([p.exited, new Promise((r2) => p.stdout.once('end', r2))]);
      const secs = (performance.now() - t0) / 1000;
      if (bytes !== GIB || exit.exitCode !== 0) throw new Error(`library stream got ${bytes} bytes, exit ${exit.exitCode}`);
      mbs.push(GIB / 1e6 / secs);
    }
    const pipeMBs: number[] = [];
    for (let r = 0; r < CFG.libRuns; r++) {
      const t0 = performance.now();
      const child = spawn('/bin/sh', ['-c', 'head -c 1G /dev/zero']);
      let bytes = 0;
      child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
      await new Promise((r2) => child.once('close', r2));
      if (bytes !== GIB) throw new Error(`local pipe got ${bytes} bytes`);
      pipeMBs.push(GIB / 1e6 / ((performance.now() - t0) / 1000));
    }
    const a = median(mbs);
    const b = median(pipeMBs);
    row({ ...ROW, sw: fmt(a, 0), ref: `${fmt(b, 0)} (local pipe into node)`, ratio: `${fmt(a / b, 2)}×`, result: 'info' });
    detail(
      `- 4c: \`conn.spawn('head -c 1G /dev/zero')\` in the bench process, bytes counted (= 2^30 checked), ${CFG.libRuns} runs: ${range(mbs, 0, ' MB/s')}; ` +
        `reference: \`spawn('/bin/sh', ['-c', 'head -c 1G /dev/zero'])\` read by the bench process directly: ${range(pipeMBs, 0, ' MB/s')}.`,
    );
  },
};
