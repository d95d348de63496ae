/** Looking up OS accounts (through NSS, as `getent passwd` does) for run-as. */
import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';

export interface OsAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export function lookupAccount(name: string): OsAccount | null {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0] ?? '';
  } catch {
    return null;
  }
  const fields = line.split(':');
  if (fields.length < 7) return null;
  return { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]!, shell: fields[6] || '/bin/sh' };
}

let ownAccount: OsAccount | null = null;

/** The account the daemon itself runs as (looked up once: it reads the passwd database). */
export function daemonAccount(): OsAccount {
  if (!ownAccount) {
    const info = userInfo();
    ownAccount = { name: info.username, uid: info.uid, gid: info.gid, home: info.homedir, shell: info.shell || '/bin/sh' };
  }
  return { ...ownAccount };
}

export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}
