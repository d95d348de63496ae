/**
 * Rows 7a and 7b: spawn latency of `true` as the daemon grows. bench/spawn-latency.mjs runs in
 * a plain `node` (no tsx) grown to a daemon's size, and spawns one command at a time directly
 * (child_process.spawn: libuv's fork copies the page tables of the whole process) and through
 * the spawner (src/process/spawner.ts: a small helper process forks), interleaved; the same
 * script in a lean process gives the floor. 7a: the spawner in the big process against the
 * spawner in the lean one (it should not grow); 7b: what a direct spawn costs at that size.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { ROOT } from '../lib/daemon.js';
import { fmt, median, range } from '../lib/util.js';

const BIG_MIB = 250;
const FLAT = { metric: `7a. spawn \`true\` via the spawner, ${BIG_MIB} MiB process vs lean process (ms)`, target: '≤ 1.5× lean' };
const DIRECT = { metric: `7b. spawn \`true\` directly (child_process.spawn), ${BIG_MIB} MiB process vs lean (ms)`, target: 'info' };

interface Run {
  rssMiB: number;
  direct: { medianMs: number; rounds: number[] };
  spawner: { medianMs: number; rounds: number[] } | null;
}

function measure(growMiB: number): Run {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench/spawn-latency.mjs'), String(growMiB), String(CFG.seqN), String(CFG.rounds), 'both'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`bench/spawn-latency.mjs ${growMiB} failed (${r.signal ?? r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  return JSON.parse(r.stdout) as Run;
}

export const spawnLatency: Measure = {
  id: 'spawn-latency',
  name: 'spawn latency vs process size',
  rows: [FLAT, DIRECT],
  daemon: 'own',
  async run({ row, detail }) {
    // Lean and big alternate, so that both see the same machine.
    const lean: Run[] = [];
    const big: Run[] = [];
    for (let i = 0; i < 3; i++) {
      lean.push(measure(0));
      big.push(measure(BIG_MIB));
    }
    const m = (runs: Run[], kind: 'direct' | 'spawner') => median(runs.map((run) => run[kind]!.medianMs));
    const [spawnerLean, spawnerBig, directLean, directBig] = [m(lean, 'spawner'), m(big, 'spawner'), m(lean, 'direct'), m(big, 'direct')];
    row({ ...FLAT, sw: fmt(spawnerBig, 3), ref: `${fmt(spawnerLean, 3)} (spawner, lean)`, ratio: `${fmt(spawnerBig / spawnerLean, 2)}×`, result: pass(spawnerBig / spawnerLean <= 1.5), check: (v) => v.ratio <= 1.5 });
    row({ ...DIRECT, sw: fmt(directBig, 3), ref: `${fmt(directLean, 3)} (direct, lean)`, ratio: `${fmt(directBig / directLean, 2)}×`, result: 'info' });
    detail(
      `- 7a/7b: bench/spawn-latency.mjs, 3 alternating runs each of a lean process (RSS ${range(lean.map((r) => r.rssMiB), 0, ' MiB')}) and one grown to ${BIG_MIB} MiB ` +
        `(half Buffers, half small objects; RSS ${range(big.map((r) => r.rssMiB), 0, ' MiB')}); in each, ${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential \`true\` per kind, awaited to 'close'. ` +
        `Run medians: spawner big ${range(big.map((r) => r.spawner!.medianMs), 3, ' ms')}, lean ${range(lean.map((r) => r.spawner!.medianMs), 3, ' ms')}; ` +
        `direct big ${range(big.map((r) => r.direct.medianMs), 3, ' ms')}, lean ${range(lean.map((r) => r.direct.medianMs), 3, ' ms')}. ` +
        `The spawner against a direct spawn from the lean process: ${fmt(spawnerLean / directLean, 2)}× (its IPC round trip and the socket stdio).`,
    );
  },
};
