/** Row 3: 32 `exec('true')` always in flight on one connection, against 32 local spawns in flight. */
import { CFG, pass, type Measure } from '../lib/harness.js';
import { localTrue, pool } from '../lib/load.js';
import { fmt, median, range } from '../lib/util.js';

const CONCURRENCY = 32;
const ROW = { metric: `3. ${CONCURRENCY} concurrent \`true\` on one connection (commands/s)`, target: '≥ 800/s' };

export const concurrent: Measure = {
  name: '32 concurrent',
  rows: [ROW],
  daemon: 'shared',
  async run({ conn: c, row, detail }) {
    await pool(CONCURRENCY * 2, CONCURRENCY, () => c.exec('true'));
    await pool(CONCURRENCY * 2, CONCURRENCY, localTrue);
    const swRates: number[] = [];
    const localRates: number[] = [];
    for (let r = 0; r < CFG.concRounds; r++) {
      if (r % 2 === 0) {
        localRates.push(await pool(CFG.concTotal, CONCURRENCY, localTrue));
        swRates.push(await pool(CFG.concTotal, CONCURRENCY, () => c.exec('true')));
      } else {
        swRates.push(await pool(CFG.concTotal, CONCURRENCY, () => c.exec('true')));
        localRates.push(await pool(CFG.concTotal, CONCURRENCY, localTrue));
      }
    }
    const a = median(swRates);
    const b = median(localRates);
    row({ ...ROW, sw: fmt(a, 0), ref: `${fmt(b, 0)} (local spawn, ${CONCURRENCY} in flight)`, ratio: `${fmt(a / b, 2)}×`, result: pass(a >= 800) });
    detail(
      `- 3: ${CFG.concRounds} rounds × ${CFG.concTotal} commands with ${CONCURRENCY} always in flight on one connection; ` +
        `shellwire ${range(swRates, 0, '/s')}, local ${range(localRates, 0, '/s')}.`,
    );
  },
};
