/**
 * The hosts page: the hosts this user may reach (inventory groups, labels, live reachability),
 * a filter box, a checkbox per host to pick targets for run/push, and a terminal button.
 */
import { h, replaceChildren, setText } from './dom';
import { oneLine } from './visible-text';
import { hostsStore, type HostInfo } from './hosts-store';
import type { View } from './view';

export class HostsView implements View {
  readonly el: HTMLElement;
  private readonly filter: HTMLInputElement;
  private readonly body: HTMLTableSectionElement;
  private readonly status: HTMLElement;
  private readonly pickedInfo: HTMLElement;
  private readonly all: HTMLInputElement;

  constructor(private readonly openTerminal: (host: string) => void) {
    this.filter = h('input', { type: 'search', id: 'hosts-filter', placeholder: 'name, group or label', 'aria-label': 'Filter hosts' });
    this.filter.addEventListener('input', () => this.render());
    this.status = h('span', { class: 'muted', role: 'status' });
    this.pickedInfo = h('span', { class: 'muted' });
    this.all = h('input', { type: 'checkbox', 'aria-label': 'Pick every host shown' });
    this.all.addEventListener('change', () => {
      for (const host of this.visible()) {
        if (this.all.checked) hostsStore.picked.add(host.name);
        else hostsStore.picked.delete(host.name);
      }
      this.render();
    });
    this.body = h('tbody');
    this.el = h(
      'section',
      { class: 'view', 'aria-labelledby': 'hosts-title' },
      h('div', { class: 'toolbar' },
        h('h2', { id: 'hosts-title' }, 'Hosts'),
        h('label', { for: 'hosts-filter', class: 'sr-only' }, 'Filter'),
        this.filter,
        this.status,
        h('span', { class: 'spacer' }),
        this.pickedInfo,
        h('a', { href: '#/run', class: 'button' }, 'Run on picked'),
        h('a', { href: '#/push', class: 'button' }, 'Push to picked'),
        h('button', { type: 'button', onclick: () => void hostsStore.load(true) }, 'Refresh'),
      ),
      h('table', { class: 'grid hosts' },
        h('thead', {}, h('tr', {},
          h('th', { class: 'pick' }, this.all),
          h('th', {}, 'Host'),
          h('th', {}, 'Reachable'),
          h('th', {}, 'Groups'),
          h('th', {}, 'Labels'),
          h('th', {}, ''),
        )),
        this.body,
      ),
    );
    hostsStore.subscribe(() => this.render());
  }

  show(): void {
    void hostsStore.load();
    this.render();
    this.filter.focus();
  }

  private visible(): HostInfo[] {
    const words = this.filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length === 0) return hostsStore.hosts;
    return hostsStore.hosts.filter((host) => {
      const text = [host.name, ...(host.groups ?? []).map((g) => `@${g}`), ...Object.entries(host.labels ?? {}).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase();
      return words.every((w) => text.includes(w));
    });
  }

  private render(): void {
    const hosts = this.visible();
    setText(this.status, hostsStore.error
      ? hostsStore.error
      : !hostsStore.loaded
        ? 'loading…'
        : `${hosts.length} of ${hostsStore.hosts.length} host${hostsStore.hosts.length === 1 ? '' : 's'}${hostsStore.probing ? ' · checking reachability…' : ''}`);
    this.status.classList.toggle('error', hostsStore.error !== null);
    this.pickedInfo.textContent = `${hostsStore.picked.size} picked`;
    this.all.checked = hosts.length > 0 && hosts.every((host) => hostsStore.picked.has(host.name));
    const rows = hosts.map((host) => this.row(host));
    if (hostsStore.loaded && hosts.length === 0) {
      rows.push(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, hostsStore.hosts.length === 0 ? 'No hosts: users.yaml gives you none on this gateway.' : 'No host matches the filter.')));
    }
    replaceChildren(this.body, ...rows);
  }

  private row(host: HostInfo): HTMLTableRowElement {
    const pick = h('input', { type: 'checkbox', 'aria-label': `Pick ${host.name}`, checked: hostsStore.picked.has(host.name) });
    pick.addEventListener('change', () => {
      if (pick.checked) hostsStore.picked.add(host.name);
      else hostsStore.picked.delete(host.name);
      this.pickedInfo.textContent = `${hostsStore.picked.size} picked`;
    });
    const reach = host.reachable === undefined ? 'unknown' : host.reachable ? 'yes' : 'no';
    const reachText = host.reachable === undefined ? (hostsStore.probing ? 'checking' : '–') : host.reachable ? (host.latencyMs !== undefined ? `${Math.round(host.latencyMs)} ms` : 'yes') : (host.error ?? 'unreachable');
    return h('tr', { 'data-testid': 'host-row', 'data-host': host.name, 'data-reachable': host.reachable === undefined ? null : String(host.reachable) },
      h('td', { class: 'pick' }, pick),
      h('td', { class: 'name' }, oneLine(host.name)),
      h('td', { class: 'reach', title: host.error ?? '' }, h('span', { class: `dot dot-${reach}`, 'aria-hidden': 'true' }), h('span', { class: 'reach-text' }, oneLine(reachText))),
      h('td', {}, ...(host.groups ?? []).map((g) => h('span', { class: 'tag' }, `@${oneLine(g)}`))),
      h('td', {}, ...Object.entries(host.labels ?? {}).map(([k, v]) => h('span', { class: 'tag label' }, `${oneLine(k)}=${oneLine(v)}`))),
      h('td', { class: 'actions' }, h('button', { type: 'button', 'data-testid': 'open-terminal', 'aria-label': `Open a terminal on ${host.name}`, onclick: () => this.openTerminal(host.name) }, 'terminal')),
    );
  }
}
