/**
 * Rows 9a–9c: the gateway (issue 13, docs/gateway.md) against going direct, in the same run.
 * A real `shellwire gateway` process relays to real `shellwire serve` daemons whose users.yaml
 * lets the gateway's key act as `bench`; the direct runs log in to the same daemons as `bench`
 * with the same key, so both sides run the same command under the same policy.
 *
 *   9a  exec `true` round trip on an open connection (library), through vs direct, interleaved
 *   9b  1 GiB of `head -c 1G /dev/zero` through the real CLI, through vs direct, interleaved
 *   9c  `shellwire put` of 100 MiB to 20 hosts (20 daemons on 127.0.0.2–21) through the gateway,
 *       the real CLI, vs `parallel-scp -p 20` to 20 private sshd daemons (../shared/peers
 *       settings, one folder each); whatever `put --via` does on this build is what is timed,
 *       and the bytes the operator's CLI wrote (its wchar, nearly all of it to the gateway's
 *       socket) say which it was: one stream per host, or one in all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../dist/index.js';
import { CFG, QUICK, ROUNDS, pass, type Measure } from '../lib/harness.js';
import { CLI, ROOT, benchDirs, freePort, type BenchDaemon } from '../lib/daemon.js';
import { track } from '../lib/children.js';
import { sequential } from '../lib/load.js';
import { OPERATOR, benchOperator, prepareGateway, startGateway, startHost, type BenchGateway } from '../lib/gateway.js';
import { fmt, median, range, timeRun } from '../lib/util.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const PUT_MIB = 100;
const PUT_HOSTS = 20;
const RT_ROW = { metric: '9a. exec `true` round trip through the gateway vs direct to the same daemon (ms)', target: '≤ 1.5× direct' };
const STREAM_ROW = { metric: '9b. stream `head -c 1G /dev/zero` through the gateway vs direct, CLI (MB/s)', target: '≥ 0.8× direct' };
const PUT_ROW = { metric: `9c. put ${PUT_MIB} MiB to ${PUT_HOSTS} hosts through the gateway vs \`parallel-scp -p ${PUT_HOSTS}\` direct (s)`, target: 'info (no target set)' };

/** One gateway in front of one host daemon `h01`. */
async function oneHost(): Promise<{ d: BenchDaemon; gw: BenchGateway; stop(): Promise<void> }> {
  const prepared = prepareGateway();
  const d = await startHost(prepared.keyLine);
  try {
    const gw = await startGateway(prepared, [{ name: 'h01', daemon: d }]);
    return { d, gw, stop: async () => void (await Promise.all([gw.stop(), d.stop()])) };
  } catch (err) {
    await d.stop();
    throw err;
  }
}

