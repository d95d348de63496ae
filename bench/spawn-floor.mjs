// Diagnostic: the spawn floor in a lean Node process (no tsx, nothing loaded), to compare
// with the floor measured inside the bench process. Prints JSON {medianMs, rate}.
//   node bench/spawn-floor.mjs N ROUNDS
import { spawn } from 'node:child_process';

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const one = () => new Promise((resolve, reject) => {
  const child = spawn('/bin/sh', ['-c', 'true']);
  child.once('error', reject);
  child.once('close', resolve);
});
const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
for (let i = 0; i < 20; i++) await one();
const meds = [];
const rates = [];
for (let r = 0; r < rounds; r++) {
  const lat = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await one();
    lat.push(performance.now() - t);
  }
  rates.push(n / ((performance.now() - t0) / 1000));
  meds.push(median(lat));
}
process.stdout.write(JSON.stringify({ medianMs: median(meds), rate: median(rates) }) + '\n');
