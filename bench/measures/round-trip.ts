/**
 * Rows 1 and 2: `exec('true')` on an open connection against the local spawn floor, one
 * command at a time. The floor is taken in a lean `node` process (bench/spawn-floor.mjs, no
 * tsx: fork() costs more from a bigger process, so the tsx-loaded bench process would flatter
 * the ratio), in rounds interleaved with shellwire's. Both rows come from the same batches:
 * row 1 is the latency (median of each batch's median), row 2 the batch's rate.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { ROOT } from '../lib/daemon.js';
import { localTrue, sequential } from '../lib/load.js';
import { fmt, median, procStatusKiB, range } from '../lib/util.js';

const ROUND_TRIP = { metric: '1. exec `true` round trip, open connection, vs local spawn in a lean `node` (ms)', target: '≤ 1.3× local' };
const SEQUENTIAL = { metric: '2. sequential `true` on one connection vs local spawn in a lean `node` (commands/s)', target: '≥ 0.8× local' };

/** One batch of `n` sequential `/bin/sh -c true` in a lean node process (after 20 warm-up). */
async function leanFloor(n: number): Promise<{ medianMs: number; rate: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'bench/spawn-floor.mjs'), String(n), '1'], { timeout: 120_000 });
  return JSON.parse(stdout) as { medianMs: number; rate: number };
}

export const roundTrip: Measure = {
  id: 'round-trip',
  name: 'exec round trip / sequential rate',
  rows: [ROUND_TRIP, SEQUENTIAL],
  daemon: 'shared',
  async run({ conn: c, row, detail }) {
    for (let i = 0; i < CFG.warm; i++) await c.exec('true');
    const lat = { sw: [] as number[], local: [] as number[] };
    const rate = { sw: [] as number[], local: [] as number[] };
    for (let r = 0; r < CFG.rounds; r++) {
      const order = r % 2 === 0 ? (['local', 'sw'] as const) : (['sw', 'local'] as const);
      for (const who of order) {
        if (who === 'sw') {
          const res = await sequential(CFG.seqN, () => c.exec('true'));
          lat.sw.push(median(res.latMs));
          rate.sw.push(res.rate);
        } else {
          const res = await leanFloor(CFG.seqN);
          lat.local.push(res.medianMs);
          rate.local.push(res.rate);
        }
      }
    }
    const latSw = median(lat.sw);
    const latLocal = median(lat.local);
    const rateSw = median(rate.sw);
    const rateLocal = median(rate.local);
    row({ ...ROUND_TRIP, sw: fmt(latSw, 3), ref: `${fmt(latLocal, 3)} (local spawn, lean node)`, ratio: `${fmt(latSw / latLocal, 2)}×`, result: pass(latSw / latLocal <= 1.3), values: { sw: latSw, ref: latLocal, ratio: latSw / latLocal }, check: (v) => v.ratio <= 1.3 });
    row({ ...SEQUENTIAL, sw: fmt(rateSw, 0), ref: `${fmt(rateLocal, 0)} (local spawn, lean node)`, ratio: `${fmt(rateSw / rateLocal, 2)}×`, result: pass(rateSw / rateLocal >= 0.8), values: { sw: rateSw, ref: rateLocal, ratio: rateSw / rateLocal }, check: (v) => v.ratio >= 0.8 });
    // Diagnostic: the same floor inside this tsx-loaded bench process, as the README quoted it before.
    const inBench = await sequential(CFG.seqN, localTrue);
    detail(
      `- 1/2: ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential commands each (after ${CFG.warm} warm-up); ` +
        `latency = median over rounds of each round's median; local = \`node bench/spawn-floor.mjs ${CFG.seqN} 1\` (a lean \`node\`: \`spawn('/bin/sh', ['-c', 'true'])\` awaited to 'close'). ` +
        `Round medians: shellwire ${range(lat.sw, 3, ' ms')}, local ${range(lat.local, 3, ' ms')}; rates: shellwire ${range(rate.sw, 0, '/s')}, local ${range(rate.local, 0, '/s')}. ` +
        `The same floor inside the tsx-loaded bench process (RSS ${fmt(procStatusKiB(process.pid, 'VmRSS') / 1024, 0)} MiB), just after: ${fmt(median(inBench.latMs), 3)} ms, ${fmt(inBench.rate, 0)}/s.`,
    );
  },
};
