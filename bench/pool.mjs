// N commands in flight from a lean `node` process (no tsx): the local spawn floor
// (`/bin/sh -c true`) and the ssh ControlMaster driver (`ssh -o ControlPath=… 127.0.0.1 true`)
// both use it, so both references pay the same client-side cost. Each command is spawned
// with piped stdio (as the daemon does) and awaited to 'close'; a command that exits non-zero
// fails the run. Prints JSON {rate, seconds, total, concurrency}.
//   node bench/pool.mjs CONCURRENCY TOTAL FILE [ARGS...]
import { spawn } from 'node:child_process';

const [concText, totalText, file, ...args] = process.argv.slice(2);
const concurrency = Number(concText);
const total = Number(totalText);
if (!file || !(concurrency > 0) || !(total > 0)) {
  process.stderr.write('usage: pool.mjs CONCURRENCY TOTAL FILE [ARGS...]\n');
  process.exit(2);
}
const one = () => new Promise((resolve, reject) => {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout.resume();
  child.stderr.on('data', (c) => (err = (err + c).slice(-500)));
  child.once('error', reject);
  child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code ?? signal}: ${err.trim()}`))));
});
async function run(n) {
  let started = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (started < n) {
      started++;
      await one();
    }
  }));
  return (performance.now() - t0) / 1000;
}
try {
  await run(Math.min(total, concurrency * 2)); // warm-up
  const seconds = await run(total);
  process.stdout.write(JSON.stringify({ rate: total / seconds, seconds, total, concurrency }) + '\n');
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
