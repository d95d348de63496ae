/**
 * Fan-out benchmark: `shellwire run` on 20, 100 and 1,000 daemons vs `parallel-ssh -p 20`
 * on 20 private sshd daemons (../shared/peers/lib.sh `start_fanout`), in the same run.
 *
 *   npm run build && node --import tsx bench/fleet.ts        (FLEET_RUNS=N, default 5)
 *
 * Daemons: every target is its own `Server` on its own address (127.0.x.y, all loopback on
 * Linux) and the same port; to save memory, one child process hosts many `Server`
 * instances (`Server.create()` + `listen()` per address; they share one state dir, so one
 * identity and token). Children and the CLI run under `ulimit -n` raised to the hard limit.
 * File descriptors needed: the client ≈ 1 per target + ~30; a daemon process ≈ 2 per hosted
 * server (listener + connection) + 3 per running command.
 *
 * Client memory per target: this process (the library) holds N open connections in a
 * `ConnectionPool` after a run; (RSS after − RSS before) / N, after a GC.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PER_PROCESS, addressOf, hardLimit, startDaemons, timed } from './lib/fleet-hosts.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin/shellwire.cjs');
const PEERS = process.env.SHELLWIRE_PEERS_DIR ?? resolve(ROOT, '../shared/peers');
const PORT = 50_100;
const RUNS = Number(process.env.FLEET_RUNS ?? 5);

type Dist = typeof import('../dist/index.js');
const dist = (): Promise<Dist> => import(join(ROOT, 'dist/index.js'));

const log = (msg: string) => process.stderr.write(`[fleet-bench] ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const children: ChildProcess[] = [];
const startedSshd: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'shellwire-fleet-bench-'));

function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const pidfile of startedSshd) spawnSync('bash', ['-c', `source ${PEERS}/lib.sh; stop_pidfile ${pidfile}`], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function measure(label: string, cmd: string[], env: NodeJS.ProcessEnv): Promise<{ s: number; hwmKiB: number; ok: boolean; note: string }> {
  const times: number[] = [];
  let hwm = 0;
  let ok = true;
  let note = '';
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(cmd, env);
    times.push(r.s);
    hwm = Math.max(hwm, r.hwmKiB);
    if (r.code !== 0) {
      ok = false;
      note = r.stderr.trim().split('\n').slice(-2).join(' / ');
    }
    if (/EMFILE/.test(r.stderr)) note = `EMFILE! ${note}`;
  }
  log(`${label}: median ${median(times).toFixed(3)} s (runs: ${times.map((t) => t.toFixed(3)).join(', ')})${ok ? '' : ` FAILED: ${note}`}`);
  return { s: median(times), hwmKiB: hwm, ok, note };
}

function startSshFanout(): { hosts: string; sshcfg: string } | { error: string } {
  const firstPid = 2401;
  const before = new Set<string>();
  for (let p = firstPid; p < firstPid + 20; p++) {
    const f = `/tmp/anchors/sshd-fan${p}.pid`;
    if (existsSync(f)) before.add(f);
  }
  const r = spawnSync('bash', ['-c', `source ${PEERS}/lib.sh && setup_keys_and_configs >&2 && start_fanout >&2 && echo "A=$A" && echo "SSHCFG=$SSHCFG"`], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return { error: r.stderr.trim().split('\n').slice(-3).join(' / ') };
  const kv = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  for (let p = firstPid; p < firstPid + 20; p++) {
    const f = `${kv.A}/sshd-fan${p}.pid`;
    if (!before.has(f)) startedSshd.push(f);
  }
  return { hosts: `${kv.A}/hosts`, sshcfg: kv.SSHCFG! };
}

// ------------------------------------------------------------------ main
if (!existsSync(CLI) || !existsSync(join(ROOT, 'dist/index.js'))) throw new Error('run `npm run build` first');
const install = existsSync('/tmp/sw/peers-install.log') ? readFileSync('/tmp/sw/peers-install.log', 'utf8') : '';
if (!/install ok/.test(install)) log('note: /tmp/sw/peers-install.log does not say "install ok" yet; parallel-ssh may be missing');

const { Server } = (await import(join(ROOT, 'dist/server/index.js'))) as typeof import('../dist/server/index.js');
const { ConnectionPool, runOn } = await import(join(ROOT, 'dist/fleet/index.js')).then(async (f) => ({ ...(await dist()), ...f }));
const stateDir = join(dir, 'server');
const seed = await Server.create({ stateDir, port: 0 });
const home = join(dir, 'home');
const MAX = 1000;
spawnSync('mkdir', ['-p', home]);
writeFileSync(join(home, 'known_hosts'), Array.from({ length: MAX }, (_, i) => `${addressOf(i)}:${PORT} ${seed.identity.fingerprint}\n`).join(''));
for (const n of [20, 100, MAX]) {
  writeFileSync(join(dir, `inv${n}.yaml`), `defaults: { port: ${PORT} }\nhosts:\n${Array.from({ length: n }, (_, i) => `  t${String(i + 1).padStart(4, '0')}: { address: ${addressOf(i)} }\n`).join('')}`);
}
const env = { ...process.env, SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: seed.token, NO_COLOR: '1' };
log(`fd limit: soft raised to hard (${hardLimit}) for daemons and CLI`);
log(`starting ${MAX} daemons in ${Math.ceil(MAX / PER_PROCESS)} processes (${PER_PROCESS} Server instances each)…`);
const t0 = performance.now();
await startDaemons(MAX, stateDir, PORT, (child) => children.push(child));
log(`daemons up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// FLEET_PROFILE=DIR: one CPU-profiled `run` on all hosts, then stop (for finding hot spots).
if (process.env.FLEET_PROFILE) {
  const profiled = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${process.env.FLEET_PROFILE}`, CLI, 'run', '--inventory', join(dir, `inv${process.env.FLEET_PROFILE_HOSTS ?? MAX}.yaml`), 'all', '--', 'true'], { env, encoding: 'utf8' });
  log(`profiled run: exit ${profiled.status}; ${profiled.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  for (const c of children) c.kill('SIGTERM');
  process.exit(0);
}

const rows: string[] = [];
const sw = (n: number, command: string, extra: string[] = []) =>
  measure(`shellwire run, ${n} hosts, ${command}${extra.length ? ` ${extra.join(' ')}` : ''}`, [process.execPath, CLI, 'run', '--inventory', join(dir, `inv${n}.yaml`), ...extra, 'all', '--', command], env);

const ssh = startSshFanout();
for (const command of ['true', 'uptime']) {
  const mine = await sw(20, command, ['--fanout', '20']);
  let ref = 'n/a';
  let ratio = 'n/a';
  if ('error' in ssh) ref = `n/a (${ssh.error})`;
  else {
    const p = await measure(`parallel-ssh -p 20, ${command}`, ['parallel-ssh', '-p', '20', '-h', ssh.hosts, '-x', `-F ${ssh.sshcfg}`, '-i', command], process.env);
    ref = `${p.s.toFixed(3)} s`;
    ratio = `${(mine.s / p.s).toFixed(2)}×`;
  }
  rows.push(`| \`${command}\` on 20 hosts (--fanout 20) | ${mine.s.toFixed(3)} s | ${ref} | ${ratio} | ≤ 0.2× |`);
}
for (const n of [100, MAX]) {
  for (const extra of [[], ['--fanout', '256']]) {
    const r = await sw(n, 'true', extra);
    const target = n === 100 ? 0.5 : 3;
    rows.push(`| \`true\` on ${n} hosts${extra.length ? ` (${extra.join(' ')})` : ' (default fanout 64)'} | ${r.s.toFixed(3)} s | peak RSS ${(r.hwmKiB / 1024).toFixed(0)} MiB | ${r.ok ? 'all ok' : `FAILED ${r.note}`} | < ${target} s: ${r.s < target && r.ok ? 'PASS' : 'FAIL'} |`);
  }
}
const up = await sw(MAX, 'uptime', ['--fanout', '256']);
rows.push(`| \`uptime\` on ${MAX} hosts (--fanout 256) | ${up.s.toFixed(3)} s | peak RSS ${(up.hwmKiB / 1024).toFixed(0)} MiB | ${up.ok ? 'all ok, no EMFILE' : `FAILED ${up.note}`} | |`);

// Client memory per target: the library holding MAX open connections.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
gc();
const before = process.memoryUsage().rss;
const pool = new ConnectionPool({ connect: { token: seed.token, home } });
const hostsList = Array.from({ length: MAX }, (_, i) => ({ name: `t${i}`, address: addressOf(i), port: PORT, labels: {}, groups: [] }));
const lt0 = performance.now();
const summary = await runOn(hostsList, 'true', { pool, fanout: 256 }).result();
const libFirst = (performance.now() - lt0) / 1000;
const lt1 = performance.now();
const again = await runOn(hostsList, 'true', { pool, fanout: 256 }).result();
const libWarm = (performance.now() - lt1) / 1000;
gc();
await new Promise((r) => setTimeout(r, 200));
gc();
const after = process.memoryUsage().rss;
rows.push(`| library \`runOn\`, ${MAX} hosts, \`true\`: cold / reusing connections | ${libFirst.toFixed(3)} s / ${libWarm.toFixed(3)} s | ${summary.ok}+${again.ok} ok | | |`);
rows.push(`| client memory per open target (library, ${MAX} connections) | ${((after - before) / MAX / 1024).toFixed(1)} KiB | RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB | | |`);
await pool.close();

const table = ['| what | shellwire | reference / detail | ratio / status | target |', '|---|---|---|---|---|', ...rows].join('\n');
process.stdout.write(`\n${table}\n\nmedian of ${RUNS} runs each; the CLI is a fresh process per run (cold, like parallel-ssh).\n`);
for (const c of children) c.kill('SIGTERM');
process.exit(0);
