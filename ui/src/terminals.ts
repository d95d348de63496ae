/**
 * Terminal tabs: one xterm.js terminal per tab, several at once, each a PTY on a host through
 * the gateway (WS /api/terminal). Keystrokes and output travel as binary frames, untouched;
 * the terminal follows the window's size (fit addon → `resize` message). When the remote side
 * ends, the tab and a `terminal-exit` line show its exit status; the text stays readable.
 */
import type { Terminal } from '@xterm/xterm';
import type { FitAddon } from '@xterm/addon-fit';
import { sessionLost, wsUrl, WS_SESSION_ENDED } from './api';
import { h, replaceChildren, setText } from './dom';
import { oneLine } from './visible-text';
import { errorText } from './run-groups';
import { PacedSender } from './paced-sender';
import type { View } from './view';

interface Tab {
  id: number;
  host: string;
  term: Terminal;
  fit: FitAddon;
  ws: WebSocket | null;
  pane: HTMLElement;
  tab: HTMLElement;
  label: HTMLElement;
  exit: HTMLElement;
  /** Input in chunks the console accepts (a big paste must not end the session). */
  input: PacedSender;
  state: 'connecting' | 'open' | 'exited';
}

const encoder = new TextEncoder();

/**
 * xterm.js and its fit addon, loaded when the first terminal opens: they are most of the page's
 * script (~300 KB), which every page load would otherwise parse before DOMContentLoaded.
 */
let xterm: { Terminal: typeof Terminal; FitAddon: typeof FitAddon } | null = null;
let xtermLoading: Promise<void> | null = null;

function loadXterm(): Promise<void> {
  xtermLoading ??= Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]).then(
    ([x, f]) => void (xterm = { Terminal: x.Terminal, FitAddon: f.FitAddon }),
    (err: unknown) => {
      xtermLoading = null; // a failed load (connection lost) is tried again by the next show
      throw err;
    },
  );
  return xtermLoading;
}

export class TerminalsView implements View {
  readonly el: HTMLElement;
  private readonly tabBar: HTMLElement;
  private readonly panes: HTMLElement;
  private readonly empty: HTMLElement;
  private tabs: Tab[] = [];
  private active: Tab | null = null;
  private nextId = 1;
  private visible = false;
  private resizeQueued = false;
  /** Calls of `show`, counted: see its wait for xterm.js. */
  private shows = 0;
  /** Set by `openNext`: the next show of this host opens a new tab even if one exists. */
  private pendingNew: string | null = null;

  constructor() {
    this.tabBar = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Open terminals' });
    this.panes = h('div', { class: 'panes' });
    this.empty = h('p', { class: 'muted empty' }, 'No terminal open. Pick a host on the ', h('a', { href: '#/hosts' }, 'hosts page'), ' and press “terminal”.');
    this.el = h('section', { class: 'view terminals', 'aria-label': 'Terminals' }, this.tabBar, this.panes, this.empty);
    window.addEventListener('resize', this.onWindowResize);
  }

  private readonly onWindowResize = () => this.queueFit();

  /** `#/terminal/NAME`: show the tab for NAME (the active one if it is NAME's), or open one. */
  show(host: string | null): void {
    this.visible = true;
    const call = ++this.shows;
    if (!xterm && host) {
      // Only the latest route is shown once xterm.js is here (the user may have moved on).
      loadXterm().then(
        () => {
          if (this.visible && call === this.shows) this.show(host);
        },
        (err: unknown) => {
          this.empty.textContent = `The terminal could not be loaded: ${(err as Error).message}. Reload the page to try again.`;
          this.empty.hidden = false;
        },
      );
      return;
    }
    if (host && this.pendingNew === host) {
      this.pendingNew = null;
      this.activate(this.open(host));
    } else if (host) {
      const tab = this.active?.host === host ? this.active : [...this.tabs].reverse().find((t) => t.host === host);
      this.activate(tab ?? this.open(host));
    } else if (this.active) {
      this.activate(this.active);
    }
    this.empty.hidden = this.tabs.length > 0;
  }

