/**
 * Results of a run grouped as the CLI groups them (src/fleet/format.ts `groupResults`): hosts
 * whose outcome and output bytes are identical share one group; successes first (largest
 * first), failures last. Output is compared as bytes (its base64), never as decoded text, so
 * two hosts printing different invalid UTF-8 do not share one group. Pure: no DOM.
 */
/** The spec's statuses; the server may name others (`unreachable`): shown as they come, as failures. */
export type RunStatus = 'ok' | 'failed' | 'error' | 'lost' | 'timeout' | 'cancelled' | (string & {});

export interface RunResult {
  host: string;
  status: RunStatus;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  durationMs: number;
  error?: { code: string; message: string };
}

export interface RunGroup {
  key: string;
  hosts: string[];
  sample: RunResult;
  /** Order of the group's first result: ties keep arrival order. */
  seq: number;
}

export function groupKey(r: RunResult): string {
  const failure = r.status === 'ok' ? '' : `${r.status}\0${r.exitCode}\0${r.signal}\0${r.error?.code ?? ''}\0${r.error?.message ?? ''}`;
  return `${failure}\0${r.truncated ? 1 : 0}\0${r.stdout}\0${r.stderr}`;
}

/** Groups kept up to date one result at a time (results of 200+ hosts arrive one by one). */
export class RunGroups {
  private readonly byKey = new Map<string, RunGroup>();
  private seq = 0;

  /** Add a result; returns its group (new or grown). */
  add(r: RunResult): RunGroup {
    const key = groupKey(r);
    let group = this.byKey.get(key);
    if (group) group.hosts.push(r.host);
    else this.byKey.set(key, (group = { key, hosts: [r.host], sample: r, seq: this.seq++ }));
    return group;
  }

  /**
   * Successes first, then commands that failed, then hosts that could not run it (as the CLI
   * lists connection problems after the groups); within each, the larger group first, then by
   * host name (numbers as numbers: web2 before web10), so the page does not reshuffle by timing.
   */
  ordered(): RunGroup[] {
    return [...this.byKey.values()].sort((a, b) => rank(a) - rank(b) || b.hosts.length - a.hosts.length || byName.compare(a.hosts[0]!, b.hosts[0]!) || a.seq - b.seq);
  }

  get size(): number {
    return this.byKey.size;
  }
}

const byName = new Intl.Collator('en', { numeric: true });

/** Host names in reading order (web2 before web10), whatever order their results came in. */
export function sortedNames(hosts: readonly string[]): string[] {
  return [...hosts].sort(byName.compare);
}

function rank(g: RunGroup): number {
  const s = g.sample.status;
  return s === 'ok' ? 0 : s === 'failed' || s === 'timeout' ? 1 : 2;
}

/** The badge's few words: `ok`, `exit 3`, `killed by SIGKILL`, `timeout`, `unreachable`. */
export function outcomeWord(r: RunResult): string {
  if (r.status === 'failed') return r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
  return r.status;
}

/** An error's text with its code, unless the message names it already. */
export function errorText(error: { code: string; message: string } | undefined): string {
  if (!error) return '';
  return error.message.includes(error.code) ? error.message : `${error.message} (${error.code})`;
}

/** At most `max` names, and how many more there are. */
export function someNames(hosts: readonly string[], max = 10): { shown: string[]; more: number } {
  return hosts.length <= max ? { shown: [...hosts], more: 0 } : { shown: hosts.slice(0, max), more: hosts.length - max };
}
