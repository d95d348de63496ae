/**
 * The user's hosts (GET /api/hosts) and the ones she picked with the checkboxes, shared by
 * the hosts, run and push views. Loaded once quickly without probing, then probed.
 */
import { api } from './api';

export interface HostInfo {
  name: string;
  labels: Record<string, string>;
  groups: string[];
  reachable?: boolean;
  latencyMs?: number;
  error?: string;
}

type Listener = () => void;

class HostsStore {
  hosts: HostInfo[] = [];
  loaded = false;
  probing = false;
  error: string | null = null;
  readonly picked = new Set<string>();
  private listeners = new Set<Listener>();
  private loading: Promise<void> | null = null;

  subscribe(fn: Listener): void {
    this.listeners.add(fn);
  }
  changed(): void {
    for (const fn of this.listeners) fn();
  }

  /** The list without probing (fast), then with reachability. Once; `reload` asks again. */
  load(reload = false): Promise<void> {
    if (this.loading && !reload) return this.loading;
    this.loading = (async () => {
      try {
        const quick = await api<{ hosts: HostInfo[] }>('GET', '/api/hosts');
        this.hosts = quick.hosts;
        this.loaded = true;
        this.error = null;
        this.changed();
        this.probing = true;
        this.changed();
        const probed = await api<{ hosts: HostInfo[] }>('GET', '/api/hosts?probe=1');
        this.hosts = probed.hosts;
      } catch (err) {
        this.error = (err as Error).message;
      } finally {
        this.probing = false;
        this.changed();
      }
    })();
    return this.loading;
  }

  /** Picked names in inventory order, as a target expression. */
  pickedTargets(): string {
    return this.hosts.filter((h) => this.picked.has(h.name)).map((h) => h.name).join(',');
  }

  groups(): string[] {
    const all = new Set<string>();
    for (const host of this.hosts) for (const g of host.groups ?? []) all.add(g);
    return [...all].sort();
  }

  labels(): string[] {
    const all = new Set<string>();
    for (const host of this.hosts) for (const [k, v] of Object.entries(host.labels ?? {})) all.add(`${k}=${v}`);
    return [...all].sort();
  }

  reset(): void {
    this.hosts = [];
    this.loaded = false;
    this.loading = null;
    this.picked.clear();
  }
}

export const hostsStore = new HostsStore();
