/**
 * Row 1a: what the audit log costs a command. The run's daemon keeps its audit log (the
 * default); a second one with `--no-audit` is measured in interleaved rounds against it.
 */
import { CFG, pass, type Measure } from '../lib/harness.js';
import { startDaemon } from '../lib/daemon.js';
import { sequential } from '../lib/load.js';
import { fmt, median, range } from '../lib/util.js';

const ROW = { metric: '1a. same round trip, daemon with audit log vs `--no-audit` (ms)', target: 'not measurable' };

export const auditOverhead: Measure = {
  id: 'audit-overhead',
  name: 'audit overhead',
  rows: [ROW],
  daemon: 'shared',
  async run({ sw, conn: c, row, detail }) {
    const bare = await startDaemon(['--no-audit']);
    try {
      const b = await sw.connect(bare.address, { token: bare.token, fingerprint: bare.fingerprint });
      for (let i = 0; i < CFG.warm; i++) await b.exec('true');
      const lat = { audit: [] as number[], bare: [] as number[] };
      for (let r = 0; r < CFG.rounds; r++) {
        for (const who of r % 2 === 0 ? (['audit', 'bare'] as const) : (['bare', 'audit'] as const)) {
          const res = await sequential(CFG.seqN, who === 'audit' ? () => c.exec('true') : () => b.exec('true'));
          lat[who].push(median(res.latMs));
        }
      }
      await b.close();
      const withLog = median(lat.audit);
      const without = median(lat.bare);
      row({ ...ROW, sw: fmt(withLog, 3), ref: `${fmt(without, 3)} (--no-audit)`, ratio: `${fmt(withLog / without, 2)}×`, result: pass(withLog / without <= 1.05), check: (v) => v.ratio <= 1.05 });
      detail(`- 1a: ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential \`true\` on each daemon; round medians with the log ${range(lat.audit, 3, ' ms')}, without ${range(lat.bare, 3, ' ms')}. Two rows per command (start, end); the end row is written after EXIT is sent.`);
    } finally {
      await bare.stop();
    }
  },
};