  /** The hosts page's “terminal” button: a new tab for `host`, shown by the route that follows. */
  openNext(host: string): void {
    this.pendingNew = host;
    location.hash = `#/terminal/${encodeURIComponent(host)}`;
  }

  hide(): void {
    this.visible = false;
  }

  /** A new terminal to `host` (a second one to the same host is a second tab). */
  open(host: string): Tab {
    const { Terminal, FitAddon } = xterm!;
    const term = new Terminal({
      // A steady cursor (xterm.js's default): the blinking one is an endless CSS animation, so
      // Chromium renders a frame every 16.7 ms and holds each incoming WebSocket message until
      // the frame in progress is done; the echo then waits for the next frame too. Measured
      // (bench row 10b, headless Chromium, same load): keydown → echo painted 29–36 ms median blinking, 11–13 ms steady.
      cursorBlink: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      allowProposedApi: false,
      theme: { background: '#111417', foreground: '#e6e6e6' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    const id = this.nextId++;
    const label = h('span', { class: 'tab-label' }, oneLine(host));
    const close = h('button', { type: 'button', class: 'tab-close', 'aria-label': `Close the terminal on ${host}`, title: 'Close' }, '×');
    const tabEl = h('div', { class: 'tab', role: 'tab', tabindex: 0, id: `tab-${id}`, 'data-host': host }, label, close);
    const exit = h('div', { class: 'terminal-exit', 'data-testid': 'terminal-exit', role: 'status', hidden: true });
    const screen = h('div', { class: 'terminal-screen' });
    const pane = h('div', { class: 'pane', role: 'tabpanel', 'aria-labelledby': `tab-${id}`, 'data-testid': 'terminal', 'data-host': host, 'data-state': 'connecting' }, screen, exit);
    const notice = h('div', { class: 'terminal-notice', 'data-testid': 'terminal-notice', role: 'alert', hidden: true });
    pane.insertBefore(notice, exit);
    let noticeTimer: ReturnType<typeof setTimeout> | undefined;
    const input = new PacedSender(() => tab.ws, (message) => {
      setText(notice, message);
      notice.hidden = false;
      clearTimeout(noticeTimer);
      noticeTimer = setTimeout(() => (notice.hidden = true), 15_000);
    });
    const tab: Tab = { id, host, term, fit, ws: null, pane, tab: tabEl, label, exit, input, state: 'connecting' };
    tabEl.addEventListener('click', (event) => {
      if (event.target === close) return;
      this.activate(tab);
      this.route(tab);
    });
    tabEl.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.activate(tab);
        this.route(tab);
      }
    });
    close.addEventListener('click', () => this.close(tab));
    this.tabBar.appendChild(tabEl);
    this.panes.appendChild(pane);
    this.tabs.push(tab);
    this.empty.hidden = true;
    // Opened while visible so the fit addon can measure it before the PTY's size is asked for.
    pane.hidden = false;
    term.open(screen);
    fit.fit();
    this.connect(tab);
    return tab;
  }

