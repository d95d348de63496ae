/**
 * The run page: a command on a list of hosts (WS /api/run) with live progress and results
 * grouped by identical output, failures last, as the CLI prints them. Results of hundreds of
 * hosts arrive in bursts: they are grouped as they come and the page is updated at most once
 * per animation frame, touching only the groups that changed.
 */
import { sessionLost, wsUrl, WS_SESSION_ENDED } from './api';
import { displayText, formatBytes, formatDuration, fromBase64, h, outputNode, replaceChildren, setText } from './dom';
import { oneLine } from './visible-text';
import { prefillTargets, targetChips, type Chips } from './chips';
import { hostsStore } from './hosts-store';
import { errorText, outcomeWord, RunGroups, someNames, sortedNames, type RunGroup, type RunResult } from './run-groups';
import type { View } from './view';

interface GroupView {
  el: HTMLElement;
  names: HTMLElement;
  count: HTMLElement;
  shownCount: number;
}

type ServerMessage =
  | { type: 'hosts'; hosts: string[] }
  | { type: 'started'; host: string }
  | ({ type: 'result' } & RunResult)
  | { type: 'done'; summary: { ok: number; failed: number; total: number; durationMs: number } }
  | { type: 'error'; code: string; message: string };

export class RunView implements View {
  readonly el: HTMLElement;
  private readonly targets: HTMLInputElement;
  private readonly command: HTMLInputElement;
  private readonly timeout: HTMLInputElement;
  private readonly submit: HTMLButtonElement;
  private readonly cancel: HTMLButtonElement;
  private readonly progress: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly results: HTMLElement;
  private readonly message: HTMLElement;
  private readonly lastPrefill = { value: '' };
  private readonly chips: Chips;

  private ws: WebSocket | null = null;
  private groups = new RunGroups();
  private views = new Map<string, GroupView>();
  private dirty = new Set<RunGroup>();
  private expanded = new Set<string>();
  private order: RunGroup[] = [];
  private frameQueued = false;
  private total = 0;
  private started = 0;
  private done = 0;
  private failed = 0;
  private finished: string | null = null;

