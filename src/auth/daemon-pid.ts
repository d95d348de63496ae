/**
 * `<state-dir>/daemon.pid`: how `shellwire user|key|token|locks` find the running daemon to
 * make it reload. A pid alone can outlive its daemon and name another process by the time
 * it is read, so the file also holds the process's start time (Linux /proc/PID/stat field
 * 22, clock ticks since boot); a signal goes only to the process with both.
 */
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const DAEMON_PID_FILE = 'daemon.pid';

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

export function writeDaemonPid(stateDir: string): string {
  const path = join(stateDir, DAEMON_PID_FILE);
  writeFileSync(path, `${process.pid} ${processStartTime(process.pid) ?? ''}\n`.replace(' \n', '\n'), { mode: 0o644 });
  return path;
}

export function removeDaemonPid(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim().split(' ')[0] === String(process.pid)) unlinkSync(path);
  } catch {
    // already gone
  }
}

/** The running daemon's pid, verified; null when the file is missing or stale. */
export function runningDaemonPid(stateDir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(stateDir, DAEMON_PID_FILE), 'utf8').trim();
  } catch {
    return null;
  }
  const [pidText, startTime] = text.split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const actual = processStartTime(pid);
  if (actual === null) return null;
  if (startTime !== undefined) return actual === startTime ? pid : null;
  // A pid file without a start time (an older daemon): signal only a shellwire serve process.
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => /shellwire/.test(a)) && argv.includes('serve') ? pid : null;
  } catch {
    return null;
  }
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
