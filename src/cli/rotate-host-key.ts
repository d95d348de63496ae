/**
 * `shellwire rotate-host-key`: replace the daemon's host key and certificate, keep the old
 * pair beside them (`*.old`), and make a running daemon use the new one (SIGHUP: new
 * connections get it, open ones keep theirs). Clients that pinned the old fingerprint then
 * refuse the host, as ssh does after a host key change, until their known_hosts is updated.
 */
import type { Command } from 'commander';
import { copyFileSync, chmodSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createIdentity, readIdentity, writeIdentity } from '../auth/identity.js';
import { defaultServerStateDir, HOST_CERT_FILE, HOST_KEY_FILE } from '../auth/paths.js';
import { runningDaemonPid } from '../auth/daemon-pid.js';
import { fail } from './common.js';

interface RotateFlags {
  stateDir?: string;
}

export function registerRotateHostKey(program: Command): void {
  program
    .command('rotate-host-key')
    .description('make a new host key and certificate for the daemon; a running daemon switches to it (clients must re-pin)')
    .option('--state-dir <dir>', 'the daemon\'s state dir (default $SHELLWIRE_HOME/server)')
    .action(async (flags: RotateFlags) => runRotate(flags));
}

async function runRotate(flags: RotateFlags): Promise<void> {
  const stateDir = flags.stateDir ?? defaultServerStateDir();
  let old;
  try {
    old = readIdentity(stateDir);
  } catch (err) {
    fail((err as Error).message, 1);
  }
  if (old === undefined) fail(`${stateDir} has no host key to rotate (shellwire serve makes one on its first start).`, 1);
  // The old pair stays on disk: until every client has re-pinned, an operator may want it back.
  const keyPath = join(stateDir, HOST_KEY_FILE);
  copyFileSync(keyPath, `${keyPath}.old`);
  chmodSync(`${keyPath}.old`, 0o600);
  copyFileSync(join(stateDir, HOST_CERT_FILE), join(stateDir, `${HOST_CERT_FILE}.old`));
  const next = await createIdentity(hostname());
  writeIdentity(stateDir, next);
  const pid = runningDaemonPid(stateDir);
  let told = false;
  if (pid !== null) {
    try {
      process.kill(pid, 'SIGHUP');
      told = true;
    } catch {
      // not ours to signal (another user's daemon): say so below
    }
  }
  process.stdout.write(
    [
      `old fingerprint: ${old.fingerprint} (kept as ${keyPath}.old)`,
      `new fingerprint: ${next.fingerprint}`,
      told
        ? `the running daemon (PID ${pid}) switches to the new key now: new connections get it, open ones keep the old one`
        : pid !== null
          ? `could not signal the running daemon (PID ${pid}); reload it (systemctl reload shellwire, or kill -HUP ${pid})`
          : 'no daemon is running on this state dir: its next start uses the new key',
      'clients that pinned the old key now refuse this host ("HOST KEY CHANGED"); on each client replace the',
      `old line in known_hosts with "HOST:PORT ${next.fingerprint}" (or remove it and reconnect with --accept-new-host)`,
      '',
    ].join('\n'),
  );
}
