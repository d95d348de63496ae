/**
 * Row 5: a cold `shellwire exec … true` (a new CLI process, connect, one command) against a
 * cold `ssh … true` to the reference sshd; hyperfine when installed, else a loop of our own.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { CLI, benchDirs } from '../lib/daemon.js';
import { track } from '../lib/children.js';
import { fmt, median, minMax, timeRun } from '../lib/util.js';

const ROW = { metric: '5. cold `shellwire exec … true` vs cold `ssh … true` (ms)', target: '≤ 0.5× ssh' };

interface ColdRuns {
  median: number;
  min: number;
  max: number;
  tool: string;
}

async function coldMedianMs(id: string, argv: string[], env: NodeJS.ProcessEnv, runs: number): Promise<ColdRuns> {
  const hyperfine = spawnSync('hyperfine', ['--version'], { encoding: 'utf8' });
  if (hyperfine.status === 0) {
    const json = join(benchDirs().home, `${id}.json`);
    const cmd = argv.join(' ');
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = track(spawn('hyperfine', ['-N', '--style', 'basic', '--runs', String(runs), '--warmup', '2', '--export-json', json, cmd], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.on('close', (code) => resolve({ code, out }));
    });
    if (r.code !== 0) throw new Error(`hyperfine failed for ${cmd}: ${r.out.trim().split('\n').slice(-3).join(' / ')}`);
    const res = JSON.parse(readFileSync(json, 'utf8')).results[0];
    return { median: res.median * 1000, min: res.min * 1000, max: res.max * 1000, tool: `hyperfine -N, ${runs} runs, 2 warmup` };
  }
  const times: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const r = await timeRun(argv[0]!, argv.slice(1), { env });
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    if (i >= 2) times.push(r.seconds * 1000);
  }
  const [lo, hi] = minMax(times);
  return { median: median(times), min: lo, max: hi, tool: `own loop, ${runs} runs, 2 warmup` };
}

export const cold: Measure = {
  id: 'cold',
  name: 'cold CLI exec',
  rows: [ROW],
  daemon: 'shared',
  async run({ daemon: d, sshd, sshdNote, cliRel, row, detail }) {
    const swCold = await coldMedianMs('cold-shellwire', [process.execPath, CLI, 'exec', '-n', d.address, '--', 'true'], d.env, CFG.coldRuns);
    let sshCold: ColdRuns | null = null;
    let sshErr = '';
    if (sshd) {
      try {
        sshCold = await coldMedianMs('cold-ssh', [...sshd.ssh, '127.0.0.1', 'true'], process.env, CFG.coldRuns);
      } catch (err) {
        sshErr = (err as Error).message.slice(0, 120);
      }
    }
    row({
      ...ROW,
      sw: fmt(swCold.median, 1),
      ref: sshCold ? `${fmt(sshCold.median, 1)} (ssh cold)` : sshd ? `n/a (${sshErr})` : sshdNote,
      ratio: sshCold ? `${fmt(swCold.median / sshCold.median, 2)}×` : 'n/a',
      result: sshCold ? pass(swCold.median / sshCold.median <= 0.5) : 'n/a',
      ...(sshCold ? { values: { sw: swCold.median, ref: sshCold.median, ratio: swCold.median / sshCold.median }, check: (v: { ratio: number }) => v.ratio <= 0.5 } : {}),
    });
    detail(
      `- 5: ${swCold.tool}: \`node ${cliRel} exec -n ${d.address} -- true\` ${fmt(swCold.min, 1)}–${fmt(swCold.max, 1)} ms` +
        (sshCold ? `; \`${sshd!.sshText} 127.0.0.1 true\` ${fmt(sshCold.min, 1)}–${fmt(sshCold.max, 1)} ms.` : '.'),
    );
  },
};
