/**
 * Results of a run grouped as the CLI groups them (src/fleet/format.ts `groupResults`): hosts
 * whose outcome and output bytes are identical share one group; successes first (largest
 * first), failures last. Output is compared as bytes (its base64), never as decoded text, so
 * two hosts printing different invalid UTF-8 do not share one group. Pure: no DOM.
 */
export type RunStatus = 'ok' | 'failed' | 'error' | 'lost' | 'timeout' | 'cancelled';

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

  /** Successes first, then failures; within each, the larger group first, then arrival order. */
  ordered(): RunGroup[] {
    return [...this.byKey.values()].sort((a, b) => rank(a) - rank(b) || b.hosts.length - a.hosts.length || a.seq - b.seq);
  }

  get size(): number {
    return this.byKey.size;
  }
}

function rank(g: RunGroup): number {
  return g.sample.status === 'ok' ? 0 : 1;
}

/** How a result ended, in a few words (as the CLI's describeOutcome). */
export function describeOutcome(r: RunResult): string {
  switch (r.status) {
    case 'ok':
      return 'ok';
    case 'failed':
      return r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    case 'timeout':
      return r.error?.message ?? 'timed out';
    case 'cancelled':
      return 'cancelled';
    default:
      return `${r.status}: ${r.error?.message ?? 'unknown error'}`;
  }
}

/** At most `max` names, and how many more there are. */
export function someNames(hosts: readonly string[], max = 10): { shown: string[]; more: number } {
  return hosts.length <= max ? { shown: [...hosts], more: 0 } : { shown: hosts.slice(0, max), more: hosts.length - max };
}
