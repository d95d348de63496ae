/**
 * Rows 3a–3d: `exec('true')` with 32 and 256 always in flight on one connection (the client is
 * the library in the bench process), against the local spawn floor with 32 in flight and
 * against an ssh ControlMaster with 32 and 256 in flight. Both references run in a lean `node`
 * process (bench/pool.mjs: same driver, piped stdio, awaited to 'close'); the kinds alternate
 * batch by batch so they see the same machine.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CFG, pass, type Measure } from '../lib/harness.js';
import { ROOT } from '../lib/daemon.js';
import { pool } from '../lib/load.js';
import { startSshMaster, type SshMaster } from '../lib/ssh-master.js';
import { fmt, median, range } from '../lib/util.js';

const POOL = join(ROOT, 'bench/pool.mjs');
const FLOOR_ROW = { metric: '3a. 32 concurrent `true` on one connection vs local spawn floor, 32 in flight (commands/s)', target: '≥ 1.0× floor' };
const SSH32_ROW = { metric: '3b. same, vs ssh ControlMaster, 32 in flight (commands/s)', target: '≥ 2.5× ssh' };
const SSH256_ROW = { metric: '3c. 256 concurrent `true` on one connection vs ssh ControlMaster, 256 in flight (commands/s)', target: 'info' };
const FLAT_ROW = { metric: '3d. 256 in flight against 32 in flight, shellwire (rate ratio)', target: 'does not collapse (≥ 0.8×)' };

/** bench/pool.mjs in a lean `node`: `total` runs of `argv` with `concurrency` in flight; runs per second. */
async function leanPool(concurrency: number, total: number, argv: string[]): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [POOL, String(concurrency), String(total), ...argv], { timeout: 300_000, maxBuffer: 1 << 20 }).catch((err: Error & { stderr?: string }) => {
    throw new Error(`pool.mjs ${concurrency} ${argv.join(' ')}: ${(err.stderr || err.message).trim().split('\n').slice(-2).join(' / ')}`);
  });
  return (JSON.parse(stdout) as { rate: number }).rate;
}

export const concurrent: Measure = {
  id: 'concurrent',
  name: '32 and 256 concurrent',
  rows: [FLOOR_ROW, SSH32_ROW, SSH256_ROW, FLAT_ROW],
  daemon: 'shared',
  async run({ conn: c, sshd, sshdNote, row, detail }) {
    const swExec = () => c.exec('true');
    await pool(256 * 2, 256, swExec);
    let master: SshMaster | null = null;
    let sshError = '';
    if (sshd) {
      try {
        master = startSshMaster(sshd);
      } catch (err) {
        sshError = (err as Error).message.slice(0, 120);
      }
    }
    const rates = { sw32: [] as number[], sw256: [] as number[], floor32: [] as number[], ssh32: [] as number[], ssh256: [] as number[] };
    try {
      const kinds: Array<[keyof typeof rates, () => Promise<number>]> = [
        ['floor32', () => leanPool(32, CFG.concTotal, ['/bin/sh', '-c', 'true'])],
        ['sw32', () => pool(CFG.concTotal, 32, swExec)],
        ['sw256', () => pool(CFG.concTotal256, 256, swExec)],
      ];
      if (master) {
        const m = master;
        kinds.push(['ssh32', () => leanPool(32, CFG.concTotal, [...m.client, '127.0.0.1', 'true'])]);
        kinds.push(['ssh256', () => leanPool(256, CFG.concTotal256, [...m.client, '127.0.0.1', 'true'])]);
      }
      for (let r = 0; r < CFG.concRounds; r++) {
        for (const [k, fn] of r % 2 === 0 ? kinds : [...kinds].reverse()) rates[k].push(await fn());
      }
    } finally {
      master?.stop();
    }
    const [sw32, sw256, floor32] = [median(rates.sw32), median(rates.sw256), median(rates.floor32)];
    const ssh32 = master ? median(rates.ssh32) : NaN;
    const ssh256 = master ? median(rates.ssh256) : NaN;
    const noSsh = sshd ? `n/a (${sshError})` : sshdNote;
    row({ ...FLOOR_ROW, sw: fmt(sw32, 0), ref: `${fmt(floor32, 0)} (local spawn, lean node)`, ratio: `${fmt(sw32 / floor32, 2)}×`, result: pass(sw32 / floor32 >= 1.0), values: { sw: sw32, ref: floor32, ratio: sw32 / floor32 }, check: (v) => v.ratio >= 1.0 });
    if (master) {
      row({ ...SSH32_ROW, sw: fmt(sw32, 0), ref: `${fmt(ssh32, 0)} (ssh ControlMaster)`, ratio: `${fmt(sw32 / ssh32, 2)}×`, result: pass(sw32 / ssh32 >= 2.5), values: { sw: sw32, ref: ssh32, ratio: sw32 / ssh32 }, check: (v) => v.ratio >= 2.5 });
      row({ ...SSH256_ROW, sw: fmt(sw256, 0), ref: `${fmt(ssh256, 0)} (ssh ControlMaster)`, ratio: `${fmt(sw256 / ssh256, 2)}×`, result: 'info', values: { sw: sw256, ref: ssh256, ratio: sw256 / ssh256 } });
    } else {
      row({ ...SSH32_ROW, sw: fmt(sw32, 0), ref: noSsh, ratio: 'n/a', result: 'n/a' });
      row({ ...SSH256_ROW, sw: fmt(sw256, 0), ref: noSsh, ratio: 'n/a', result: 'n/a' });
    }
    row({ ...FLAT_ROW, sw: fmt(sw256, 0), ref: `${fmt(sw32, 0)} (shellwire, 32 in flight)`, ratio: `${fmt(sw256 / sw32, 2)}×`, result: pass(sw256 / sw32 >= 0.8), values: { sw: sw256, ref: sw32, ratio: sw256 / sw32 }, check: (v) => v.ratio >= 0.8 });
    detail(
      `- 3: ${CFG.concRounds} batch(es) per kind, kinds alternating: ${CFG.concTotal} commands with 32 in flight, ${CFG.concTotal256} with 256 in flight (after a warm-up). ` +
        `shellwire: \`conn.exec('true')\` on one connection from the bench process; floor: \`node bench/pool.mjs 32 N /bin/sh -c true\`` +
        (master ? `; ssh: \`node bench/pool.mjs P N ${master.client.join(' ')} 127.0.0.1 true\` through one ControlMaster (ControlPersist, sshd MaxSessions 300)` : '') +
        `. shellwire 32: ${range(rates.sw32, 0, '/s')}, 256: ${range(rates.sw256, 0, '/s')}; floor 32: ${range(rates.floor32, 0, '/s')}` +
        (master ? `; ssh 32: ${range(rates.ssh32, 0, '/s')}, 256: ${range(rates.ssh256, 0, '/s')}.` : '.'),
    );
  },
};
