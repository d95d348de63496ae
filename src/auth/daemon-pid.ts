/**
 * The running daemon, found from its state dir, in two files:
 *
 * - `<state-dir>/daemon.lock` ("PID STARTTIME"): the state dir's lock (one daemon per state
 *   dir: two would share one audit chain, one token and one identity, and fight over them),
 *   and how `shellwire user|key|token|locks` find the daemon to make it reload. A pid alone
 *   can outlive its daemon and name another process by the time it is read, so the lock also
 *   holds the process's start time (Linux /proc/PID/stat field 22, clock ticks since boot); a
 *   signal goes only to the process with both.
 * - `<state-dir>/daemon.pid` ("PID"): the pid alone, as every pid file holds, for
 *   `kill -HUP $(cat daemon.pid)`, systemd's PIDFile= and scripts. Written after the lock is
 *   taken, removed with it.
 */
import { readBoundedText } from './bounded-file.js';
import { readFileSync, writeFileSync, unlinkSync, linkSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const DAEMON_PID_FILE = 'daemon.pid';
export const DAEMON_LOCK_FILE = 'daemon.lock';

/** Start time of a process (clock ticks since boot), or null when it does not exist or /proc is missing. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Take the state dir: create daemon.lock holding our pid and start time, unless a live
 * daemon holds it (then its pid is returned and nothing changes). A file left by a daemon
 * that crashed (its pid gone, or reused by another process with another start time) is
 * stale and taken over, so a crash never blocks a restart.
 *
 * The file appears whole or not at all (written aside, then hard-linked into place, which
 * fails if it exists): a reader never sees it half-written and mistakes it for stale.
 * Taking over a stale file moves it aside first and checks that what it moved is the stale
 * file it judged; if another daemon starting at the same moment put its own there in
 * between, that one is put back and wins.
 */
export function lockDaemonPid(stateDir: string): { path: string } | { runningPid: number } {
  // A daemon of an older version locks with daemon.pid ("PID STARTTIME") alone.
  const older = pidFileDaemon(stateDir, true);
  if (older !== null && older !== process.pid) return { runningPid: older };
  const path = join(stateDir, DAEMON_LOCK_FILE);
  const mine = `${process.pid} ${processStartTime(process.pid) ?? ''}\n`.replace(' \n', '\n');
  const aside = `${path}.${process.pid}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    writeFileSync(aside, mine, { mode: 0o644 });
    try {
      linkSync(aside, path);
      writePidFile(stateDir);
      return { path };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkQuietly(aside);
    }
    const stale = readQuietly(path);
    const pid = lockedDaemonPid(stateDir);
    if (pid !== null && pid !== process.pid) return { runningPid: pid };
    if (stale === null) continue; // gone meanwhile: try again
    try {
      renameSync(path, aside);
    } catch {
      continue; // another starting daemon moved it first
    }
    const moved = readQuietly(aside);
    if (moved !== stale) {
      // Not the file we judged stale: another daemon's fresh lock. Give it back.
      try {
        linkSync(aside, path);
      } catch {
        // a third one is there now; the next round judges it
      }
    }
    unlinkQuietly(aside);
  }
  const pid = runningDaemonPid(stateDir);
  return pid !== null ? { runningPid: pid } : { runningPid: -1 };
}

/** daemon.pid: our pid alone, replaced whole (written aside, renamed over a stale one). */
function writePidFile(stateDir: string): void {
  const path = join(stateDir, DAEMON_PID_FILE);
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, `${process.pid}\n`, { mode: 0o644 });
  renameSync(aside, path);
}

function readQuietly(path: string): string | null {
  try {
    return readBoundedText(path, 'Daemon pid file', 4096);
  } catch {
    return null;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Release the lock taken by `lockDaemonPid` (its `path`), and daemon.pid, if they are still ours. */
export function removeDaemonPid(lockPath: string): void {
  for (const path of [join(dirname(lockPath), DAEMON_PID_FILE), lockPath]) {
    try {
      if (readQuietly(path)?.trim().split(' ')[0] === String(process.pid)) unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

/** "PID STARTTIME" (or "PID") verified against /proc: the pid when it is that process. */
function verified(text: string): number | null {
  const [pidText, startTime] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || String(pid) !== pidText) return null;
  const actual = processStartTime(pid);
  if (actual === null) return null;
  if (startTime !== undefined) return actual === startTime ? pid : null;
  // A pid alone (daemon.pid, or an older daemon's file): signal only a shellwire serve (or gateway) process.
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => /shellwire/.test(a)) && (argv.includes('serve') || argv.includes('gateway')) ? pid : null;
  } catch {
    return null;
  }
}

/** The daemon holding daemon.lock, verified; null when there is none or it is stale. */
function lockedDaemonPid(stateDir: string): number | null {
  const text = readQuietly(join(stateDir, DAEMON_LOCK_FILE));
  return text === null ? null : verified(text);
}

/**
 * The daemon daemon.pid names, verified (start time when it has one, else its command
 * line); with `olderOnly`, only an older daemon's "PID STARTTIME" file counts.
 */
function pidFileDaemon(stateDir: string, olderOnly = false): number | null {
  const text = readQuietly(join(stateDir, DAEMON_PID_FILE));
  if (text === null || (olderOnly && !text.trim().includes(' '))) return null;
  return verified(text);
}

/** The running daemon's pid, verified; null when none runs (files missing or stale). */
export function runningDaemonPid(stateDir: string): number | null {
  return lockedDaemonPid(stateDir) ?? pidFileDaemon(stateDir);
}

/** Ask the running daemon to reload (SIGHUP); false when none runs. */
export function signalDaemon(stateDir: string): boolean {
  const pid = runningDaemonPid(stateDir);
  if (pid === null) return false;
  try {
    process.kill(pid, 'SIGHUP');
    return true;
  } catch {
    return false;
  }
}
