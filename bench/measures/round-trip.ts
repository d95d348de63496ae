/**
 * Rows 1 and 2: `exec('true')` on an open connection against a local spawn, one command at
 * a time. Both rows come from the same interleaved batches: row 1 is the latency (median of
 * each batch's median), row 2 the batch's rate.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { ROOT } from '../lib/daemon.js';
import { localTrue, sequential } from '../lib/load.js';
import { fmt, median, procStatusKiB, range } from '../lib/util.js';

const ROUND_TRIP = { metric: '1. exec `true` round trip, open connection (ms)', target: '≤ 1.3× local' };
const SEQUENTIAL = { metric: '2. sequential `true` on one connection (commands/s)', target: '≥ 0.8× local' };

export const roundTrip: Measure = {
  name: 'exec round trip / sequential rate',
  rows: [ROUND_TRIP, SEQUENTIAL],
  daemon: 'shared',
  async run({ conn: c, row, detail }) {
    for (let i = 0; i < CFG.warm; i++) {
      await localTrue();
      await c.exec('true');
    }
    const lat = { sw: [] as number[], local: [] as number[] };
    const rate = { sw: [] as number[], local: [] as number[] };
    for (let r = 0; r < CFG.rounds; r++) {
      const order = r % 2 === 0 ? (['local', 'sw'] as const) : (['sw', 'local'] as const);
      for (const who of order) {
        const res = await sequential(CFG.seqN, who === 'sw' ? () => c.exec('true') : localTrue);
        lat[who].push(median(res.latMs));
        rate[who].push(res.rate);
      }
    }
    const latSw = median(lat.sw);
    const latLocal = median(lat.local);
    const rateSw = median(rate.sw);
    const rateLocal = median(rate.local);
    row({ ...ROUND_TRIP, sw: fmt(latSw, 3), ref: `${fmt(latLocal, 3)} (local spawn)`, ratio: `${fmt(latSw / latLocal, 2)}×`, result: pass(latSw / latLocal <= 1.3) });
    row({ ...SEQUENTIAL, sw: fmt(rateSw, 0), ref: `${fmt(rateLocal, 0)} (local spawn)`, ratio: `${fmt(rateSw / rateLocal, 2)}×`, result: pass(rateSw / rateLocal >= 0.8) });
    // Diagnostic: the same floor in a lean node process (fork cost grows with the parent's size).
    let lean = '';
    const leanRun = spawnSync(process.execPath, [join(ROOT, 'bench/spawn-floor.mjs'), String(CFG.seqN), '3'], { encoding: 'utf8', timeout: 60_000 });
    if (leanRun.status === 0) {
      const j = JSON.parse(leanRun.stdout) as { medianMs: number; rate: number };
      lean = ` For comparison, the same floor in a lean \`node\` process (no tsx, run just after): ${fmt(j.medianMs, 3)} ms, ${fmt(j.rate, 0)}/s (bench process RSS ${fmt(procStatusKiB(process.pid, 'VmRSS') / 1024, 0)} MiB).`;
    }
    detail(
      `- 1/2: ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential commands each (after ${CFG.warm} warm-up); ` +
        `latency = median over rounds of each round's median; local = \`spawn('/bin/sh', ['-c', 'true'])\` awaited to 'close' in the bench process. ` +
        `Round medians: shellwire ${range(lat.sw, 3, ' ms')}, local ${range(lat.local, 3, ' ms')}; rates: shellwire ${range(rate.sw, 0, '/s')}, local ${range(rate.local, 0, '/s')}.${lean}`,
    );
  },
};
