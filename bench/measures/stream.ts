/**
 * Rows 4a and 4b: 1 GiB of `head -c 1G /dev/zero` through the real CLI (a fresh process,
 * TLS, startup and connect included), runs interleaved with the same through
 * `ssh -c aes128-gcm` to the reference sshd. One measurement, two targets.
 */
import { CFG, pass, type Measure } from '../lib/harness.js';
import { CLI } from '../lib/daemon.js';
import { fmt, median, range, timeRun } from '../lib/util.js';

const GIB = 1024 ** 3;
const CLI_ROW = { metric: '4a. stream `head -c 1G /dev/zero`, CLI over TLS (MB/s)', target: '≥ 1000 MB/s' };
const SSH_ROW = { metric: '4b. same, vs `ssh -c aes128-gcm` (ratio)', target: '≥ 1.0× ssh' };

export const stream: Measure = {
  name: 'stream 1 GiB',
  rows: [CLI_ROW, SSH_ROW],
  daemon: 'shared',
  async run({ daemon: d, sshd, sshdNote, cliRel, row, detail }) {
    const cliArgs = [CLI, 'exec', '-n', d.address, '--', 'head', '-c', '1G', '/dev/zero'];
    const swMBs: number[] = [];
    const sshMBs: number[] = [];
    let sshError = '';
    for (let r = 0; r < CFG.streamRuns; r++) {
      const one = await timeRun(process.execPath, cliArgs, { env: d.env });
      if (one.code !== 0) throw new Error(`shellwire exec exited ${one.code} ${one.signal ?? ''}: ${one.stderr.trim()}`);
      swMBs.push(GIB / 1e6 / one.seconds);
      if (sshd && !sshError) {
        const ssh = await timeRun(sshd.ssh[0]!, [...sshd.ssh.slice(1), '-c', 'aes128-gcm@openssh.com', '127.0.0.1', 'head -c 1G /dev/zero']);
        if (ssh.code !== 0) sshError = `ssh exited ${ssh.code}: ${ssh.stderr.trim().slice(0, 120)}`;
        else sshMBs.push(GIB / 1e6 / ssh.seconds);
      }
    }
    const a = median(swMBs);
    const b = sshMBs.length ? median(sshMBs) : NaN;
    const refText = sshd ? (sshError ? `n/a (${sshError})` : `${fmt(b, 0)} (ssh aes128-gcm)`) : sshdNote;
    const ratio = Number.isFinite(b) ? `${fmt(a / b, 2)}×` : 'n/a';
    row({ ...CLI_ROW, sw: fmt(a, 0), ref: refText, ratio, result: pass(a >= 1000) });
    row({ ...SSH_ROW, sw: fmt(a, 0), ref: refText, ratio, result: Number.isFinite(b) ? pass(a / b >= 1.0) : 'n/a' });
    detail(
      `- 4: ${CFG.streamRuns} interleaved runs each of \`node ${cliRel} exec -n ${d.address} -- head -c 1G /dev/zero > /dev/null\`` +
        (sshd ? ` and \`${sshd.sshText} -c aes128-gcm@openssh.com 127.0.0.1 'head -c 1G /dev/zero' > /dev/null\`` : '') +
        `; wall time of the whole process (startup + connect included), MB = 10^6 bytes. shellwire ${range(swMBs, 0, ' MB/s')}` +
        (sshMBs.length ? `, ssh ${range(sshMBs, 0, ' MB/s')}.` : '.'),
    );
  },
};
