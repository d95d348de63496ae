/**
 * Rows 4a, 4b and 4d: 1 GiB of `head -c 1G /dev/zero` through the real CLI (a fresh process,
 * TLS, startup and connect included), runs interleaved with the same through
 * `ssh -c aes128-gcm` to the reference sshd and with the Node TLS floor: bench/tls-floor.mjs,
 * two plain `node` processes moving 1 GiB over TLS 1.3 (TLS_AES_128_GCM_SHA256) on loopback
 * with no framing, its reader timed the same way as the CLI (a fresh process, startup and
 * handshake included).
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { CLI, ROOT, benchDirs } from '../lib/daemon.js';
import { nextLineOf, track } from '../lib/children.js';
import { fmt, median, range, timeRun } from '../lib/util.js';

const GIB = 1024 ** 3;
const FLOOR_SCRIPT = join(ROOT, 'bench/tls-floor.mjs');
const CLI_ROW = { metric: '4a. stream `head -c 1G /dev/zero`, CLI over TLS (MB/s)', target: '≥ 1000 MB/s' };
const SSH_ROW = { metric: '4b. same, vs `ssh -c aes128-gcm` (ratio)', target: '≥ 1.0× ssh' };
const FLOOR_ROW = { metric: '4d. same, vs the Node TLS floor (2 lean `node` processes, TLS 1.3 AES-128-GCM, no framing)', target: '≥ 0.85× floor' };

/** The floor's writer: a lean `node` TLS server that sends 1 GiB to each connection. */
async function startFloorServer(): Promise<{ port: number; stop(): void }> {
  const { home } = benchDirs();
  const key = join(home, 'tls-floor-key.pem');
  const cert = join(home, 'tls-floor-cert.pem');
  const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=tls-floor', '-days', '2', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (ssl.status !== 0) throw new Error(`openssl req failed (needed for the TLS floor's certificate): ${(ssl.stderr || ssl.error?.message || '').trim().slice(0, 120)}`);
  const child = track(spawn(process.execPath, [FLOOR_SCRIPT, 'server', key, cert, String(GIB)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const line = await nextLineOf(child, 10_000, 'the TLS floor server');
  const port = Number(/^port (\d+)$/.exec(line)?.[1]);
  if (!port) throw new Error(`tls-floor.mjs server said "${line}"`);
  return { port, stop: () => child.stdin!.end() };
}

export const stream: Measure = {
  id: 'stream',
  name: 'stream 1 GiB',
  rows: [CLI_ROW, SSH_ROW, FLOOR_ROW],
  daemon: 'shared',
  async run({ daemon: d, sshd, sshdNote, cliRel, row, detail }) {
    const cliArgs = [CLI, 'exec', '-n', d.address, '--', 'head', '-c', '1G', '/dev/zero'];
    const floor = await startFloorServer();
    const swMBs: number[] = [];
    const sshMBs: number[] = [];
    const floorMBs: number[] = [];
    let sshError = '';
    try {
      for (let r = 0; r < CFG.streamRuns; r++) {
        const one = await timeRun(process.execPath, cliArgs, { env: d.env });
        if (one.code !== 0) throw new Error(`shellwire exec exited ${one.code} ${one.signal ?? ''}: ${one.stderr.trim()}`);
        swMBs.push(GIB / 1e6 / one.seconds);
        const f = await timeRun(process.execPath, [FLOOR_SCRIPT, 'client', String(floor.port), String(GIB)]);
        if (f.code !== 0) throw new Error(`tls-floor.mjs client exited ${f.code}: ${f.stderr.trim().slice(0, 120)}`);
        floorMBs.push(GIB / 1e6 / f.seconds);
        if (sshd && !sshError) {
          const ssh = await timeRun(sshd.ssh[0]!, [...sshd.ssh.slice(1), '-c', 'aes128-gcm@openssh.com', '127.0.0.1', 'head -c 1G /dev/zero']);
          if (ssh.code !== 0) sshError = `ssh exited ${ssh.code}: ${ssh.stderr.trim().slice(0, 120)}`;
          else sshMBs.push(GIB / 1e6 / ssh.seconds);
        }
      }
    } finally {
      floor.stop();
    }
    const a = median(swMBs);
    const b = sshMBs.length ? median(sshMBs) : NaN;
    const fl = median(floorMBs);
    const refText = sshd ? (sshError ? `n/a (${sshError})` : `${fmt(b, 0)} (ssh aes128-gcm)`) : sshdNote;
    const ratio = Number.isFinite(b) ? `${fmt(a / b, 2)}×` : 'n/a';
    row({ ...CLI_ROW, sw: fmt(a, 0), ref: refText, ratio, result: pass(a >= 1000), values: { sw: a, ref: b, ratio: a / b }, check: (v) => v.sw >= 1000 });
    row({ ...SSH_ROW, sw: fmt(a, 0), ref: refText, ratio, result: Number.isFinite(b) ? pass(a / b >= 1.0) : 'n/a', values: { sw: a, ref: b, ratio: a / b }, ...(Number.isFinite(b) ? { check: (v) => v.ratio >= 1.0 } : {}) });
    row({ ...FLOOR_ROW, sw: fmt(a, 0), ref: `${fmt(fl, 0)} (Node TLS floor)`, ratio: `${fmt(a / fl, 2)}×`, result: pass(a / fl >= 0.85), values: { sw: a, ref: fl, ratio: a / fl }, check: (v) => v.ratio >= 0.85 });
    detail(
      `- 4: ${CFG.streamRuns} interleaved runs each of \`node ${cliRel} exec -n ${d.address} -- head -c 1G /dev/zero > /dev/null\`, ` +
        `\`node bench/tls-floor.mjs client PORT 1073741824\` (against \`node bench/tls-floor.mjs server\`: TLS 1.3 TLS_AES_128_GCM_SHA256, 64 KiB writes, P-256 certificate)` +
        (sshd ? ` and \`${sshd.sshText} -c aes128-gcm@openssh.com 127.0.0.1 'head -c 1G /dev/zero' > /dev/null\`` : '') +
        `; wall time of the whole client process (startup + connect included), MB = 10^6 bytes. shellwire ${range(swMBs, 0, ' MB/s')}, TLS floor ${range(floorMBs, 0, ' MB/s')}` +
        (sshMBs.length ? `, ssh ${range(sshMBs, 0, ' MB/s')}.` : '.'),
    );
  },
};
