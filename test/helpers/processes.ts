/**
 * Processes a test started, found through /proc: by a tag in their argv (`sleep 600.<tag>`
 * is a valid sleep and findable), and whether one still runs (a zombie does not).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** True while `pid` exists and is not a zombie. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Pids of running (not zombie) processes whose argv contains `.<tag>`. */
export function tagged(tag: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`).toString('latin1').includes(`.${tag}`) && running(Number(entry))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
