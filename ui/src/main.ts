/**
 * The web console's page (WEB-SPEC.md "Front end"): boot (a one-time login link in the URL
 * fragment, else the existing session, else the login form), the header, and the hash routes
 * `#/hosts`, `#/terminal/NAME`, `#/run`, `#/push`, `#/audit`, `#/recordings[/ID]`. Pages are
 * built once and kept, so open terminals and a running command survive moving around.
 */
import '@xterm/xterm/css/xterm.css';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import '../style.css';
import { api, ApiError, currentSession, setSession, whenSessionLost, type SessionInfo } from './api';
import { h, replaceChildren } from './dom';
import { hostsStore } from './hosts-store';
import { exchangeLoginToken, loginMessage, renderLogin, takeLoginToken } from './login';
import { AuditView } from './audit';
import { HostsView } from './hosts';
import { PushView } from './push';
import { RecordingsView } from './recordings';
import { RunView } from './run';
import { TerminalsView } from './terminals';
import type { View } from './view';
import { oneLine } from './visible-text';

type RouteName = 'hosts' | 'terminal' | 'run' | 'push' | 'audit' | 'recordings';
const NAV: [RouteName, string][] = [
  ['hosts', 'Hosts'],
  ['terminal', 'Terminals'],
  ['run', 'Run'],
  ['push', 'Push'],
  ['audit', 'Audit'],
  ['recordings', 'Recordings'],
];
const NAV_IDS: Partial<Record<RouteName, string>> = { hosts: 'nav-hosts', run: 'nav-run', push: 'nav-push', audit: 'nav-audit', recordings: 'nav-recordings' };

class App {
  private readonly root = h('div', { id: 'app' });
  private shell: HTMLElement | null = null;
  private main: HTMLElement | null = null;
  private whoami: HTMLElement | null = null;
  private links = new Map<RouteName, HTMLAnchorElement>();
  private views = new Map<RouteName, View>();
  private current: View | null = null;
  private terminals: TerminalsView | null = null;

  start(): void {
    document.body.appendChild(this.root);
    // The server says why the session ended (revoked, connection lost, idle, ...).
    whenSessionLost(() => void sessionEndedReason().then((why) => this.toLogin(why)));
    window.addEventListener('hashchange', () => {
      // A one-time link pasted into a tab that already shows the console only changes the hash.
      if (location.hash.startsWith('#login=')) void this.boot();
      else this.route();
    });
    void this.boot();
  }

  private async boot(): Promise<void> {
    const token = takeLoginToken();
    if (token) {
      try {
        this.loggedIn(await exchangeLoginToken(token));
      } catch (err) {
        // The server's message already says what to do (ask for a new link).
        this.toLogin(`The login link did not work: ${loginMessage(err)}`);
      }
      return;
    }
    try {
      this.loggedIn(await api<SessionInfo>('GET', '/api/session', { quiet401: true }));
    } catch (err) {
      this.toLogin(err instanceof ApiError && err.status === 401 ? undefined : loginMessage(err));
    }
  }

  private loggedIn(session: SessionInfo): void {
    setSession(session);
    this.buildShell(session);
    if (!/^#\/[a-z]/.test(location.hash)) history.replaceState(null, '', '#/hosts');
    this.route();
  }

  private toLogin(message?: string): void {
    this.teardown();
    setSession(null);
    document.title = 'shellwire console: log in';
    renderLogin(this.root, (s) => this.loggedIn(s), message);
  }

  private buildShell(session: SessionInfo): void {
    this.teardown();
    const nav = h('nav', { 'aria-label': 'Pages' });
    for (const [name, label] of NAV) {
      const link = h('a', { href: name === 'terminal' ? '#/terminal' : `#/${name}`, 'data-testid': NAV_IDS[name] ?? null }, label);
      this.links.set(name, link);
      nav.appendChild(link);
    }
    this.whoami = h('span', { class: 'whoami', 'data-testid': 'whoami', title: `Session ends by ${session.expiresAt}` }, session.user);
    const logout = h('button', { type: 'button', class: 'logout', 'data-testid': 'logout', onclick: () => void this.logout() }, 'Log out');
    this.main = h('main', { id: 'main', tabindex: -1 });
    this.shell = h('div', { class: 'shell' },
      h('header', { class: 'topbar' }, h('span', { class: 'brand' }, 'shellwire'), nav, h('span', { class: 'spacer' }), h('span', { class: 'muted' }, 'signed in as '), this.whoami, logout),
      this.main,
    );
    this.terminals = new TerminalsView();
    this.views.set('terminal', this.terminals);
    const terminals = this.terminals;
    this.views.set('hosts', new HostsView((host) => terminals.openNext(host)));
    this.views.set('run', new RunView());
    this.views.set('push', new PushView());
    this.views.set('audit', new AuditView());
    this.views.set('recordings', new RecordingsView());
    for (const view of this.views.values()) {
      view.el.hidden = true;
      this.main.appendChild(view.el);
    }
    replaceChildren(this.root, this.shell);
  }

  private teardown(): void {
    this.terminals?.closeAll();
    this.terminals = null;
    this.current = null;
    this.views.clear();
    this.links.clear();
    this.shell = null;
    this.main = null;
    hostsStore.reset();
  }

  private route(): void {
    if (!currentSession() || !this.main) return;
    const match = /^#\/([a-z]+)(?:\/(.*))?$/.exec(location.hash);
    let name = (match?.[1] ?? 'hosts') as RouteName;
    if (!this.views.has(name)) name = 'hosts';
    let arg: string | null = null;
    if (match?.[2]) {
      try {
        arg = decodeURIComponent(match[2]);
      } catch {
        arg = match[2];
      }
    }
    const view = this.views.get(name)!;
    if (this.current && this.current !== view) {
      this.current.hide?.();
      this.current.el.hidden = true;
    }
    view.el.hidden = false;
    this.current = view;
    for (const [n, link] of this.links) {
      if (n === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `shellwire: ${NAV.find(([n]) => n === name)![1]}${arg ? ` ${oneLine(arg)}` : ''}`;
    view.show(arg);
  }

  private async logout(): Promise<void> {
    try {
      await api('POST', '/api/logout');
    } catch {
      // The session may be gone already: the login page is where we go either way.
    }
    this.toLogin();
  }
}

new App().start();

/** Why the session ended, as `/api/session` tells it for the (ended) session's cookie. */
async function sessionEndedReason(): Promise<string> {
  try {
    const res = await fetch('/api/session', { credentials: 'same-origin' });
    if (res.status === 401) {
      const body = (await res.json()) as { error?: { message?: string } };
      if (typeof body.error?.message === 'string') return body.error.message;
    }
  } catch {
    // the generic text below
  }
  return 'Your session ended; log in again.';
}
