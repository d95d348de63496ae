/**
 * A/B of two (or more) builds on one machine: one daemon per build (port 0, its own state
 * dir), one client connection per build in this process, N `exec('true')` with 32 in
 * flight, rounds alternating the builds so that load from other work hits each alike.
 * Prints each round, the medians and spreads, and CPU per command (client = this process
 * during that build's rounds; daemon and its waited-for children from /proc/PID/stat).
 *
 *   git worktree add /tmp/before REV && ln -s "$PWD/node_modules" /tmp/before/ && (cd /tmp/before && npm run build)
 *   node --import tsx bench/ab-builds.ts ROUNDS TOTAL before=/tmp/before after=.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Shellwire from '../dist/index.js';
import { freePort } from './lib/daemon.js';
import { pool } from './lib/load.js';
import { median, range } from './lib/util.js';

const CONCURRENCY = 32;
const CLOCK_TICKS = 100;
const [roundsText, totalText, ...specs] = process.argv.slice(2);
const ROUNDS = Number(roundsText);
const TOTAL = Number(totalText);
if (!(ROUNDS > 0) || !(TOTAL > 0) || specs.length === 0) {
  process.stderr.write('usage: node --import tsx bench/ab-builds.ts ROUNDS TOTAL NAME=DIR...\n');
  process.exit(2);
}

interface Build {
  name: string;
  child: ChildProcess;
  conn: Shellwire.Connection;
  rates: number[];
  cpu: { client: number; daemon: number; children: number; commands: number };
}

const home = mkdtempSync(join(tmpdir(), 'shellwire-ab-'));
process.env.SHELLWIRE_HOME = home;
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
});

/** CPU seconds of `pid` itself and of its children it waited for. */
function cpuOf(pid: number): { self: number; kids: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { self: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS, kids: (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS };
}

async function start(name: string, dir: string): Promise<Build> {
  const stateDir = join(home, `state-${name}`);
  mkdirSync(stateDir, { mode: 0o700 });
  const port = await freePort();
  const child = spawn(process.execPath, [join(dir, 'bin/shellwire.cjs'), 'serve', '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  const fingerprint = await new Promise<string>((ok, fail) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /host key fingerprint: (SHA256:\S+)/.exec(out);
      if (m) ok(m[1]!);
    });
    child.once('exit', (code) => fail(new Error(`the ${name} daemon exited (${code})`)));
  });
  child.stdout!.resume();
  const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
  const sw = (await import(pathToFileURL(join(dir, 'dist/index.js')).href)) as typeof Shellwire;
  const conn = await sw.connect(`127.0.0.1:${port}`, { token, fingerprint });
  return { name, child, conn, rates: [], cpu: { client: 0, daemon: 0, children: 0, commands: 0 } };
}

async function measured(b: Build): Promise<number> {
  const c0 = process.cpuUsage();
  const d0 = cpuOf(b.child.pid!);
  const rate = await pool(TOTAL, CONCURRENCY, () => b.conn.exec('true'));
  const c1 = process.cpuUsage(c0);
  const d1 = cpuOf(b.child.pid!);
  b.cpu.client += (c1.user + c1.system) / 1e6;
  b.cpu.daemon += d1.self - d0.self;
  b.cpu.children += d1.kids - d0.kids;
  b.cpu.commands += TOTAL;
  return rate;
}

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const builds: Build[] = [];
for (const spec of specs) {
  const at = spec.indexOf('=');
  builds.push(await start(spec.slice(0, at), resolve(spec.slice(at + 1))));
}
for (const b of builds) await pool(CONCURRENCY * 4, CONCURRENCY, () => b.conn.exec('true'));
console.log(`load average at start ${load()}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 === 0 ? builds : [...builds].reverse()) b.rates.push(await measured(b));
  console.log(`round ${r}: ${builds.map((b) => `${b.name} ${b.rates.at(-1)!.toFixed(0)}/s`).join('  ')}`);
}
console.log(`load average at end ${load()}`);
for (const b of builds) {
  const ms = (s: number) => ((s / b.cpu.commands) * 1e3).toFixed(3);
  console.log(
    `${b.name}: median ${median(b.rates).toFixed(0)}/s, range ${range(b.rates, 0, '/s')} (${ROUNDS} rounds × ${TOTAL}, ${CONCURRENCY} in flight); ` +
      `CPU per command: client ${ms(b.cpu.client)} ms, daemon ${ms(b.cpu.daemon)} ms, its children ${ms(b.cpu.children)} ms`,
  );
}
for (const b of builds) await b.conn.close();
for (const b of builds) {
  b.child.kill('SIGTERM');
  await new Promise((r) => b.child.once('exit', r));
}
