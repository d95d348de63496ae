/**
 * Rows 6a and 6a′: what an idle authenticated connection costs the daemon, on fresh daemons:
 * a helper process (bench/idle-clients.ts) opens N connections; RSS and PSS before/after.
 */
import { CFG, pass, type Measure } from '../lib/harness.js';
import { startDaemon } from '../lib/daemon.js';
import { nextLine, startHelper, waitExit } from '../lib/children.js';
import { fmt, median, procStatusKiB, range, sampleMedian, sleep, smapsRollupKiB } from '../lib/util.js';

const RSS_ROW = { metric: `6a. daemon RSS per idle authenticated connection (KiB, N=${CFG.idleN})`, target: '≤ 64 KiB' };
const PSS_ROW = { metric: '6a′. daemon PSS per idle connection (KiB, smaps_rollup)', target: 'info' };

export const idleRss: Measure = {
  id: 'idle-rss',
  name: 'idle connection memory',
  // 6a′ comes with 6a; a failure reports the one row, as before the split.
  rows: [RSS_ROW],
  daemon: 'own',
  async run({ row, detail }) {
    const rssPer: number[] = [];
    const pssPer: number[] = [];
    const baselines: number[] = [];
    for (let r = 0; r < CFG.memRounds; r++) {
      const md = await startDaemon();
      try {
        // Warm the daemon (JIT, TLS context, lazy modules) so they do not count as per-connection cost.
        const warm = startHelper('idle-clients.ts', [md.address, '20'], md);
        const w = await nextLine(warm.lines, 60_000, 'warm-up connections').catch((e) => {
          throw new Error(`${e.message}: ${warm.stderr()}`);
        });
        if (!w.startsWith('ready')) throw new Error(`idle-clients said ${w}`);
        warm.child.stdin!.end();
        await waitExit(warm.child);
        await sleep(1500);
        const rss0 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
        const pss0 = await sampleMedian(() => smapsRollupKiB(md.pid, 'Pss'), 3);
        const h = startHelper('idle-clients.ts', [md.address, String(CFG.idleN)], md);
        const line = await nextLine(h.lines, 120_000, `${CFG.idleN} connections`).catch((e) => {
          throw new Error(`${e.message}: ${h.stderr()}`);
        });
        if (line !== `ready ${CFG.idleN}`) throw new Error(`idle-clients said "${line}": ${h.stderr()}`);
        await sleep(2000);
        const rss1 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
        const pss1 = await sampleMedian(() => smapsRollupKiB(md.pid, 'Pss'), 3);
        h.child.stdin!.end();
        await waitExit(h.child);
        rssPer.push((rss1 - rss0) / CFG.idleN);
        pssPer.push((pss1 - pss0) / CFG.idleN);
        baselines.push(rss0);
      } finally {
        await md.stop();
      }
    }
    const a = median(rssPer);
    row({ ...RSS_ROW, sw: fmt(a, 1), ref: '—', ratio: '—', result: pass(a <= 64), check: (v) => v.sw <= 64 });
    row({ ...PSS_ROW, sw: fmt(median(pssPer), 1), ref: '—', ratio: '—', result: 'info' });
    detail(
      `- 6a: ${CFG.memRounds} round(s), each on a fresh daemon warmed with 20 connections; a separate client process opens ${CFG.idleN} connections; ` +
        `(VmRSS after − before) / N, each side the median of 5 samples 200 ms apart. Per connection: RSS ${range(rssPer, 1, ' KiB')}, PSS ${range(pssPer, 1, ' KiB')}; daemon baseline RSS ${range(baselines.map((x) => x / 1024), 1, ' MiB')}.`,
    );
  },
};
