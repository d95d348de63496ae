/**
 * Rows 7c and 7d: does starting a command get slower as the daemon holds more connections?
 * `exec('true')` round trips, one at a time on one connection, against a daemon that is idle
 * and against the same daemon holding 10,000 idle authenticated connections (opened by a
 * separate client process, bench/idle-clients.ts), with the spawner on (7c: commands forked by
 * the small helper, process/spawner.ts) and off (7d: forked by the daemon itself, whose page
 * tables grow with every connection). Idle is measured before and after the load, and the two
 * are pooled, so that drift of the machine during the run counts against neither side.
 *
 * Alone: `node --import tsx bench/spawn-under-load.ts` (after `npm run build`; needs
 * `ulimit -n` ≥ 2×N + a few hundred: the daemon and the client process each hold N sockets).
 */
import type * as Shellwire from '../../dist/index.js';
import { CFG, QUICK, pass, type Measure } from '../lib/harness.js';
import { startDaemon, type BenchDaemon } from '../lib/daemon.js';
import { nextLine, startHelper, waitExit } from '../lib/children.js';
import { sequential } from '../lib/load.js';
import { fmt, median, procStatusKiB, range, sleep } from '../lib/util.js';

/** Idle connections held during the loaded measurement. */
export const LOAD_CONNECTIONS = QUICK ? 2_000 : 10_000;

const ON = { metric: `7c. exec \`true\` round trip, daemon holding ${LOAD_CONNECTIONS} idle connections vs idle, spawner on (ms)`, target: '≤ 1.5× idle' };
const OFF = { metric: `7d. the same, \`serve --spawner off\` (the daemon forks) (ms)`, target: 'info' };

export interface LoadRun {
  spawner: 'on' | 'off';
  /** Round medians (ms), idle before the load, under it, idle after it. */
  before: number[];
  loaded: number[];
  after: number[];
  rssIdleMiB: number;
  rssLoadedMiB: number;
}

/** `rounds` × `n` sequential `true` on one connection; each round's median (ms). */
async function rounds(c: Shellwire.Connection, count: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < count; r++) out.push(median((await sequential(n, () => c.exec('true'))).latMs));
  return out;
}

export async function measureUnderLoad(sw: typeof Shellwire, spawner: 'on' | 'off'): Promise<LoadRun> {
  const d: BenchDaemon = await startDaemon(['--spawner', spawner, '--max-connections', String(LOAD_CONNECTIONS + 100), '--no-audit']);
  try {
    const c = await sw.connect(d.address, { token: d.token, fingerprint: d.fingerprint });
    try {
      for (let i = 0; i < CFG.warm; i++) await c.exec('true');
      const count = Math.max(3, Math.ceil(CFG.rounds / 2));
      const before = await rounds(c, count, CFG.seqN);
      const rssIdleMiB = procStatusKiB(d.pid, 'VmRSS') / 1024;
      const h = startHelper('idle-clients.ts', [d.address, String(LOAD_CONNECTIONS)], d);
      const line = await nextLine(h.lines, 600_000, `${LOAD_CONNECTIONS} connections`).catch((e: Error) => {
        throw new Error(`${e.message}: ${h.stderr()}`);
      });
      if (line !== `ready ${LOAD_CONNECTIONS}`) throw new Error(`idle-clients said "${line}": ${h.stderr()}`);
      await sleep(2_000);
      const rssLoadedMiB = procStatusKiB(d.pid, 'VmRSS') / 1024;
      let loaded: number[];
      try {
        for (let i = 0; i < CFG.warm; i++) await c.exec('true');
        loaded = await rounds(c, count * 2, CFG.seqN);
      } finally {
        h.child.stdin!.end();
        await waitExit(h.child, 120_000);
      }
      await sleep(2_000);
      const after = await rounds(c, count, CFG.seqN);
      return { spawner, before, loaded, after, rssIdleMiB, rssLoadedMiB };
    } finally {
      await c.close().catch(() => {});
    }
  } finally {
    await d.stop();
  }
}

export function describeRun(run: LoadRun): string {
  return (
    `spawner ${run.spawner}: idle ${range([...run.before, ...run.after], 3, ' ms')} (before ${range(run.before, 3, ' ms')}, median ${fmt(median(run.before), 3)}; ` +
    `after ${range(run.after, 3, ' ms')}, median ${fmt(median(run.after), 3)}: a daemon forking itself stays slow once its heap grew), ` +
    `loaded ${range(run.loaded, 3, ' ms')}; daemon RSS ${fmt(run.rssIdleMiB, 0)} → ${fmt(run.rssLoadedMiB, 0)} MiB`
  );
}

export const spawnUnderLoad: Measure = {
  name: `spawn latency, idle daemon vs ${LOAD_CONNECTIONS} idle connections`,
  rows: [ON, OFF],
  daemon: 'own',
  async run({ sw, row, detail }) {
    const runs = [await measureUnderLoad(sw, 'on'), await measureUnderLoad(sw, 'off')];
    for (const [head, run] of [[ON, runs[0]!], [OFF, runs[1]!]] as const) {
      const idle = median([...run.before, ...run.after]);
      const loaded = median(run.loaded);
      row({
        ...head,
        sw: fmt(loaded, 3),
        ref: `${fmt(idle, 3)} (idle)`,
        ratio: `${fmt(loaded / idle, 2)}×`,
        result: head === ON ? pass(loaded / idle <= 1.5) : 'info',
      });
    }
    detail(
      `- 7c/7d: one connection, ${CFG.seqN} sequential \`exec('true')\` per round (after ${CFG.warm} warm-up); idle = ` +
        `rounds before and after the load pooled, loaded = rounds while bench/idle-clients.ts holds ${LOAD_CONNECTIONS} authenticated connections; ` +
        `figures are medians of round medians. ${runs.map(describeRun).join('; ')}.`,
    );
  },
};
