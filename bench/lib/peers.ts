/** The OpenSSH reference: a private sshd on 127.0.0.1:2222 via bench/peers.sh (../shared/peers/lib.sh). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

const PEERS_SH = join(ROOT, 'bench/peers.sh');

export interface Sshd {
  /** The client command line, split into words (`ssh -F … -p 2222`). */
  ssh: string[];
  sshText: string;
  pid: number;
  /** True when this run started it (and so must stop it). */
  started: boolean;
}

export function startSshd(): Sshd | { error: string } {
  const r = spawnSync('bash', [PEERS_SH, 'start'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' / ');
    return { error: why };
  }
  const kv = Object.fromEntries(
    r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  if (!kv.SSH || !kv.SSHD_PID) return { error: `peers.sh printed no SSH/SSHD_PID: ${r.stdout}` };
  return { ssh: kv.SSH.trim().split(/\s+/), sshText: kv.SSH.trim(), pid: Number(kv.SSHD_PID), started: kv.STARTED === '1' };
}

/** Stop the sshd by PID — only if this run started it. Synchronous so exit handlers can use it. */
export function stopSshdSync(sshd: Sshd | null): void {
  if (!sshd || !sshd.started) return;
  spawnSync('bash', [PEERS_SH, 'stop', String(sshd.pid)], { stdio: 'ignore', timeout: 15_000 });
  sshd.started = false;
}