export const gatewayRoundTrip: Measure = {
  id: 'gateway-round-trip',
  name: 'gateway exec round trip vs direct',
  rows: [RT_ROW],
  daemon: 'own',
  async run({ sw, row, detail }) {
    const { d, gw, stop } = await oneHost();
    const identity = benchOperator().keyFile;
    let direct: Connection | null = null;
    let via: Connection | null = null;
    try {
      direct = await sw.connect({ user: OPERATOR, host: '127.0.0.1', port: d.port }, { identity, fingerprint: d.fingerprint, env: {} });
      via = await sw.connect('h01', { via: gw.via, identity, fingerprint: gw.fingerprint, env: {} });
      const conns = { direct, via };
      for (const c of [direct, via]) for (let i = 0; i < CFG.warm; i++) await c.exec('true');
      const lat = { direct: [] as number[], via: [] as number[] };
      const rate = { direct: [] as number[], via: [] as number[] };
      for (let r = 0; r < CFG.rounds; r++) {
        for (const who of r % 2 === 0 ? (['direct', 'via'] as const) : (['via', 'direct'] as const)) {
          const c = conns[who];
          const res = await sequential(CFG.seqN, () => c.exec('true'));
          lat[who].push(median(res.latMs));
          rate[who].push(res.rate);
        }
      }
      const a = median(lat.via);
      const b = median(lat.direct);
      row({ ...RT_ROW, sw: fmt(a, 3), ref: `${fmt(b, 3)} (direct)`, ratio: `${fmt(a / b, 2)}×`, result: pass(a / b <= 1.5), values: { sw: a, ref: b, ratio: a / b }, check: (v) => v.ratio <= 1.5 });
      detail(
        `- 9a: one \`shellwire gateway\` process and one daemon; library connections \`connect('h01', { via: '${OPERATOR}@GW' })\` and \`connect('${OPERATOR}@127.0.0.1:PORT')\` (same key, same host user), ` +
          `${CFG.rounds} interleaved rounds × ${CFG.seqN} sequential \`exec('true')\` (after ${CFG.warm} warm-up each); latency = median over rounds of each round's median. ` +
          `Round medians: through ${range(lat.via, 3, ' ms')}, direct ${range(lat.direct, 3, ' ms')}; rates: through ${range(rate.via, 0, '/s')}, direct ${range(rate.direct, 0, '/s')}.`,
      );
    } finally {
      await via?.close().catch(() => {});
      await direct?.close().catch(() => {});
      await stop();
    }
  },
};

export const gatewayStream: Measure = {
  id: 'gateway-stream',
  name: 'gateway stream 1 GiB vs direct',
  rows: [STREAM_ROW],
  daemon: 'own',
  async run({ cliRel, row, detail }) {
    const { d, gw, stop } = await oneHost();
    const key = benchOperator().keyFile;
    const env = { ...process.env, SHELLWIRE_HOME: benchDirs().home };
    delete env.SHELLWIRE_TOKEN;
    const args = {
      via: [CLI, 'exec', '-n', '-i', key, '--via', gw.via, 'h01', '--', 'head', '-c', '1G', '/dev/zero'],
      direct: [CLI, 'exec', '-n', '-i', key, `${OPERATOR}@${d.address}`, '--', 'head', '-c', '1G', '/dev/zero'],
    };
    const mbs = { via: [] as number[], direct: [] as number[] };
    try {
      for (let r = 0; r < CFG.streamRuns; r++) {
        for (const who of r % 2 === 0 ? (['via', 'direct'] as const) : (['direct', 'via'] as const)) {
          const one = await timeRun(process.execPath, args[who], { env });
          if (one.code !== 0) throw new Error(`shellwire exec (${who}) exited ${one.code} ${one.signal ?? ''}: ${one.stderr.trim()}`);
          mbs[who].push(GIB / 1e6 / one.seconds);
        }
      }
    } finally {
      await stop();
    }
    const a = median(mbs.via);
    const b = median(mbs.direct);
    row({ ...STREAM_ROW, sw: fmt(a, 0), ref: `${fmt(b, 0)} (direct)`, ratio: `${fmt(a / b, 2)}×`, result: pass(a / b >= 0.8), values: { sw: a, ref: b, ratio: a / b }, check: (v) => v.ratio >= 0.8 });
    detail(
      `- 9b: ${CFG.streamRuns} interleaved run(s) each of \`node ${cliRel} exec -n -i KEY --via ${OPERATOR}@GW h01 -- head -c 1G /dev/zero > /dev/null\` and the same with \`${OPERATOR}@127.0.0.1:PORT\` instead of \`--via … h01\` (the same daemon); ` +
        `wall time of the whole client process, MB = 10^6 bytes. Through ${range(mbs.via, 0, ' MB/s')}, direct ${range(mbs.direct, 0, ' MB/s')}.`,
    );
  },
};

// ------------------------------------------------------------------ 9c: put to 20 hosts

const PEERS_SH = join(ROOT, 'bench/peers.sh');
/** The 20 private sshd daemons, started once per bench process and stopped at exit. */
let sshds: { dir: string; ports: number[]; sshOpts: string; pids: number[] } | { error: string } | null = null;