  constructor() {
    this.targets = h('input', { id: 'run-targets', 'data-testid': 'run-targets', placeholder: 'web01,web02  @web  role=db  web[01-12]  @all,!db03', autocomplete: 'off', spellcheck: 'false', required: true });
    this.command = h('input', { id: 'run-command', 'data-testid': 'run-command', placeholder: 'uptime', autocomplete: 'off', spellcheck: 'false', required: true, class: 'mono' });
    this.timeout = h('input', { id: 'run-timeout', type: 'number', min: 1, step: 1, placeholder: 'none', class: 'narrow' });
    this.submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'run-submit' }, 'Run');
    this.cancel = h('button', { type: 'button', disabled: true, onclick: () => this.sendCancel() }, 'Cancel');
    this.bar = h('progress', { max: 1, value: 0, 'aria-label': 'Hosts done' });
    this.progress = h('span', { 'data-testid': 'run-progress', role: 'status', 'aria-live': 'polite' });
    this.message = h('p', { class: 'error', role: 'alert', hidden: true });
    this.results = h('div', { class: 'results', 'aria-label': 'Results' });
    this.chips = targetChips(this.targets);
    const form = h('form', { class: 'run-form' },
      h('div', { class: 'field wide' }, h('label', { for: 'run-targets' }, 'Targets'), this.targets),
      this.chips.el,
      h('div', { class: 'row' },
        h('div', { class: 'field wide' }, h('label', { for: 'run-command' }, 'Command'), this.command),
        h('div', { class: 'field' }, h('label', { for: 'run-timeout' }, 'Timeout (s)'), this.timeout),
        h('div', { class: 'buttons' }, this.submit, this.cancel),
      ),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.start();
    });
    this.el = h('section', { class: 'view', 'aria-labelledby': 'run-title' },
      h('h2', { id: 'run-title' }, 'Run a command'),
      form,
      h('div', { class: 'progress-line' }, this.bar, this.progress),
      this.message,
      this.results,
    );
  }

  show(): void {
    void hostsStore.load();
    prefillTargets(this.targets, this.lastPrefill);
    this.chips.refresh();
    (this.targets.value ? this.command : this.targets).focus();
  }

  private start(): void {
    if (this.ws) return;
    const targets = this.targets.value.trim();
    const command = this.command.value;
    if (!targets || !command.trim()) return;
    this.reset();
    this.running(true);
    this.progress.textContent = 'starting…';
    const ws = new WebSocket(wsUrl('/api/run'));
    this.ws = ws;
    ws.addEventListener('open', () => {
      const seconds = Number(this.timeout.value);
      const msg: Record<string, unknown> = { type: 'run', targets, command };
      if (seconds > 0) msg['timeoutMs'] = Math.round(seconds * 1000);
      ws.send(JSON.stringify(msg));
    });
    ws.addEventListener('message', (event: MessageEvent) => {
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(event.data)) as ServerMessage;
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener('close', (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.running(false);
      if (event.code === WS_SESSION_ENDED) {
        sessionLost();
        return;
      }
      if (this.finished === null) this.showError(`The connection closed before the run finished${event.reason ? `: ${event.reason}` : ''} (code ${event.code}).`);
      this.queueFrame();
    });
  }

  private onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case 'hosts':
        this.total = msg.hosts.length;
        break;
      case 'started':
        this.started++;
        break;
      case 'result': {
        this.done++;
        if (msg.status !== 'ok') this.failed++;
        this.dirty.add(this.groups.add(msg));
        break;
      }
      case 'done':
        this.finished = `${msg.summary.ok}/${msg.summary.total} ok${msg.summary.failed ? `, ${msg.summary.failed} failed` : ''} · ${formatDuration(msg.summary.durationMs)}`;
        this.ws?.close(1000);
        break;
      case 'error':
        this.finished = 'failed';
        this.showError(errorText(msg));
        break;
    }
    this.queueFrame();
  }

  private sendCancel(): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'cancel' }));
    this.cancel.disabled = true;
  }

  private running(on: boolean): void {
    this.submit.disabled = on;
    this.cancel.disabled = !on;
  }

  private reset(): void {
    this.groups = new RunGroups();
    this.views.clear();
    this.dirty.clear();
    this.expanded.clear();
    this.order = [];
    this.total = this.started = this.done = this.failed = 0;
    this.finished = null;
    this.message.hidden = true;
    replaceChildren(this.results);
  }

  private showError(text: string): void {
    setText(this.message, text);
    this.message.hidden = false;
  }

  private queueFrame(): void {
    if (this.frameQueued) return;
    this.frameQueued = true;
    requestAnimationFrame(() => {
      this.frameQueued = false;
      this.render();
    });
  }

  /** One frame's worth of changes: progress, the groups that grew, then their order. */
  private render(): void {
    const running = Math.max(0, this.started - this.done);
    const parts = [`${this.done}/${this.total || '?'} done`];
    if (this.finished) parts.push(this.finished);
    else {
      if (this.failed) parts.push(`${this.failed} failed`);
      if (this.ws) parts.push(`${running} running`);
    }
    this.progress.textContent = parts.join(' · ');
    this.progress.dataset['done'] = String(this.done);
    this.progress.dataset['total'] = String(this.total);
    this.bar.max = Math.max(1, this.total);
    this.bar.value = this.done;
    if (this.dirty.size === 0) return;
    for (const group of this.dirty) this.renderGroup(group);
    this.dirty.clear();
    const order = this.groups.ordered();
    if (order.length !== this.order.length || order.some((g, i) => g !== this.order[i])) {
      this.order = order;
      const frag = document.createDocumentFragment();
      for (const g of order) frag.appendChild(this.views.get(g.key)!.el);
      this.results.appendChild(frag);
    }
  }

  private renderGroup(group: RunGroup): void {
    let view = this.views.get(group.key);
    if (!view) {
      view = this.createGroup(group);
      this.views.set(group.key, view);
    }
    if (view.shownCount === group.hosts.length) return;
    view.shownCount = group.hosts.length;
    view.el.dataset['hosts'] = sortedNames(group.hosts).join(',');
    view.count.textContent = `(${group.hosts.length})`;
    this.renderNames(group, view);
  }

  private renderNames(group: RunGroup, view: GroupView): void {
    const all = this.expanded.has(group.key);
    const names = sortedNames(group.hosts);
    const { shown, more } = all ? { shown: names, more: 0 } : someNames(names, 10);
    const toggle = more > 0
      ? h('button', { type: 'button', class: 'link', onclick: () => { this.expanded.add(group.key); this.renderNames(group, view); } }, `+${more} more`)
      : all && group.hosts.length > 10
        ? h('button', { type: 'button', class: 'link', onclick: () => { this.expanded.delete(group.key); this.renderNames(group, view); } }, 'fewer')
        : null;
    replaceChildren(view.names, shown.map(oneLine).join(', '), toggle ? ' ' : null, toggle);
  }

  private createGroup(group: RunGroup): GroupView {
    const r = group.sample;
    const ok = r.status === 'ok';
    const names = h('span', { class: 'names' });
    const count = h('span', { class: 'count' });
    const stdout = fromBase64(r.stdout);
    const stderr = fromBase64(r.stderr);
    const body: HTMLElement[] = [];
    if (r.error) body.push(h('p', { class: 'error-text' }, errorText(r.error)));
    const text = displayText(stdout);
    const stdoutBinary = !isUtf8(stdout);
    // One line of output goes beside the names, as the CLI prints it: 200 hosts stay 200 lines.
    // Its bidi controls are escaped there (it sits beside host names); longer output is shown as
    // it came, isolated line by line (style.css), with only its control characters escaped.
    const inline = ok && stderr.length === 0 && !r.truncated && stdout.length > 0 && !stdoutBinary && !/[\r\n]/.test(text.replace(/\n$/, ''));
    if (inline) body.push(h('code', { class: 'out inline' }, oneLine(text.replace(/\n$/, ''))));
    else if (stdout.length > 0) {
      if (stdoutBinary) body.push(binaryNotice(stdout, 'output', downloadName(group.hosts[0] ?? r.host, 'stdout'), r.truncated));
      body.push(h('pre', { class: 'out' }, outputNode(text, stdoutBinary)));
    }
    if (stderr.length > 0) {
      const stderrBinary = !isUtf8(stderr);
      if (stderrBinary) body.push(binaryNotice(stderr, 'error output', downloadName(group.hosts[0] ?? r.host, 'stderr'), r.truncated));
      body.push(h('pre', { class: 'out err', 'aria-label': 'standard error' }, outputNode(displayText(stderr), stderrBinary)));
    }
    if (stdout.length === 0 && stderr.length === 0 && !r.error) body.push(h('p', { class: 'muted small' }, '(no output)'));
    if (r.truncated) body.push(h('p', { class: 'muted small' }, '(output truncated)'));
    const el = h('article', { class: `group ${ok ? 'ok' : 'bad'}`, 'data-testid': 'run-group', 'data-status': r.status },
      h('header', {},
        h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, outcomeWord(r)),
        names, ' ', count,
        ...(inline ? body : []),
      ),
      ...(inline ? [] : body),
    );
    return { el, names, count, shownCount: 0 };
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** `web01-stdout.bin`: a file name made of the host's name, safe on any disk. */
function downloadName(host: string, stream: string): string {
  return `${host.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '') || 'host'}-${stream}.bin`;
}

/**
 * Output that is not UTF-8 (a binary file, another encoding): the page can only show it with
 * U+FFFD in place of what it cannot decode, so it says so, gives the exact byte count, and
 * offers the exact bytes (those the console kept: see `truncated`) as a download.
 */
function binaryNotice(bytes: Uint8Array, what: string, fileName: string, truncated: boolean): HTMLElement {
  const download = h('button', { type: 'button', class: 'link', 'data-testid': 'run-download', onclick: () => {
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    const a = h('a', { href: url, download: fileName, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } }, `download the ${bytes.length} bytes`);
  return h('p', { class: 'muted small binary-notice', 'data-testid': 'run-binary', 'data-bytes': bytes.length },
    `binary ${what}, ${bytes.length} bytes${bytes.length >= 1024 ? ` (${formatBytes(bytes.length)})` : ''}${truncated ? ' kept' : ''} (shown with replacement characters) · `, download);
}
