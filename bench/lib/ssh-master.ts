/**
 * An ssh ControlMaster to the reference sshd for the warm-ssh references: one TCP connection,
 * every `ssh -o ControlPath=… 127.0.0.1 cmd` after it a new channel on it (what ssh users do
 * for many commands to one host). Its own socket in the bench dir; stopped with `-O exit`,
 * then by PID.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { benchDirs } from './daemon.js';
import { trackPid, untrackPid } from './children.js';
import type { Sshd } from './peers.js';

export interface SshMaster {
  pid: number;
  /** The mux client's command line: `ssh -F … -p 2222 -o ControlPath=…` (add host and command). */
  client: string[];
  stop(): void;
}

let serial = 0;

export function startSshMaster(sshd: Sshd): SshMaster {
  const path = join(benchDirs().home, `cm-${process.pid}-${++serial}`);
  const client = [...sshd.ssh, '-o', `ControlPath=${path}`];
  const up = spawnSync(sshd.ssh[0]!, [...sshd.ssh.slice(1), '-o', 'ControlMaster=auto', '-o', `ControlPath=${path}`, '-o', 'ControlPersist=600', '-fN', '127.0.0.1'], {
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (up.status !== 0) throw new Error(`ssh ControlMaster did not start: ${(up.stderr || `exit ${up.status}`).trim().slice(0, 160)}`);
  const check = spawnSync(client[0]!, [...client.slice(1), '-O', 'check', '127.0.0.1'], { encoding: 'utf8', timeout: 10_000 });
  const pid = Number(/pid=(\d+)/.exec(`${check.stdout}${check.stderr}`)?.[1]);
  if (!pid) throw new Error(`ssh -O check gave no pid: ${`${check.stdout}${check.stderr}`.trim().slice(0, 160)}`);
  trackPid(pid);
  return {
    pid,
    client,
    stop() {
      spawnSync(client[0]!, [...client.slice(1), '-O', 'exit', '127.0.0.1'], { stdio: 'ignore', timeout: 10_000 });
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited on -O exit
      }
      untrackPid(pid);
    },
  };
}
