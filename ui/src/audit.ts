/**
 * The audit page: the gateway's audit log (GET /api/audit, newest first) with the CLI's
 * filters (user, host, kind, since, grep, failed only), and "older" paging while `more`.
 */
import { api, query } from './api';
import { formatDuration, formatTime, h, replaceChildren, setText } from './dom';
import { oneLine } from './visible-text';
import type { View } from './view';

interface AuditRow {
  id: number;
  time: string;
  kind: string;
  user: string | null;
  osUser: string | null;
  address: string | null;
  command: string | null;
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  detail: Record<string, unknown> | null;
}

const KINDS = ['', 'connect', 'auth-ok', 'auth-fail', 'command-start', 'command-end', 'denied', 'file', 'disconnect', 'gap', 'failed'];
const PAGE = 100;

export class AuditView implements View {
  readonly el: HTMLElement;
  private readonly user: HTMLInputElement;
  private readonly host: HTMLInputElement;
  private readonly kind: HTMLSelectElement;
  private readonly since: HTMLInputElement;
  private readonly grep: HTMLInputElement;
  private readonly failed: HTMLInputElement;
  private readonly body: HTMLTableSectionElement;
  private readonly more: HTMLButtonElement;
  private readonly status: HTMLElement;
  private seen = new Set<number>();
  private oldest: string | null = null;
  private loadedOnce = false;

  constructor() {
    this.user = h('input', { id: 'audit-user', 'data-testid': 'audit-filter-user', autocomplete: 'off', class: 'narrow' });
    this.host = h('input', { id: 'audit-host', autocomplete: 'off', class: 'narrow' });
    this.kind = h('select', { id: 'audit-kind', 'data-testid': 'audit-filter-kind' }, ...KINDS.map((k) => h('option', { value: k }, k || 'any')));
    this.since = h('input', { id: 'audit-since', placeholder: '1h, 2d, 2026-01-31', class: 'narrow', autocomplete: 'off' });
    this.grep = h('input', { id: 'audit-grep', placeholder: 'text in the row', autocomplete: 'off' });
    this.failed = h('input', { id: 'audit-failed', type: 'checkbox' });
    this.body = h('tbody');
    this.status = h('span', { class: 'muted', role: 'status' });
    this.more = h('button', { type: 'button', hidden: true, onclick: () => void this.load(false) }, 'Older');
    const form = h('form', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'audit-user' }, 'User'), this.user),
      h('div', { class: 'field' }, h('label', { for: 'audit-host' }, 'Host'), this.host),
      h('div', { class: 'field' }, h('label', { for: 'audit-kind' }, 'Kind'), this.kind),
      h('div', { class: 'field' }, h('label', { for: 'audit-since' }, 'Since'), this.since),
      h('div', { class: 'field wide' }, h('label', { for: 'audit-grep' }, 'Contains'), this.grep),
      h('div', { class: 'field check' }, this.failed, h('label', { for: 'audit-failed' }, 'failures only')),
      h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'audit-apply' }, 'Apply')),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.load(true);
    });
    this.el = h('section', { class: 'view', 'aria-labelledby': 'audit-title' },
      h('div', { class: 'toolbar' }, h('h2', { id: 'audit-title' }, 'Audit log'), this.status),
      form,
      h('table', { class: 'grid audit' },
        h('thead', {}, h('tr', {}, ...['Time', 'Kind', 'User', 'Host', 'Command / detail', 'Exit', 'Duration', 'From'].map((t) => h('th', {}, t)))),
        this.body,
      ),
      h('div', { class: 'buttons' }, this.more),
    );
  }

  show(): void {
    if (!this.loadedOnce) void this.load(true);
  }

  private async load(fresh: boolean): Promise<void> {
    this.loadedOnce = true;
    if (fresh) {
      this.seen.clear();
      this.oldest = null;
      replaceChildren(this.body);
    }
    this.status.textContent = 'loading…';
    this.status.classList.remove('error');
    try {
      const answer = await api<{ rows: AuditRow[]; more: boolean }>('GET', `/api/audit${query({
        user: this.user.value.trim(), host: this.host.value.trim(), kind: this.kind.value, since: this.since.value.trim(),
        grep: this.grep.value, failed: this.failed.checked, limit: PAGE, until: fresh ? undefined : this.oldest ?? undefined,
      })}`);
      // `until` includes its own instant: rows already shown come again and are skipped by id.
      const rows = answer.rows.filter((r) => !this.seen.has(r.id));
      for (const r of rows) this.seen.add(r.id);
      if (answer.rows.length > 0) this.oldest = answer.rows[answer.rows.length - 1]!.time;
      const frag = document.createDocumentFragment();
      for (const r of rows) frag.appendChild(this.row(r));
      this.body.appendChild(frag);
      this.more.hidden = !answer.more || rows.length === 0;
      this.status.textContent = `${this.seen.size} row${this.seen.size === 1 ? '' : 's'}${answer.more ? ' (more older)' : ''}`;
    } catch (err) {
      setText(this.status, (err as Error).message);
      this.status.classList.add('error');
    }
  }

  private row(r: AuditRow): HTMLTableRowElement {
    const detail = r.detail ?? {};
    const host = typeof detail['host'] === 'string' ? detail['host'] : '';
    const rest = Object.entries(detail).filter(([k]) => k !== 'host').map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
    const exit = r.signal ? r.signal : r.exitCode ?? '';
    const outcome = detail['outcome'];
    const bad = (typeof outcome === 'object' && outcome !== null && 'code' in outcome) || r.kind === 'denied' || r.kind === 'failed' || r.kind === 'auth-fail' || (typeof r.exitCode === 'number' && r.exitCode !== 0) || r.signal !== null;
    // Every field may hold what an operator typed (a path, a command): one line each, its
    // control and bidi characters escaped, each cell isolated (style.css), so a row reads as it records.
    return h('tr', { 'data-testid': 'audit-row', 'data-kind': r.kind, class: bad ? 'bad' : '' },
      h('td', { class: 'nowrap', title: r.time }, formatTime(r.time)),
      h('td', {}, h('span', { class: `kind kind-${r.kind}` }, oneLine(r.kind))),
      h('td', {}, oneLine(r.user ?? ''), r.osUser && r.osUser !== r.user ? h('span', { class: 'muted' }, ` as ${oneLine(r.osUser)}`) : null),
      h('td', {}, oneLine(host)),
      h('td', { class: 'cmd' }, r.command ? h('code', {}, oneLine(r.command)) : null, r.command && rest ? ' ' : null, rest ? h('span', { class: 'muted' }, oneLine(rest)) : null),
      h('td', {}, oneLine(String(exit))),
      h('td', { class: 'nowrap' }, formatDuration(r.durationMs)),
      h('td', { class: 'muted nowrap' }, oneLine(r.address ?? '')),
    );
  }
}
