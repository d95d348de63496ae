/**
 * Recordings: the list (GET /api/recordings) and an in-page player (`#/recordings/ID`):
 * asciinema-player fed the asciicast text fetched from /api/recordings/ID (the same request
 * the gateway audits as `replayed`). An exec recording (plain output) is shown as text.
 * The player is a separate chunk, loaded the first time a recording is played.
 */
import type { Player } from 'asciinema-player';
import type { Terminal } from '@xterm/xterm';
import { api, errorFrom } from './api';
import { displayText, formatBytes, formatDuration, formatTime, h, outputNode, replaceChildren, setText } from './dom';
import { oneLine } from './visible-text';
import { playableCast } from './cast-text';
import type { View } from './view';

interface RecordingInfo {
  id: string;
  operator: string;
  host: string;
  as: string;
  startedAt: string;
  durationMs: number | null;
  bytes: number;
  sha256: string | null;
  type?: 'terminal' | 'exec';
  command?: string | null;
  error?: string;
}

export class RecordingsView implements View {
  readonly el: HTMLElement;
  private readonly listBox: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly status: HTMLElement;
  private readonly playerBox: HTMLElement;
  private known = new Map<string, RecordingInfo>();
  private player: Player | null = null;
  private fallback: Terminal | null = null;

  constructor() {
    this.status = h('span', { class: 'muted', role: 'status' });
    this.body = h('tbody');
    this.listBox = h('div', {},
      h('div', { class: 'toolbar' }, h('h2', { id: 'rec-title' }, 'Recordings'), this.status, h('span', { class: 'spacer' }), h('button', { type: 'button', onclick: () => void this.loadList() }, 'Refresh')),
      h('table', { class: 'grid recordings' },
        h('thead', {}, h('tr', {}, ...['Started', 'Operator', 'Host', 'As', 'Type', 'Duration', 'Size', ''].map((t) => h('th', {}, t)))),
        this.body,
      ),
    );
    this.playerBox = h('div', { hidden: true });
    this.el = h('section', { class: 'view', 'aria-labelledby': 'rec-title' }, this.listBox, this.playerBox);
  }

  show(id: string | null): void {
    this.disposePlayer();
    this.listBox.hidden = id !== null;
    this.playerBox.hidden = id === null;
    if (id === null) void this.loadList();
    else void this.play(id);
  }

  hide(): void {
    this.disposePlayer();
  }

  private async loadList(): Promise<void> {
    this.status.textContent = 'loading…';
    this.status.classList.remove('error');
    try {
      const { recordings } = await api<{ recordings: RecordingInfo[] }>('GET', '/api/recordings');
      this.known = new Map(recordings.map((r) => [r.id, r]));
      replaceChildren(this.body, ...recordings.map((r) => this.row(r)));
      if (recordings.length === 0) this.body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No recordings yet.')));
      this.status.textContent = `${recordings.length} recording${recordings.length === 1 ? '' : 's'}`;
    } catch (err) {
      setText(this.status, (err as Error).message);
      this.status.classList.add('error');
    }
  }

  private row(r: RecordingInfo): HTMLTableRowElement {
    const href = `#/recordings/${encodeURIComponent(r.id)}`;
    const tr = h('tr', { 'data-testid': 'recording-row', 'data-id': r.id, class: 'clickable' },
      h('td', { class: 'nowrap', title: r.startedAt }, formatTime(r.startedAt)),
      h('td', {}, oneLine(r.operator)),
      h('td', {}, oneLine(r.host)),
      h('td', {}, oneLine(r.as)),
      h('td', {}, r.type === 'exec' ? h('span', {}, 'exec ', h('code', {}, oneLine(r.command ?? ''))) : 'terminal'),
      h('td', { class: 'nowrap' }, r.durationMs === null ? 'recording…' : formatDuration(r.durationMs)),
      h('td', { class: 'nowrap' }, formatBytes(r.bytes)),
      h('td', {}, h('a', { href, 'aria-label': `Play the recording of ${r.operator} on ${r.host}` }, 'play')),
    );
    tr.addEventListener('click', (event) => {
      if ((event.target as HTMLElement).closest('a')) return;
      location.hash = href;
    });
    return tr;
  }