function stopSshdsSync(): void {
  if (sshds && 'pids' in sshds && sshds.pids.length) spawnSync('bash', [PEERS_SH, 'fanout-stop', ...sshds.pids.map(String)], { stdio: 'ignore', timeout: 60_000 });
  if (sshds && 'pids' in sshds) sshds.pids = [];
}

async function fanoutSshds(): Promise<typeof sshds> {
  if (sshds) return sshds;
  const dir = join(benchDirs().home, 'scp-hosts');
  mkdirSync(dir, { recursive: true });
  const ports: number[] = [];
  while (ports.length < PUT_HOSTS) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const r = spawnSync('bash', [PEERS_SH, 'fanout-start', dir, ...ports.map(String)], { encoding: 'utf8', timeout: 60_000 });
  const kv = Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (r.status !== 0 || !kv.SSH_OPTS) {
    sshds = { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' / ') };
    return sshds;
  }
  sshds = { dir, ports, sshOpts: kv.SSH_OPTS, pids: (kv.PIDS ?? '').split(/\s+/).filter(Boolean).map(Number) };
  if (!process.listeners('exit').includes(stopSshdsSync)) process.on('exit', stopSshdsSync);
  writeFileSync(join(dir, 'hosts'), ports.map((p) => `127.0.0.1:${p} root\n`).join(''));
  return sshds;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

let source: { path: string; sha: string } | null = null;
async function sourceFile(): Promise<{ path: string; sha: string }> {
  if (source && existsSync(source.path)) return source;
  const path = join(benchDirs().home, `put-${PUT_MIB}m.bin`);
  const fd = openSync(path, 'w');
  for (let i = 0; i < PUT_MIB; i++) writeSync(fd, randomBytes(MIB));
  closeSync(fd);
  source = { path, sha: await sha256File(path) };
  return source;
}

