/**
 * Rows 11a–11d: `shellwire run --via nats://… NAMES -- true` (one signed broadcast, the
 * default) on 1,000 and 10,000 agents connected to ONE nats-server, against the same 1,000
 * hosts over direct TCP in the same run (bench/lib/fleet-hosts.ts, the daemons of bench/fleet.ts),
 * and the local spawn floor for 10,000 commands (bench/spawn-floor.mjs) — issue 15, item 6.
 *
 * - Agents: bench/nats-agents.mjs, AGENTS_PER_PROCESS per process, each with its own NATS
 *   connection, NatsAgent and broadcast executor (the agent path of `serve --nats`), one Server
 *   (identity, users.yaml, spawner) per process: see that file for why.
 * - The client is the real CLI, a fresh process per run, given the agent names (no discovery);
 *   `-i KEY -l ops`, every agent pinned in known_hosts. Time = wall time of the process.
 * - Direct: `run --inventory INV all -- true` (default fanout 64) on 1,000 daemons, 50 per
 *   process on 127.0.x.y, token login, interleaved with the 1,000-agent runs.
 * - Broker memory: nats-server's VmRSS (/proc) with the agents connected and idle, and its VmHWM
 *   after the runs. Client memory per agent: the library (`runBroadcast` in this process, its
 *   own NATS connection) to 10,000 agents, (RSS after − RSS before) / 10,000 after a GC, the
 *   summary still held.
 * - Spawn floor: two lean `node bench/spawn-floor.mjs 5000 1` at once (one per core), wall time.
 *
 * File descriptors: nats-server ≈ 1 per agent, an agent process ≈ 1 per agent + its commands';
 * all run under `ulimit -n` raised to the hard limit (20,000 here). A 10,000-name request is one
 * message per shard (up to 256), each about 13 KB (the signed manifest and its shard's names).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { QUICK, log, pass, type Measure } from '../lib/harness.js';
import { CLI, ROOT, benchDirs, freePort } from '../lib/daemon.js';
import { track, waitExit } from '../lib/children.js';
import { addressOf, hardLimit, startDaemons, timed, withUlimit } from '../lib/fleet-hosts.js';
import { fmt, median, procStatusKiB, range } from '../lib/util.js';

const SMALL = 1_000;
const LARGE = Number(process.env.BENCH_NATS_AGENTS ?? 10_000);
const AGENTS_PER_PROCESS = 250;
const RUN_TIMEOUT_S = 120;
const DIRECT_PORT = 50_200;
const RUNS = QUICK ? 1 : 3;
const NATS_SERVER = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';

const SMALL_ROW = { metric: `11a. \`run --via nats://… true\` (broadcast) on ${SMALL.toLocaleString('en')} agents vs the same over direct TCP (s)`, target: '≤ 1× direct' };
const LARGE_ROW = { metric: `11b. the same on ${LARGE.toLocaleString('en')} agents, one nats-server, vs the local spawn floor for ${LARGE.toLocaleString('en')} commands (s)`, target: '< 15 s' };
const MEM_ROW = { metric: `11c. client memory per agent, library \`runBroadcast\` to ${LARGE.toLocaleString('en')} agents (KiB)`, target: '≤ 16 KiB' };
const BROKER_ROW = { metric: `11d. nats-server RSS with ${SMALL.toLocaleString('en')} / ${LARGE.toLocaleString('en')} agents connected (MiB)`, target: 'info (no target set)' };

const names = (n: number) => Array.from({ length: n }, (_, i) => `a${String(i).padStart(5, '0')}`);

interface Broker { url: string; pid: number; child: ChildProcess; slowConsumers(): number; stop(): Promise<void> }

async function startBroker(dir: string): Promise<Broker> {
  const port = await freePort();
  const conf = join(dir, 'nats.conf');
  // max_payload stated (the default, 1 MiB); max_connections default 64K.
  writeFileSync(conf, `listen: "127.0.0.1:${port}"\nmax_payload: 1048576\n`);
  const [file, args] = withUlimit([NATS_SERVER, '-c', conf]);
  const child = track(spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let out = '';
  let slow = 0;
  child.stderr!.on('data', (c: Buffer) => {
    const text = c.toString();
    slow += (text.match(/Slow Consumer/gi) ?? []).length;
    out = (out + text).slice(-8000);
  });
  const deadline = Date.now() + 10_000;
  while (!/Server is ready/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `nats://127.0.0.1:${port}`, pid: child.pid!, child, slowConsumers: () => slow, stop: async () => { child.kill('SIGTERM'); await waitExit(child, 5_000); } };
}

/** Agents `from`…`to−1` in processes of AGENTS_PER_PROCESS; resolves when all are connected. */
async function startAgents(stateDir: string, url: string, from: number, to: number, children: ChildProcess[]): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (let first = from; first < to; first += AGENTS_PER_PROCESS) {
    const [file, args] = withUlimit([process.execPath, join(ROOT, 'bench/nats-agents.mjs'), stateDir, url, String(first), String(Math.min(AGENTS_PER_PROCESS, to - first))]);
    const child = track(spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT }));
    children.push(child);
    jobs.push(new Promise((ok, fail) => {
      child.stdout!.on('data', (c: Buffer) => c.toString().includes('READY') && ok());
      child.once('exit', (code) => fail(new Error(`agent host process exited ${code}`)));
    }));
    // Two processes starting at a time: they compete for the same two cores anyway.
    if (jobs.length % 2 === 0) await jobs[jobs.length - 1];
  }
  await Promise.all(jobs);
}

