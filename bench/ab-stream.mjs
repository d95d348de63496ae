// A/B of builds on the stream row: one daemon per build, ROUNDS rounds alternating the builds,
// each `shellwire exec -- head -c BYTES /dev/zero > /dev/null`; prints MB/s and CPU seconds per GiB
// of the daemon (/proc/PID/stat) and the client (/usr/bin/time), with medians.
//   node bench/ab-stream.mjs ROUNDS BYTES name=BUILD_DIR ...   (DAEMON_PROF=dir / CLIENT_PROF=dir: --cpu-prof)
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
const [rounds, bytes, ...specs] = process.argv.slice(2);
const home = mkdtempSync(join(tmpdir(), 'dp2-ab-'));
const kids = [];
process.on('exit', () => { for (const c of kids) try { c.kill('SIGKILL'); } catch { /* gone already */ } rmSync(home, { recursive: true, force: true }); });
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
async function start(name, dir) {
  const sd = join(home, 'st-' + name); mkdirSync(sd, { mode: 0o700 });
  const port = await freePort(); const address = `127.0.0.1:${port}`;
  const extra = process.env.DAEMON_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.DAEMON_PROF + '/' + name] : [];
  const child = spawn(process.execPath, [...extra, join(dir, 'bin/shellwire.cjs'), 'serve', '--listen', address, '--state-dir', sd, '--log-level', 'warn'], { env: { ...process.env, SHELLWIRE_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'] });
  kids.push(child);
  let out = '';
  const fp = await new Promise((ok) => child.stdout.on('data', (c) => { out += c; const m = /host key fingerprint: (SHA256:\S+)/.exec(out); if (m) ok(m[1]); }));
  child.stdout.resume();
  appendFileSync(join(home, 'known_hosts'), `${address} ${fp}\n`);
  const token = readFileSync(join(sd, 'token'), 'utf8').trim();
  return { name, dir, child, address, env: { ...process.env, SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: token }, res: [] };
}
function run(b) {
  return new Promise((ok) => {
    const d0 = cpu(b.child.pid); const t0 = process.hrtime.bigint();
    const clientArgs = process.env.CLIENT_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.CLIENT_PROF + '/' + b.name] : [];
    const c = spawn('/usr/bin/time', [ '-f', '%U %S', process.execPath, ...clientArgs, join(b.dir, 'bin/shellwire.cjs'), 'exec', '-n', b.address, '--', 'head', '-c', bytes, '/dev/zero'], { env: b.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = ''; c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9; const d = cpu(b.child.pid) - d0;
      const lines = err.trim().split('\n'); const [u, sy] = lines.find((l) => /^[0-9.]+ [0-9.]+$/.test(l)).split(' ').map(Number);
      const gib = Number(bytes) / 2 ** 30;
      const r = { mbs: Number(bytes) / 1e6 / s, dcpu: d / gib, ccpu: (u + sy) / gib, code };
      b.res.push(r); ok(r);
    });
  });
}
const builds = [];
for (const s of specs) { const [n, d] = s.split('='); builds.push(await start(n, d)); }
for (let i = 0; i < Number(rounds); i++) {
  const order = i % 2 ? [...builds].reverse() : builds;
  for (const b of order) { const r = await run(b); console.log(`${i} ${b.name} ${r.mbs.toFixed(0)} MB/s daemon ${r.dcpu.toFixed(2)} client ${r.ccpu.toFixed(2)} cpu-s/GiB code ${r.code}`); }
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
for (const b of builds) console.log(`${b.name}: median ${med(b.res.map((r) => r.mbs)).toFixed(0)} MB/s (${Math.min(...b.res.map((r) => r.mbs)).toFixed(0)}–${Math.max(...b.res.map((r) => r.mbs)).toFixed(0)}), daemon ${med(b.res.map((r) => r.dcpu)).toFixed(2)} client ${med(b.res.map((r) => r.ccpu)).toFixed(2)} cpu-s/GiB`);
for (const b of builds) { b.child.kill('SIGTERM'); await new Promise((r) => b.child.once('exit', r)); }
process.exit(0);
