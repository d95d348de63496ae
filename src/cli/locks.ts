/**
 * `shellwire locks` and `shellwire locks clear [ADDR|USER]`: see and lift the running
 * daemon's login locks (docs/policy.md#lock-out). Works through the state dir: the daemon
 * writes locks.json; a clear request is a file the daemon applies when told to reload.
 */
import type { Command } from 'commander';
import { defaultServerStateDir } from '../auth/paths.js';
import { readLockState, requestUnlock } from '../auth/lock-state.js';
import { runningDaemonPid, signalDaemon } from '../auth/daemon-pid.js';
import { requireStateDir } from '../auth/users-store.js';
import { fail } from './common.js';

/** The state dir, which must exist: a mistyped one must not read as "no locks". */
function existingStateDir(dir: string): string {
  try {
    requireStateDir(dir);
  } catch (err) {
    fail((err as Error).message, 1);
  }
  return dir;
}

const stateDirOption = ['--state-dir <dir>', 'the daemon\'s state dir (default $SHELLWIRE_HOME/server)'] as const;

export function registerLocks(program: Command): void {
  const locks = program
    .command('locks')
    .description('list the running daemon\'s login locks (addresses and users locked out after failed logins)')
    .option('--json', 'JSON output, one lock per line')
    .option(...stateDirOption)
    .action((flags: { json?: boolean; stateDir?: string }) => {
      const stateDir = existingStateDir(flags.stateDir ?? defaultServerStateDir());
      let records;
      try {
        // Locks live in the daemon's memory: with no daemon running there are none.
        records = runningDaemonPid(stateDir) === null ? [] : readLockState(stateDir);
      } catch (err) {
        fail(`Cannot read the daemon's locks in ${stateDir}: ${(err as Error).message}`, 1);
      }
      if (flags.json) {
        for (const r of records) process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      if (records.length === 0) {
        process.stderr.write('no locks\n');
        return;
      }
      for (const r of records) process.stdout.write(`${r.kind.padEnd(8)} ${r.key.padEnd(40)} ${String(r.failures).padStart(4)} failures  until ${r.until}\n`);
    });
  locks
    .command('clear [target]')
    .description('lift locks: one address or user name, or all when none is given')
    .option(...stateDirOption)
    .action((target: string | undefined, _flags: unknown, command: Command) => {
      // `locks --state-dir D clear` and `locks clear --state-dir D` alike: the parent
      // command, which has the same option, takes it wherever it stands.
      const stateDir = existingStateDir((command.optsWithGlobals() as { stateDir?: string }).stateDir ?? defaultServerStateDir());
      if (runningDaemonPid(stateDir) === null) fail(`No running daemon found for ${stateDir}; locks live in the daemon's memory and end with it.`, 1);
      try {
        requestUnlock(stateDir, target ?? '*');
      } catch (err) {
        fail(`Cannot write to ${stateDir}: ${(err as Error).message}`, 1);
      }
      if (!signalDaemon(stateDir)) fail('The daemon could not be signalled (run as its account or root).', 1);
      process.stderr.write(`asked the daemon to lift ${target === undefined ? 'all locks' : `locks on ${target}`}\n`);
    });
}