/** Wall time of a child process (stdio ignored but stderr kept); rejects on a non-zero exit. */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv, out?: { stderr: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = track(spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4096)));
    // The fan-out report (stdout) names each failed host's error: its start is kept.
    child.stdout!.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(0, 4096)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${args[0] === CLI ? 'shellwire put' : file} exited ${code ?? signal}: ${stdout.trim().slice(0, 300)} ${stderr.trim().slice(0, 300)}`));
      else {
        if (out) out.stderr = stderr;
        resolve((performance.now() - started) / 1000);
      }
    });
  });
}

let putVerified = false;
let putRounds = 0;

interface PutFleet {
  hosts: Array<{ name: string; daemon: BenchDaemon; dir: string }>;
  gw: BenchGateway;
}
let putFleetStarted: Promise<PutFleet> | null = null;

/**
 * 20 daemons on 127.0.0.2–21, each with its own folder as `bench`'s home (where the relative
 * path goes), and a gateway in front of them: started once (a few at a time: 20 Node
 * processes starting at once on a small loaded machine miss the start timeout) and kept for
 * every round.
 */
function putFleet(): Promise<PutFleet> {
  putFleetStarted ??= (async () => {
    const swDir = join(benchDirs().home, 'sw-hosts');
    const prepared = prepareGateway();
    const hosts: PutFleet['hosts'] = [];
    try {
      for (let first = 0; first < PUT_HOSTS; first += 5) {
        const batch = await Promise.allSettled(
          Array.from({ length: Math.min(5, PUT_HOSTS - first) }, async (_, k) => {
            const i = first + k;
            const name = `h${String(i + 1).padStart(2, '0')}`;
            const dir = join(swDir, name);
            mkdirSync(dir, { recursive: true });
            return { name, dir, daemon: await startHost(prepared.keyLine, { host: `127.0.0.${i + 2}`, home: dir }) };
          }),
        );
        for (const s of batch) if (s.status === 'fulfilled') hosts.push(s.value);
        const failed = batch.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failed) throw failed.reason;
      }
      return { hosts, gw: await startGateway(prepared, hosts) };
    } catch (err) {
      await Promise.all(hosts.map((h) => h.daemon.stop()));
      putFleetStarted = null;
      throw err;
    }
  })();
  return putFleetStarted;
}

async function stopPutFleet(): Promise<void> {
  const started = putFleetStarted;
  putFleetStarted = null;
  const fleet = await started?.catch(() => null);
  if (!fleet) return;
  await fleet.gw.stop();
  await Promise.all(fleet.hosts.map((h) => h.daemon.stop()));
  rmSync(join(benchDirs().home, 'sw-hosts'), { recursive: true, force: true });
  stopSshdsSync();
  sshds = null;
}

export const gatewayPut: Measure = {
  id: 'gateway-put',
  name: `gateway put ${PUT_MIB} MiB to ${PUT_HOSTS} hosts vs parallel-scp`,
  rows: [PUT_ROW],
  daemon: 'own',
  async run({ cliRel, row, detail }) {
    const src = await sourceFile();
    const { home } = benchDirs();
    const fleet = await putFleet();
    const { hosts, gw } = fleet;
    try {
      // The operator's own inventory names the same hosts (what `put TARGETS:…` expands);
      // `--via GW` sends them through the gateway, `--via none` (the diagnostic) directly.
      const inventory = join(home, 'operator-inventory.yaml');
      writeFileSync(inventory, ['hosts:', ...hosts.map((h) => `  ${h.name}: { address: ${h.daemon.address.slice(0, h.daemon.address.lastIndexOf(':'))}, port: ${h.daemon.port}, user: ${OPERATOR}, groups: [bench] }`), ''].join('\n'));
      const env = { ...process.env, SHELLWIRE_HOME: home };
      delete env.SHELLWIRE_TOKEN;
      const putArgs = (via: string) => [CLI, 'put', '--quiet', '-i', benchOperator().keyFile, '--inventory', inventory, '--via', via, src.path, '@bench:put.bin'];
      const scp = await fanoutSshds();
      const scpArgs = scp && 'ports' in scp ? ['-h', join(scp.dir, 'hosts'), '-p', String(PUT_HOSTS), '-t', '0', '-x', `${scp.sshOpts} -c aes128-gcm@openssh.com`, src.path, 'put.bin'] : null;
      const clean = () => {
        for (const h of hosts) rmSync(join(h.dir, 'put.bin'), { force: true });
        if (scp && 'ports' in scp) for (let i = 1; i <= PUT_HOSTS; i++) rmSync(join(scp.dir, `h${i}`, 'put.bin'), { force: true });
        spawnSync('sync');
      };
      const swCopiesOk = async (who: string) => {
        for (const h of hosts) if ((await sha256File(join(h.dir, 'put.bin'))) !== src.sha) throw new Error(`${who}: ${h.name}'s copy has another SHA-256 than the source`);
      };
      const runs = QUICK ? 1 : CFG.fileRuns;
      const secs = { via: [] as number[], direct: [] as number[], scp: [] as number[] };
      const gwRead: number[] = [];
      /** A failed `put --via` (its report): the row says so, the other figures still come. */
      let viaError = '';
      const order = ['via', 'scp', 'direct'] as const;
      for (let r = 0; r < runs; r++) {
        for (const who of r % 2 === 0 ? order : [...order].reverse()) {
          if (who === 'scp' && !scpArgs) continue;
          // The direct put is a diagnostic: once per bench run is enough (it keeps 3 rounds short).
          if (who === 'direct' && (putRounds > 0 || r > 0)) continue;
          clean();
          if (who === 'via') {
            // The CLI under a shell that prints its wchar after waiting for it (a waited
            // child's I/O counts in the parent's /proc/PID/io).
            const out = { stderr: '' };
            try {
              secs.via.push(await timed('/bin/sh', ['-c', '"$@"; s=$?; grep "^wchar:" /proc/$$/io >&2; exit $s', 'sh', process.execPath, ...putArgs(gw.via)], env, out));
            } catch (err) {
              viaError ||= (err as Error).message.replace(/\s+/g, ' ');
              continue;
            }
            const wchar = /^wchar:\s+(\d+)/m.exec(out.stderr);
            if (wchar) gwRead.push(Number(wchar[1]));
            if (!putVerified) await swCopiesOk('put --via');
          } else if (who === 'direct') {
            secs.direct.push(await timed(process.execPath, putArgs('none'), env));
            if (!putVerified) await swCopiesOk('put --via none');
          } else {
            secs.scp.push(await timed('parallel-scp', scpArgs!, process.env));
            if (!putVerified) for (let i = 1; i <= PUT_HOSTS; i++) if ((await sha256File(join((scp as { dir: string }).dir, `h${i}`, 'put.bin'))) !== src.sha) throw new Error(`parallel-scp's copy on host ${i} differs from the source`);
          }
        }
        putVerified = true;
      }
      clean();
      const a = median(secs.via);
      const read = median(gwRead) / MIB;
      const mode = !gwRead.length
        ? 'unknown (no run succeeded)'
        : read > PUT_MIB * PUT_HOSTS * 0.5
          ? `one stream per host from the operator, the gateway relaying each (the CLI wrote ${fmt(read, 0)} MiB for ${PUT_MIB} MiB × ${PUT_HOSTS})`
          : `the data crossed the operator's link once, the gateway fanning it out (the CLI wrote ${fmt(read, 0)} MiB for ${PUT_MIB} MiB × ${PUT_HOSTS})`;
      const b = scpArgs ? median(secs.scp) : NaN;
      const ref = scpArgs ? `${fmt(b, 2)} (parallel-scp)` : `n/a (${scp && 'error' in scp ? scp.error : 'no sshd'})`;
      if (viaError) {
        row({ ...PUT_ROW, sw: `error: ${viaError.slice(0, 200)}`, ref, ratio: '', result: 'ERROR' });
      } else {
        // Times: the ratio is shellwire's speed relative to parallel-scp's (> 1 = faster).
        row({ ...PUT_ROW, sw: fmt(a, 2), ref, ratio: scpArgs ? `${fmt(b / a, 2)}× speed` : 'n/a', result: scpArgs ? 'info' : 'n/a', values: { sw: a, ref: b, ratio: b / a } });
      }
      detail(
        `- 9c: ${runs} interleaved run(s) each of a ${PUT_MIB} MiB random file to ${PUT_HOSTS} hosts, after an untimed \`sync\`: ` +
          `\`node ${cliRel} put --quiet -i KEY --inventory INV --via ${OPERATOR}@GW FILE '@bench:put.bin'\` (${PUT_HOSTS} daemons on 127.0.0.2–${PUT_HOSTS + 1}, one gateway process; fsync before rename; every copy's SHA-256 checked once)` +
          (scpArgs ? ` and \`parallel-scp ${scpArgs.slice(0, -2).join(' ').replaceAll(join(benchDirs().home, 'scp-hosts'), 'DIR')}\` to ${PUT_HOSTS} private sshd daemons (../shared/peers settings; pscp itself adds \`scp -qC\`: compression on)` : '') +
          `. Through the gateway ${secs.via.length ? range(secs.via, 2, ' s') : 'failed'}${secs.scp.length ? `, parallel-scp ${range(secs.scp, 2, ' s')}` : ''}; ${secs.direct.length ? `diagnostic, the same put directly (\`--via none\`, ${PUT_HOSTS} streams from the client): ${range(secs.direct, 2, ' s')}. ` : ''}` +
          `Mode measured: ${mode}.` + (viaError ? ` put --via failed: ${viaError.slice(0, 600)}` : ''),
      );
    } finally {
      // The daemons and the gateway serve every round; the last round stops them.
      if (++putRounds >= ROUNDS) await stopPutFleet();
    }
  },
};
