/**
 * Row 6b: the daemon's memory while `yes` runs for a client that reads 1 MB/s
 * (bench/slow-reader.ts in its own process): flow control must keep it flat.
 */
import { CFG, pass, type Measure } from '../lib/harness.js';
import { startDaemon } from '../lib/daemon.js';
import { nextLine, startHelper, waitExit } from '../lib/children.js';
import { fmt, procStatusKiB, sampleMedian, sleep } from '../lib/util.js';

const ROW = { metric: `6b. daemon RSS growth, \`yes\` to a 1 MB/s reader for ${CFG.yesSeconds} s (MiB)`, target: '≤ 32 MiB' };

interface Summary {
  bytes: number;
  seconds: number;
  mbPerS: number;
  maxClientBufferedBytes: number;
}

export const slowReaderRss: Measure = {
  id: 'slow-reader-rss',
  name: 'slow reader memory',
  rows: [ROW],
  daemon: 'own',
  async run({ row, detail }) {
    const md = await startDaemon();
    try {
      const warm = startHelper('slow-reader.ts', [md.address, '1'], md);
      await waitExit(warm.child, 30_000);
      await sleep(1500);
      const rss0 = await sampleMedian(() => procStatusKiB(md.pid, 'VmRSS'));
      const h = startHelper('slow-reader.ts', [md.address, String(CFG.yesSeconds)], md);
      const first = await nextLine(h.lines, 30_000, 'streaming').catch((e) => {
        throw new Error(`${e.message}: ${h.stderr()}`);
      });
      if (first !== 'streaming') throw new Error(`slow-reader said "${first}": ${h.stderr()}`);
      const samples: number[] = [];
      let summary: Summary | null = null;
      const done = nextLine(h.lines, (CFG.yesSeconds + 30) * 1000, 'summary').then((l) => (summary = JSON.parse(l) as Summary));
      done.catch(() => {});
      while (!summary && h.child.exitCode === null) {
        await Promise.race([sleep(1000), done.catch(() => {})]);
        if (summary) break;
        try {
          samples.push(procStatusKiB(md.pid, 'VmRSS'));
        } catch {
          break;
        }
      }
      await done.catch((e) => {
        throw new Error(`${e.message}: ${h.stderr()}`);
      });
      await waitExit(h.child);
      const s2 = summary as unknown as Summary;
      const growthMiB = (Math.max(...samples) - rss0) / 1024;
      row({ ...ROW, sw: fmt(growthMiB, 1), ref: '—', ratio: '—', result: pass(growthMiB <= 32), check: (v) => v.sw <= 32 });
      detail(
        `- 6b: fresh daemon (warmed with a 1 s run); baseline VmRSS ${fmt(rss0 / 1024, 1)} MiB; ${samples.length} samples 1 s apart: ` +
          `${samples.map((x) => fmt((x - rss0) / 1024, 1)).join(', ')} MiB over baseline. The client read ${fmt(s2.bytes / 1e6, 1)} MB in ${fmt(s2.seconds, 1)} s ` +
          `(${fmt(s2.mbPerS, 2)} MB/s); its own buffer peaked at ${fmt(s2.maxClientBufferedBytes / 1024, 0)} KiB.`,
      );
    } finally {
      await md.stop();
    }
  },
};