  private connect(tab: Tab): void {
    const { term } = tab;
    const ws = new WebSocket(wsUrl('/api/terminal', { host: tab.host, cols: term.cols, rows: term.rows }));
    ws.binaryType = 'arraybuffer';
    tab.ws = ws;
    ws.addEventListener('message', (event: MessageEvent) => {
      if (event.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(event.data));
        return;
      }
      let msg: { type?: string; code?: number | string | null; signal?: string | null; message?: string };
      try {
        msg = JSON.parse(String(event.data)) as typeof msg;
      } catch {
        return;
      }
      if (msg.type === 'open') this.setState(tab, 'open');
      else if (msg.type === 'exit') this.ended(tab, msg.signal ? `killed by ${msg.signal}` : `exited with status ${msg.code ?? '?'}`, msg.code === 0);
      else if (msg.type === 'error') this.ended(tab, `error: ${typeof msg.code === 'string' ? errorText({ code: msg.code, message: msg.message ?? '' }) : msg.message ?? 'unknown'}`, false);
    });
    ws.addEventListener('close', (event: CloseEvent) => {
      tab.ws = null;
      if (event.code === WS_SESSION_ENDED) {
        this.ended(tab, 'session ended', false);
        sessionLost();
        return;
      }
      if (tab.state !== 'exited') this.ended(tab, `connection closed${event.reason ? `: ${event.reason}` : ` (code ${event.code})`}`, false);
    });
    term.onData((data) => this.send(tab, encoder.encode(data)));
    // Mouse reports in X10 mode are bytes > 127 given as a "binary" string: one char per byte.
    term.onBinary((data) => {
      const bytes = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
      this.send(tab, bytes);
    });
    term.onResize(({ cols, rows }) => {
      if (tab.ws?.readyState === WebSocket.OPEN) tab.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
  }

  private send(tab: Tab, bytes: Uint8Array): void {
    if (tab.state !== 'exited' && tab.ws?.readyState === WebSocket.OPEN) tab.input.send(bytes);
  }

  private setState(tab: Tab, state: Tab['state']): void {
    tab.state = state;
    tab.pane.dataset['state'] = state;
    tab.tab.classList.toggle('exited', state === 'exited');
  }

  private ended(tab: Tab, text: string, ok: boolean): void {
    if (tab.state === 'exited') return;
    this.setState(tab, 'exited');
    tab.input.clear();
    setText(tab.exit, text);
    tab.exit.hidden = false;
    tab.exit.classList.toggle('ok', ok);
    replaceChildren(tab.label, oneLine(tab.host), h('span', { class: ok ? 'tab-status ok' : 'tab-status bad', title: text }, ok ? ' ✓' : ` ✗ ${text.replace(/^exited with status /, '')}`));
    tab.term.options.cursorBlink = false;
    tab.term.write('\x1b[?25l'); // nothing more goes to the host: no cursor invites typing
    if (tab.ws && tab.ws.readyState === WebSocket.OPEN) tab.ws.close(1000);
    this.queueFit();
  }

  private activate(tab: Tab): void {
    this.active = tab;
    for (const t of this.tabs) {
      const on = t === tab;
      t.pane.hidden = !on;
      t.tab.classList.toggle('active', on);
      t.tab.setAttribute('aria-selected', String(on));
    }
    // Visible now: measure (the window may have changed while it was hidden), then focus.
    this.fitActive();
    tab.term.focus();
  }

  private route(tab: Tab): void {
    const hash = `#/terminal/${encodeURIComponent(tab.host)}`;
    if (location.hash !== hash) location.hash = hash;
  }

  private close(tab: Tab): void {
    if (tab.ws && tab.ws.readyState <= WebSocket.OPEN) tab.ws.close(1000);
    tab.term.dispose();
    tab.pane.remove();
    tab.tab.remove();
    this.tabs = this.tabs.filter((t) => t !== tab);
    if (this.active === tab) {
      this.active = this.tabs[this.tabs.length - 1] ?? null;
      if (this.active) {
        this.activate(this.active);
        this.route(this.active);
      } else {
        this.empty.hidden = false;
        if (this.visible) location.hash = '#/hosts';
      }
    }
  }

  /** Window resizes come in bursts: fit once per frame. */
  private queueFit(): void {
    if (this.resizeQueued) return;
    this.resizeQueued = true;
    requestAnimationFrame(() => {
      this.resizeQueued = false;
      this.fitActive();
    });
  }

  private fitActive(): void {
    if (!this.visible || !this.active) return;
    // fit() resizes the terminal, and xterm's onResize sends the new size to the PTY.
    if (this.active.fit.proposeDimensions()) this.active.fit.fit();
  }

  /** Close every terminal (logout); the view is not used again. */
  closeAll(): void {
    window.removeEventListener('resize', this.onWindowResize);
    for (const tab of [...this.tabs]) {
      if (tab.ws && tab.ws.readyState <= WebSocket.OPEN) tab.ws.close(1000);
      tab.term.dispose();
      tab.pane.remove();
      tab.tab.remove();
    }
    this.tabs = [];
    this.active = null;
    this.empty.hidden = false;
  }
}
