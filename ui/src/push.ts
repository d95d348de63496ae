/**
 * The push page: one file to a list of hosts (PUT /api/push) with per-host progress and
 * verification. The browser hashes the file itself (SHA-256, crypto.subtle) and shows ✓ for a
 * host only when the SHA-256 that host reports for what it wrote equals the local one.
 * Progress comes back as NDJSON on the streamed response.
 */
import { errorFrom, query, requestHeaders } from './api';
import { formatBytes, h, replaceChildren, setText } from './dom';
import { finalPushPath } from './push-path';
import { oneLine } from './visible-text';
import { prefillTargets, targetChips, type Chips } from './chips';
import { hostsStore } from './hosts-store';
import { errorText } from './run-groups';
import type { View } from './view';

interface HostRow {
  el: HTMLElement;
  bar: HTMLProgressElement;
  text: HTMLElement;
}

type PushMessage =
  | { type: 'hosts'; hosts: string[] }
  | { type: 'upload'; bytes: number; total: number }
  | { type: 'progress'; host: string; bytes: number; total: number }
  | { type: 'result'; host: string; ok: boolean; sha256?: string; bytes?: number; error?: { code: string; message: string } }
  | { type: 'done'; ok: number; failed: number }
  | { type: 'error'; code: string; message: string };

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class PushView implements View {
  readonly el: HTMLElement;
  private readonly file: HTMLInputElement;
  private readonly targets: HTMLInputElement;
  private readonly path: HTMLInputElement;
  private readonly mode: HTMLInputElement;
  private readonly submit: HTMLButtonElement;
  private readonly summary: HTMLElement;
  private readonly localHash: HTMLElement;
  private readonly finalPath: HTMLElement;
  private readonly upload: HTMLProgressElement;
  private readonly message: HTMLElement;
  private readonly list: HTMLElement;
  private readonly lastPrefill = { value: '' };
  private readonly chips: Chips;
  private rows = new Map<string, HostRow>();
  private busy = false;

  constructor() {
    this.file = h('input', { id: 'push-file', type: 'file', required: true, 'data-testid': 'push-file' });
    this.targets = h('input', { id: 'push-targets', 'data-testid': 'push-targets', placeholder: 'web01,web02  @web  role=db', autocomplete: 'off', spellcheck: 'false', required: true });
    this.path = h('input', { id: 'push-path', 'data-testid': 'push-path', placeholder: '/tmp/file or /etc/motd', autocomplete: 'off', spellcheck: 'false', required: true, class: 'mono' });
    this.mode = h('input', { id: 'push-mode', value: '0644', pattern: '0?[0-7]{3,4}', class: 'narrow mono', title: 'Octal permissions, e.g. 0644' });
    this.submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'push-submit' }, 'Push');
    this.localHash = h('p', { class: 'muted small mono' });
    this.upload = h('progress', { max: 1, value: 0, 'aria-label': 'Upload to the gateway', hidden: true });
    this.summary = h('span', { role: 'status', 'aria-live': 'polite' });
    this.message = h('p', { class: 'error', role: 'alert', hidden: true });
    this.list = h('div', { class: 'push-list', 'aria-label': 'Hosts' });
    // The path the hosts will be given, shown before sending (`DIR/` means into DIR, as scp).
    this.finalPath = h('p', { class: 'small mono push-final', 'data-testid': 'push-final-path', hidden: true });
    this.file.addEventListener('change', () => {
      const f = this.file.files?.[0];
      if (f && this.path.value === '') this.path.value = '/tmp/';
      setText(this.localHash, f ? `${oneLine(f.name)} · ${formatBytes(f.size)}` : '');
      this.showFinalPath();
    });
    this.path.addEventListener('input', () => this.showFinalPath());
    this.chips = targetChips(this.targets);
    const form = h('form', { class: 'push-form' },
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'push-file' }, 'File'), this.file),
        h('div', { class: 'field wide' }, h('label', { for: 'push-path' }, 'Remote path'), this.path),
        h('div', { class: 'field' }, h('label', { for: 'push-mode' }, 'Mode'), this.mode),
      ),
      this.finalPath,
      h('div', { class: 'field wide' }, h('label', { for: 'push-targets' }, 'Targets'), this.targets),
      this.chips.el,
      h('div', { class: 'buttons' }, this.submit),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.start();
    });
    this.el = h('section', { class: 'view', 'aria-labelledby': 'push-title' },
      h('h2', { id: 'push-title' }, 'Push a file'),
      form,
      this.localHash,
      h('div', { class: 'progress-line' }, this.upload, this.summary),
      this.message,
      this.list,
    );
  }

  show(): void {
    void hostsStore.load();
    prefillTargets(this.targets, this.lastPrefill);
    this.chips.refresh();
  }

  /** The remote path that will be sent, or null before a file and a path are given. */
  private target(): string | null {
    const file = this.file.files?.[0];
    if (!file || this.path.value === '') return null;
    return finalPushPath(this.path.value, file.name);
  }

  private showFinalPath(): void {
    const target = this.target();
    this.finalPath.hidden = target === null;
    if (target === null) return;
    this.finalPath.dataset['path'] = target;
    replaceChildren(this.finalPath, 'Writes to ', h('code', {}, oneLine(target)), ' on each host', target !== this.path.value ? ' (into the directory, under the file\'s own name, as scp does)' : '');
  }

  private async start(): Promise<void> {
    const file = this.file.files?.[0];
    if (this.busy || !file) return;
    this.busy = true;
    this.submit.disabled = true;
    this.message.hidden = true;
    this.rows.clear();
    replaceChildren(this.list);
    try {
      this.summary.textContent = 'computing SHA-256…';
      // crypto.subtle hashes a whole buffer (no streaming digest): the file is read once for
      // that, and the upload below sends the File itself, which the browser reads from disk again.
      const local = await sha256Hex(await file.arrayBuffer());
      setText(this.localHash, `${oneLine(file.name)} · ${formatBytes(file.size)} · SHA-256 ${local}`);
      this.localHash.dataset['sha256'] = local;
      this.summary.textContent = 'uploading…';
      this.upload.hidden = false;
      this.upload.max = Math.max(1, file.size);
      this.upload.value = 0;
      const path = finalPushPath(this.path.value, file.name);
      this.showFinalPath();
      const url = `/api/push${query({ targets: this.targets.value.trim(), path, mode: this.mode.value || undefined })}`;
      const res = await fetch(url, {
        method: 'PUT',
        credentials: 'same-origin',
        headers: requestHeaders('PUT', { 'content-type': 'application/octet-stream' }),
        body: file,
      });
      if (!res.ok || !res.body) throw await errorFrom(res);
      await this.readProgress(res.body, local);
    } catch (err) {
      setText(this.message, (err as Error).message);
      this.message.hidden = false;
      this.summary.textContent = 'failed';
      for (const row of this.rows.values()) if (row.el.dataset['state'] === 'running') this.setState(row, 'failed', 'no answer');
    } finally {
      this.busy = false;
      this.submit.disabled = false;
    }
  }

  /** NDJSON lines from the response body, as they arrive. */
  private async readProgress(body: ReadableStream<Uint8Array>, local: string): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    let finished = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buffered += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        let msg: PushMessage;
        try {
          msg = JSON.parse(line) as PushMessage;
        } catch {
          continue;
        }
        if (this.onMessage(msg, local)) finished = true;
      }
      if (done) break;
    }
    if (!finished) throw new Error('The push ended before every host answered; check the hosts (their state below) and try again.');
  }

  /** Returns true on the last message. */
  private onMessage(msg: PushMessage, local: string): boolean {
    switch (msg.type) {
      case 'hosts':
        for (const host of msg.hosts) this.addRow(host);
        this.summary.textContent = `${msg.hosts.length} host${msg.hosts.length === 1 ? '' : 's'}`;
        return false;
      case 'upload':
        this.upload.max = Math.max(1, msg.total);
        this.upload.value = msg.bytes;
        return false;
      case 'progress': {
        const row = this.rows.get(msg.host) ?? this.addRow(msg.host);
        row.bar.max = Math.max(1, msg.total);
        row.bar.value = msg.bytes;
        row.text.textContent = `${formatBytes(msg.bytes)} / ${formatBytes(msg.total)}`;
        return false;
      }
      case 'result': {
        const row = this.rows.get(msg.host) ?? this.addRow(msg.host);
        if (msg.sha256) row.el.dataset['sha256'] = msg.sha256;
        if (msg.ok && msg.sha256 === local) {
          row.bar.value = row.bar.max;
          this.setState(row, 'ok', `✓ SHA-256 verified${msg.bytes !== undefined ? ` · ${formatBytes(msg.bytes)}` : ''}`);
        } else if (msg.ok) {
          this.setState(row, 'failed', `✗ SHA-256 on the host (${msg.sha256 ?? 'none'}) differs from the file's`);
        } else {
          this.setState(row, 'failed', `✗ ${msg.error ? errorText(msg.error) : 'failed'}`);
        }
        return false;
      }
      case 'done':
        this.upload.value = this.upload.max;
        this.summary.textContent = `${msg.ok} ok${msg.failed ? `, ${msg.failed} failed` : ''}`;
        return true;
      case 'error':
        throw new Error(errorText(msg));
    }
    return false;
  }

  private addRow(host: string): HostRow {
    const bar = h('progress', { max: 1, value: 0, 'aria-label': `Progress on ${host}` });
    const text = h('span', { class: 'push-text' }, 'waiting');
    const el = h('div', { class: 'push-host', 'data-testid': 'push-host', 'data-host': host, 'data-state': 'running' }, h('span', { class: 'name' }, oneLine(host)), bar, text);
    const row = { el, bar, text };
    this.rows.set(host, row);
    this.list.appendChild(el);
    return row;
  }

  private setState(row: HostRow, state: 'ok' | 'failed' | 'running', text: string): void {
    row.el.dataset['state'] = state;
    setText(row.text, text);
  }
}
