// Spawn latency of `true` from a process of a given size, directly (child_process.spawn,
// libuv's fork copies this process's page tables) and through the spawner helper
// (dist/process/spawner.js, a small process that forks instead). Plain node, no tsx.
// Prints JSON {rssMiB, direct: {medianMs, rounds}, spawner: {medianMs, rounds} | null}.
//   node bench/spawn-latency.mjs GROW_MIB N ROUNDS [direct|both]
import { spawn } from 'node:child_process';
import { fileURLToPath, URL } from 'node:url';

const growMiB = Number(process.argv[2] ?? 0);
const n = Number(process.argv[3] ?? 200);
const rounds = Number(process.argv[4] ?? 3);
const which = process.argv[5] ?? 'both';

// A daemon's size is many small objects (connections, buffers, maps), all of it touched:
// about half Buffers outside the V8 heap, the rest JS objects on it, until RSS reaches GROW_MIB.
const keep = [];
const rss = () => process.memoryUsage().rss / 1024 / 1024;
for (let mib = 0; rss() < growMiB / 2; mib++) keep.push(Buffer.alloc(1024 * 1024, mib & 0xff));
const objects = [];
keep.push(objects);
while (rss() < growMiB) for (let i = 0; i < 10_000; i++) objects.push({ id: objects.length, name: `conn-${objects.length}`, open: true });

const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

const direct = () => new Promise((resolve, reject) => {
  const child = spawn('true', [], { cwd: '/', env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  child.once('error', reject);
  child.once('close', resolve);
  child.stdin.end();
});

let spawner = null;
if (which === 'both') {
  const { Spawner } = await import(fileURLToPath(new URL('../dist/process/spawner.js', import.meta.url)));
  spawner = await Spawner.start();
}
const viaSpawner = async () => {
  const child = await spawner.spawn({ file: 'true', args: [], cwd: '/', env });
  child.stdout.resume();
  child.stderr.resume();
  child.stdin.end();
  await new Promise((resolve) => child.once('close', resolve));
};

async function batch(one) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await one();
    lat.push(performance.now() - t);
  }
  return median(lat);
}

const kinds = spawner ? { direct, spawner: viaSpawner } : { direct };
for (const one of Object.values(kinds)) for (let i = 0; i < 20; i++) await one();
const meds = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  // Interleaved, alternating order: both see the same machine.
  const order = r % 2 === 0 ? Object.keys(kinds) : Object.keys(kinds).reverse();
  for (const k of order) meds[k].push(await batch(kinds[k]));
}
const rssMiB = process.memoryUsage().rss / 1024 / 1024;
const out = { rssMiB, direct: { medianMs: median(meds.direct), rounds: meds.direct } };
out.spawner = spawner ? { medianMs: median(meds.spawner), rounds: meds.spawner } : null;
spawner?.close();
process.stdout.write(JSON.stringify(out) + '\n');
keep.length = 0;