  private async play(id: string): Promise<void> {
    // Opened by its address (a link, a reload): the list says who, where, and whether it is still being recorded.
    if (!this.known.has(id)) await this.loadList();
    const info = this.known.get(id);
    const box = h('div', { class: 'player', 'data-testid': 'player', 'data-id': id });
    const status = h('p', { class: 'muted', role: 'status' }, 'loading…');
    replaceChildren(this.playerBox,
      h('div', { class: 'toolbar' },
        h('a', { href: '#/recordings', class: 'button' }, '← Recordings'),
        h('h2', { id: 'rec-title' }, info ? `${oneLine(info.operator)} on ${oneLine(info.host)}` : 'Recording'),
        info ? h('span', { class: 'muted' }, `${formatTime(info.startedAt)} · as ${oneLine(info.as)}${info.sha256 ? ` · SHA-256 ${info.sha256.slice(0, 16)}…` : ''}`) : null,
      ),
      status,
      box,
    );
    try {
      const res = await fetch(`/api/recordings/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
      if (!res.ok) throw await errorFrom(res);
      const bytes = new Uint8Array(await res.arrayBuffer());
      status.remove();
      const text = displayText(bytes);
      if (info?.type === 'exec' || !text.startsWith('{')) {
        box.appendChild(h('pre', { class: 'out' }, outputNode(text)));
        return;
      }
      if (this.playerBox.hidden || !box.isConnected) return; // moved away meanwhile
      // A recording still being written ends in a torn line; a session that showed nothing has
      // no events: the player would refuse either whole (cast-text.ts). Say what it is instead.
      const cast = playableCast(text);
      const note = (message: string) => box.appendChild(h('p', { class: 'muted small', 'data-testid': 'player-note', role: 'status' }, message));
      if (cast.text === null || cast.events === 0) {
        note(cast.text === null
          ? 'This recording is not an asciicast v2 file the player can read; its text is below.'
          : `This recording has no output: the session ended before the host sent anything${info?.durationMs === null ? ', or it is still being recorded' : ''}.`);
        if (cast.text === null) box.appendChild(h('pre', { class: 'out' }, outputNode(text)));
        return;
      }
      if (cast.dropped > 0) note(`The recording's last ${cast.dropped === 1 ? 'event is' : `${cast.dropped} events are`} cut off (${info?.durationMs === null ? 'it is still being recorded' : 'the gateway stopped while writing it'}); the rest plays.`);
      if (!wasmAllowed()) {
        await this.staticScreen(cast.text, box);
        return;
      }
      // Loaded on first use: its WebAssembly starts compiling as soon as the module is evaluated.
      const AsciinemaPlayer = await import('asciinema-player');
      if (this.playerBox.hidden || !box.isConnected) return;
      this.player = AsciinemaPlayer.create({ data: cast.text }, box, { fit: 'both', controls: true, autoPlay: true, preload: true, idleTimeLimit: 2, terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace' });
      // Anything else the player cannot play: its overlay says little, so the page says why.
      (this.player as unknown as { addEventListener(name: 'error', fn: () => void): void }).addEventListener('error', () => {
        if (box.isConnected) note('The player could not play this recording; the browser console has the details.');
      });
    } catch (err) {
      setText(status, (err as Error).message);
      status.classList.add('error');
    }
  }

  /**
   * When the page's CSP forbids WebAssembly (the player's terminal emulator is WebAssembly),
   * show the recording's output at once in a plain xterm.js terminal instead of a blank player.
   */
  private async staticScreen(cast: string, box: HTMLElement): Promise<void> {
    const lines = cast.split('\n').filter((l) => l.trim() !== '');
    let header: { width?: number; height?: number } = {};
    try {
      header = JSON.parse(lines[0] ?? '{}') as typeof header;
    } catch {
      // not asciicast: shown as it is below
    }
    box.appendChild(h('p', { class: 'muted small' }, 'The console\'s Content-Security-Policy does not allow WebAssembly (\'wasm-unsafe-eval\'), which the player needs: this is the recording\'s output without timing.'));
    // xterm.js is a chunk of its own, loaded on first use (as by the terminals page).
    const { Terminal } = await import('@xterm/xterm');
    if (this.playerBox.hidden || !box.isConnected) return;
    const screen = h('div', { class: 'static-screen' });
    box.appendChild(screen);
    const term = new Terminal({ cols: header.width ?? 80, rows: header.height ?? 24, disableStdin: true, scrollback: 10000, convertEol: false });
    term.open(screen);
    for (const line of lines.slice(1)) {
      try {
        const event = JSON.parse(line) as [number, string, string];
        if (event[1] === 'o') term.write(event[2]);
      } catch {
        // a torn last line (recording still being written): skip it
      }
    }
    this.fallback = term;
  }

  private disposePlayer(): void {
    this.player?.dispose();
    this.player = null;
    this.fallback?.dispose();
    this.fallback = null;
  }
}

/** Whether this page may compile WebAssembly (a CSP without 'wasm-unsafe-eval' forbids it). */
function wasmAllowed(): boolean {
  try {
    // The smallest valid module: magic number and version.
    new WebAssembly.Module(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    return true;
  } catch {
    return false;
  }
}