/** Two lean spawn-floor processes (one per core) doing n/2 commands each: wall seconds. */
async function spawnFloor(n: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all([0, 1].map(() => new Promise<void>((ok, fail) => {
    const child = track(spawn(process.execPath, [join(ROOT, 'bench/spawn-floor.mjs'), String(n / 2), '1'], { stdio: ['ignore', 'ignore', 'inherit'] }));
    child.once('exit', (code) => (code === 0 ? ok() : fail(new Error(`spawn-floor.mjs exited ${code}`))));
  })));
  return (performance.now() - t0) / 1000;
}

export const natsFleet: Measure = {
  id: 'nats-fleet',
  name: 'NATS fleet: run on 1,000 and 10,000 agents vs direct TCP',
  rows: [SMALL_ROW, LARGE_ROW, MEM_ROW, BROKER_ROW],
  daemon: 'own',
  async run({ sw, cliRel, row, detail }) {
    const { generateKeyPair, parsePrivateKey } = await import(join(ROOT, 'dist/auth/ssh-key.js')) as typeof import('../../dist/auth/ssh-key.js');
    const { keySigner } = await import(join(ROOT, 'dist/auth/broadcast-auth.js')) as typeof import('../../dist/auth/broadcast-auth.js');
    const { connectNats } = await import(join(ROOT, 'dist/transport/nats-connect.js')) as typeof import('../../dist/transport/nats-connect.js');
    const { Server } = await import(join(ROOT, 'dist/server/index.js')) as typeof import('../../dist/server/index.js');
    const base = join(benchDirs().home, 'nats-fleet');
    const agentState = join(base, 'agents');
    const directState = join(base, 'direct');
    const home = join(base, 'client');
    for (const d of [agentState, directState, home]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair('ops@bench');
    const keyFile = join(home, 'id_ops');
    writeFileSync(keyFile, pair.privateText, { mode: 0o600 });
    writeFileSync(join(agentState, 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    keys: ["${pair.publicLine}"]\n`, { mode: 0o600 });
    // The agents' identity (made now, so known_hosts can pin it before they start) and the direct daemons'.
    const agentSeed = await Server.create({ stateDir: agentState, port: 0, audit: false });
    const directSeed = await Server.create({ stateDir: directState, port: 0, audit: false });
    const agentFp = agentSeed.identity.fingerprint;
    await agentSeed.close(0);
    await directSeed.close(0);
    writeFileSync(join(home, 'known_hosts'),
      names(LARGE).map((n) => `nats:${n} ${agentFp}\n`).join('') + Array.from({ length: SMALL }, (_, i) => `${addressOf(i)}:${DIRECT_PORT} ${directSeed.identity.fingerprint}\n`).join(''));
    writeFileSync(join(home, 'inv.yaml'), `defaults: { port: ${DIRECT_PORT} }\nhosts:\n${Array.from({ length: SMALL }, (_, i) => `  t${String(i + 1).padStart(4, '0')}: { address: ${addressOf(i)} }\n`).join('')}`);
    const env = { ...process.env, SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '', NO_COLOR: '1' };
    delete env.SHELLWIRE_TOKEN;
    const directEnv = { ...env, SHELLWIRE_TOKEN: directSeed.token };

    const agentProcs: ChildProcess[] = [];
    const directProcs: ChildProcess[] = [];
    const broker = await startBroker(base);
    const stopAll = async (procs: ChildProcess[]) => {
      for (const c of procs) if (c.exitCode === null) c.kill('SIGTERM');
      await Promise.all(procs.map((c) => waitExit(c, 10_000)));
      procs.length = 0;
    };
    // The CLI waits --timeout (+ 5 s) for answers: long enough that a slow 10,000-agent run is
    // measured (and fails its row on time) instead of being cut off and reported as a failure.
    const natsRun = async (n: number) => {
      const r = await timed([process.execPath, CLI, 'run', '--via', broker.url, '-i', keyFile, '-l', 'ops', '--timeout', String(RUN_TIMEOUT_S), names(n).join(','), '--', 'true'], env, { stdoutTail: true });
      // Failures print last in the grouped output: their lines say why (the code and message).
      if (r.code !== 0) throw new Error(`run --via nats on ${n} agents exited ${r.code} after ${fmt(r.s, 2)} s: ${r.stderr.trim().split('\n').slice(-1).join('')}; first failure: ${r.stdout.trim().split('\n').slice(-2).join(' / ').slice(0, 400)}; nats-server logged ${broker.slowConsumers()} slow consumer(s) so far`);
      return r;
    };
    try {
      // ---------------------------------------------------------------- 1,000: NATS vs direct
      let t0 = performance.now();
      await startAgents(agentState, broker.url, 0, SMALL, agentProcs);
      const upSmall = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 1_000));
      const brokerSmall = procStatusKiB(broker.pid, 'VmRSS');
      t0 = performance.now();
      await startDaemons(SMALL, directState, DIRECT_PORT, (c) => directProcs.push(track(c)));
      const upDirect = (performance.now() - t0) / 1000;
      log(`nats-fleet: ${SMALL} agents up in ${fmt(upSmall, 1)} s, ${SMALL} direct daemons in ${fmt(upDirect, 1)} s`);
      await natsRun(SMALL); // warm-up (page cache, the broker's first interest graph)
      const small = { nats: [] as number[], direct: [] as number[], natsHwm: 0, directHwm: 0, directFailures: [] as string[] };
      for (let i = 0; i < RUNS; i++) {
        for (const who of i % 2 === 0 ? (['nats', 'direct'] as const) : (['direct', 'nats'] as const)) {
          if (who === 'nats') {
            const r = await natsRun(SMALL);
            small.nats.push(r.s);
            small.natsHwm = Math.max(small.natsHwm, r.hwmKiB);
          } else {
            const r = await timed([process.execPath, CLI, 'run', '--inventory', join(home, 'inv.yaml'), 'all', '--', 'true'], directEnv);
            // A direct host that did not answer is the reference's failure: kept in the figures and said.
            if (r.code !== 0) small.directFailures.push(r.stderr.trim().split('\n').slice(-1).join(' / '));
            small.direct.push(r.s);
            small.directHwm = Math.max(small.directHwm, r.hwmKiB);
          }
        }
      }
      await stopAll(directProcs);
      const a = median(small.nats);
      const b = median(small.direct);
      row({ ...SMALL_ROW, sw: fmt(a, 2), ref: `${fmt(b, 2)} (direct TCP${small.directFailures.length ? `, ${small.directFailures.length}/${RUNS} runs not all ok` : ''})`, ratio: `${fmt(a / b, 2)}×`, result: pass(a <= b), values: { sw: a, ref: b, ratio: a / b }, check: (v) => v.ratio <= 1 });
      detail(
        `- 11a: \`node ${cliRel} run --via nats://127.0.0.1:PORT -i KEY -l ops --timeout ${RUN_TIMEOUT_S} a00000,…,a00999 -- true\` (a fresh CLI process per run; names given, no discovery) ` +
          `vs \`node ${cliRel} run --inventory INV all -- true\` (default fanout 64, token login) on ${SMALL} daemons (50 Server instances per process on 127.0.x.y), ` +
          `${RUNS} interleaved runs each after one warm-up: NATS ${range(small.nats, 2, ' s')}, direct ${range(small.direct, 2, ' s')}; ` +
          `CLI peak RSS NATS ${fmt(small.natsHwm / 1024, 0)} MiB, direct ${fmt(small.directHwm / 1024, 0)} MiB. ` +
          `Agents: ${AGENTS_PER_PROCESS} per process (bench/nats-agents.mjs: own NATS connection + NatsAgent + broadcast executor each, one Server per process); up in ${fmt(upSmall, 1)} s; direct daemons up in ${fmt(upDirect, 1)} s.` +
          (small.directFailures.length ? ` Direct runs NOT all ok: ${small.directFailures.join('; ')}.` : ''),
      );

      // ---------------------------------------------------------------- 10,000
      t0 = performance.now();
      await startAgents(agentState, broker.url, SMALL, LARGE, agentProcs);
      const upLarge = (performance.now() - t0) / 1000 + upSmall;
      await new Promise((r) => setTimeout(r, 2_000));
      const brokerLarge = procStatusKiB(broker.pid, 'VmRSS');
      const agentsRss = agentProcs.reduce((s, c) => s + procStatusKiB(c.pid!, 'VmRSS'), 0);
      log(`nats-fleet: ${LARGE} agents up (${fmt(upLarge, 1)} s of starting); broker RSS ${fmt(brokerLarge / 1024, 0)} MiB`);
      // A failed 10,000-agent run is this row's FAIL (with what the CLI said), not the end of the measure.
      const large: number[] = [];
      let largeHwm = 0;
      let largeFailure = '';
      for (let i = 0; i <= RUNS && !largeFailure; i++) {
        try {
          const r = await natsRun(LARGE);
          if (i > 0) large.push(r.s); // the first is the warm-up
          largeHwm = Math.max(largeHwm, r.hwmKiB);
        } catch (err) {
          largeFailure = (err as Error).message;
        }
      }
      const floor = await spawnFloor(LARGE);
      if (largeFailure) {
        row({ ...LARGE_ROW, sw: `failed: ${largeFailure.slice(0, 600)}`, ref: `${fmt(floor, 2)} (spawn floor, 2 lean processes)`, ratio: '', result: 'FAIL' });
      } else {
        const L = median(large);
        row({ ...LARGE_ROW, sw: fmt(L, 2), ref: `${fmt(floor, 2)} (spawn floor, 2 lean processes)`, ratio: `${fmt(L / floor, 2)}×`, result: pass(L < 15), values: { sw: L, ref: floor, ratio: L / floor }, check: (v) => v.sw < 15 });
      }
      detail(
        `- 11b: the same CLI run with ${LARGE} names (${RUNS} runs after one warm-up): ${large.length ? range(large, 2, ' s') : 'none completed'}; CLI peak RSS ${fmt(largeHwm / 1024, 0)} MiB. ` +
          `${LARGE / AGENTS_PER_PROCESS} agent processes, together ${fmt(agentsRss / 1024, 0)} MiB RSS (${fmt(agentsRss / LARGE, 1)} KiB per agent, one Server each process included). ` +
          `Spawn floor: two \`node bench/spawn-floor.mjs ${LARGE / 2} 1\` at once (\`spawn('/bin/sh', ['-c', 'true'])\` one after another, one per core), wall time.`,
      );

      // ---------------------------------------------------------------- client memory (library)
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const key = parsePrivateKey(readFileSync(keyFile, 'utf8'));
      const nc = await connectNats({ servers: broker.url, name: 'bench library client' });
      let perAgentKiB = NaN;
      const rss = { before: 0, after: 0 };
      let libSeconds = 0;
      let libOk = 0;
      try {
        const all = names(LARGE);
        // One small run first, so nats.js, the codecs and the known_hosts parser are loaded before "before".
        await sw.runBroadcast(all.slice(0, 10), 'true', { connection: nc, signer: keySigner(key), user: 'ops', knownHostsFile: join(home, 'known_hosts'), timeoutMs: 30_000, outputEvents: false }).result();
        gc();
        gc();
        rss.before = process.memoryUsage().rss;
        const lt0 = performance.now();
        const summary = await sw.runBroadcast(all, 'true', { connection: nc, signer: keySigner(key), user: 'ops', knownHostsFile: join(home, 'known_hosts'), timeoutMs: 30_000, outputEvents: false }).result();
        libSeconds = (performance.now() - lt0) / 1000;
        libOk = summary.ok;
        gc();
        await new Promise((r) => setTimeout(r, 200));
        gc();
        rss.after = process.memoryUsage().rss;
        perAgentKiB = (rss.after - rss.before) / LARGE / 1024;
        void summary.results.length; // held until after the measurement
      } finally {
        await nc.close();
      }
      row({ ...MEM_ROW, sw: fmt(perAgentKiB, 2), ref: `RSS ${fmt(rss.before / 2 ** 20, 0)} → ${fmt(rss.after / 2 ** 20, 0)} MiB`, ratio: '', result: pass(perAgentKiB <= 16), values: { sw: perAgentKiB }, check: (v) => v.sw <= 16 });
      detail(`- 11c: in the bench process, \`runBroadcast(${LARGE} names, 'true', { connection, signer: keySigner(key), … })\` over its own NATS connection (${fmt(libSeconds, 2)} s; ${libOk} of ${LARGE} ok${libOk < LARGE ? ': the others unreachable, so the figure covers their HostResults, not their answers' : ''}); (RSS after − before) / ${LARGE}, after a forced GC, the summary (${LARGE} HostResults) still held.`);

      const brokerHwm = procStatusKiB(broker.pid, 'VmHWM');
      row({ ...BROKER_ROW, sw: `${fmt(brokerSmall / 1024, 0)} / ${fmt(brokerLarge / 1024, 0)}`, ref: `peak ${fmt(brokerHwm / 1024, 0)} MiB`, ratio: '', result: 'info', values: { sw: brokerLarge / 1024 } });
      detail(`- 11d: nats-server ${spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' }).stdout.trim()} (Debian), one server, default limits (max_connections 64K, max_payload 1 MiB), fd limit ${hardLimit}; VmRSS with the agents connected and idle (presence every 30 s), VmHWM after all runs.`);
    } finally {
      await stopAll(agentProcs);
      await stopAll(directProcs);
      await broker.stop();
    }
  },
};
