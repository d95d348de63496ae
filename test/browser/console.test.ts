/**
 * The web console in a real browser (issue 14 item 4): Debian's Chromium, headless, driven by
 * playwright-core, against the real CLI's `shellwire gateway --web` child process in front of
 * three real daemons (test/helpers/web-console.ts). What is checked is what a user would check:
 * the page's text, the terminal's screen, files on the hosts' disks, and what a hostile page or
 * a hand-made WebSocket manages to do (nothing).
 *
 * The steps share one browser and one console and run in order (login before the terminal,
 * the terminal before its recording). Each writes a screenshot of its page to docs/screenshots/
 * at a laptop's 1366×768 (issue 14 item 5).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { join, resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { createIdentity } from '../../src/auth/identity.js';
import { LAPTOP, launchBrowser, noChromium, type TestBrowser } from '../helpers/browser.js';
import { GUEST_HOST, GUEST_PASSWORD, HOSTS, OPS_PASSWORD, httpRequest, startWebConsole, wsUpgrade, type WebConsole } from '../helpers/web-console.js';
import { waitFor } from '../helpers/daemon.js';

const SHOTS = resolve(import.meta.dirname, '../../docs/screenshots');
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const byTestId = (id: string) => `[data-testid="${id}"]`;

/** The terminal's screen as text lines (xterm.js's DOM rows; its non-breaking spaces as spaces). */
async function screenLines(page: Page, host: string): Promise<string[]> {
  return page.evaluate((h) => {
    const term = document.querySelector(`[data-testid="terminal"][data-host="${h}"]`);
    const rows = term ? Array.from(term.querySelectorAll('.xterm-rows > div')) : [];
    return rows.map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd());
  }, host);
}

/** Wait until the terminal's screen satisfies `test`; its lines. */
async function waitScreen(page: Page, host: string, test: (lines: string[]) => boolean, what: string, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let lines: string[] = [];
  while (Date.now() < deadline) {
    lines = await screenLines(page, host);
    if (test(lines)) return lines;
    await page.waitForTimeout(50);
  }
  assert.fail(`${what}: not on ${host}'s terminal within ${timeoutMs} ms; the screen:\n${lines.filter(Boolean).join('\n')}`);
}

/** The number a `tput cols` printed after the last `marker` line on the screen. */
function colsAfter(lines: string[], marker: string): number | null {
  const at = lines.lastIndexOf(marker);
  if (at < 0) return null;
  const next = lines.slice(at + 1).find((l) => l.trim() !== '');
  return next && /^\d+$/.test(next.trim()) ? Number(next.trim()) : null;
}

/** The page's run groups: hosts (sorted), status, text. */
async function runGroups(page: Page): Promise<Array<{ hosts: string[]; status: string; text: string }>> {
  return page.$$eval(byTestId('run-group'), (els) =>
    els.map((el) => ({ hosts: (el.getAttribute('data-hosts') ?? '').split(',').filter(Boolean).sort(), status: el.getAttribute('data-status') ?? '', text: el.textContent ?? '' })),
  );
}

/** Run `command` on `targets` from the run page; the groups once every host has its result. */
async function runOnPage(page: Page, targets: string, command: string, hostCount: number) {
  await page.click(byTestId('nav-run'));
  await page.fill(byTestId('run-targets'), targets);
  await page.fill(byTestId('run-command'), command);
  // The last run's groups are marked: only groups of this run count below.
  await page.$$eval(byTestId('run-group'), (els) => els.forEach((e) => e.setAttribute('data-stale', '1')));
  await page.click(byTestId('run-submit'));
  // Results come live: wait until every host sits in a group of this run.
  await page.waitForFunction(
    (n) => {
      const groups = Array.from(document.querySelectorAll('[data-testid="run-group"]'));
      if (groups.some((g) => g.hasAttribute('data-stale'))) return false;
      return groups.flatMap((g) => (g.getAttribute('data-hosts') ?? '').split(',').filter(Boolean)).length === n;
    },
    hostCount,
    { timeout: 20_000 },
  );
  return runGroups(page);
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function login(page: Page, origin: string, user: string, password: string): Promise<void> {
  await page.goto(`${origin}/`);
  await page.fill(byTestId('login-user'), user);
  await page.fill(byTestId('login-password'), password);
  await page.click(byTestId('login-submit'));
  await page.waitForSelector(byTestId('whoami'), { timeout: 10_000 });
  assert.match((await page.textContent(byTestId('whoami'))) ?? '', new RegExp(`\\b${user}\\b`));
}

/** The session cookie of `context` for the console, as a Cookie header. */
async function cookieHeader(context: BrowserContext, origin: string): Promise<string> {
  const cookies = await context.cookies(origin);
  const session = cookies.find((c) => c.name === 'sw_session');
  assert.ok(session, `the browser holds a sw_session cookie for ${origin} (it has: ${cookies.map((c) => c.name).join(', ') || 'none'})`);
  return `sw_session=${session.value}`;
}

/** In the page: open a WebSocket, send `send` once open; what happened until it closed (or `holdMs` passed). */
function pageWebSocket(page: Page, url: string, send: string[], holdMs = 1_500) {
  return page.evaluate(
    ({ url, send, holdMs }) =>
      new Promise<{ opened: boolean; closeCode: number | null; texts: string[]; binaryBytes: number }>((done) => {
        const r = { opened: false, closeCode: null as number | null, texts: [] as string[], binaryBytes: 0 };
        let ws: WebSocket;
        try {
          ws = new WebSocket(url);
        } catch {
          done(r);
          return;
        }
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => {
          r.opened = true;
          for (const m of send) ws.send(m.startsWith('bin:') ? new TextEncoder().encode(m.slice(4)) : m);
        };
        ws.onmessage = (e) => {
          if (typeof e.data === 'string') r.texts.push(e.data);
          else r.binaryBytes += (e.data as ArrayBuffer).byteLength;
        };
        const timer = setTimeout(() => {
          try {
            ws.close();
          } catch {
            // closed already
          }
          done(r);
        }, holdMs);
        ws.onclose = (e) => {
          r.closeCode = e.code;
          clearTimeout(timer);
          done(r);
        };
      }),
    { url, send, holdMs },
  );
}

describe('web console in Chromium (issue 14)', { skip: noChromium, timeout: 240_000 }, () => {
  let web: WebConsole;
  let tb: TestBrowser;
  let page: Page;
  let wss: string;
  const runMarker = `audit-marker-${randomBytes(4).toString('hex')}`;

  before(async () => {
    // Both at once, and both waited for: `after` stops whichever started if the other failed.
    const [b, w] = await Promise.allSettled([launchBrowser(), startWebConsole()]);
    if (b.status === 'fulfilled') tb = b.value;
    if (w.status === 'fulfilled') web = w.value;
    if (b.status === 'rejected') throw b.reason;
    if (w.status === 'rejected') throw w.reason;
    wss = web.origin.replace(/^https:/, 'wss:');
    page = tb.context.pages()[0] ?? (await tb.context.newPage());
  });

  after(async () => {
    await tb?.close();
    await web?.stop();
  });

  it('logs in with the password form; the hosts page lists the three hosts, reachable', async () => {
    await page.goto(`${web.origin}/`);
    await page.waitForSelector(byTestId('login-user'));
    await shot(page, 'login');
    // A wrong password is refused on the page, and no session comes of it.
    await page.fill(byTestId('login-user'), 'ops');
    await page.fill(byTestId('login-password'), 'wrong');
    await page.click(byTestId('login-submit'));
    await page.waitForSelector(byTestId('login-error'), { state: 'visible' });
    assert.equal(await page.$(byTestId('whoami')), null);
    await login(page, web.origin, 'ops', OPS_PASSWORD);
    await page.click(byTestId('nav-hosts'));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="host-row"][data-reachable="true"]').length === 3, null, { timeout: 15_000 });
    const rows = await page.$$eval(byTestId('host-row'), (els) => els.map((e) => [e.getAttribute('data-host'), e.getAttribute('data-reachable')]));
    assert.deepEqual(rows.map((r) => r[0]).sort(), [...HOSTS].sort());
    await shot(page, 'hosts');
  });

  it('a terminal: `echo hi; tput cols` shows hi and the width; a resized window changes tput cols; exit status shown', async () => {
    await page.click(`${byTestId('host-row')}[data-host="web01"] ${byTestId('open-terminal')}`);
    const term = `${byTestId('terminal')}[data-host="web01"]`;
    await page.waitForSelector(`${term}[data-state="open"]`, { timeout: 10_000 });
    await waitScreen(page, 'web01', (l) => l.some((line) => /[#$] ?$/.test(line)), 'the shell prompt');
    await page.click(term);
    await page.keyboard.type('echo hi; tput cols');
    await page.keyboard.press('Enter');
    const lines = await waitScreen(page, 'web01', (l) => colsAfter(l, 'hi') !== null, '`hi` and a width');
    const wide = colsAfter(lines, 'hi')!;
    // 1366 px of monospace text is far more than 80 columns: the terminal fits the window.
    assert.ok(wide > 80, `tput cols at 1366 px wide: ${wide}`);
    await shot(page, 'terminal');

    await page.setViewportSize({ width: 700, height: 600 });
    await page.waitForTimeout(300);
    await page.keyboard.type('echo narrow; tput cols');
    await page.keyboard.press('Enter');
    const narrowLines = await waitScreen(page, 'web01', (l) => colsAfter(l, 'narrow') !== null, 'the width after resizing');
    const narrow = colsAfter(narrowLines, 'narrow')!;
    assert.ok(narrow < wide && narrow >= 20, `tput cols went from ${wide} to ${narrow} when the window narrowed to 700 px`);

    await page.setViewportSize(LAPTOP);
    await page.waitForTimeout(300);
    await page.keyboard.type('echo wide-again; tput cols');
    await page.keyboard.press('Enter');
    const again = colsAfter(await waitScreen(page, 'web01', (l) => colsAfter(l, 'wide-again') !== null, 'the width after widening'), 'wide-again');
    assert.equal(again, wide, 'back at 1366 px the terminal is as wide as at first');

    await page.keyboard.type('exit 3');
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${term}[data-state="exited"]`, { timeout: 10_000 });
    assert.match((await page.textContent(byTestId('terminal-exit'))) ?? '', /\b3\b/);
  });

  it('run: one group per distinct output with its hosts; identical output is one group of 3; failures last', async () => {
    const targets = 'web01,web02,db01';
    const names = await runOnPage(page, targets, 'basename "$PWD"', 3);
    assert.deepEqual(names.map((g) => g.hosts).sort(), [['db01'], ['web01'], ['web02']]);
    for (const g of names) assert.ok(g.text.includes(g.hosts[0]!), `the group of ${g.hosts[0]} shows its output: ${g.text}`);

    const same = await runOnPage(page, '@web,@db', `echo ${runMarker}`, 3);
    assert.equal(same.length, 1, `one group: ${JSON.stringify(same)}`);
    assert.deepEqual(same[0]!.hosts, ['db01', 'web01', 'web02']);
    assert.ok(same[0]!.text.includes(runMarker));

    // web01 and web02 print "web", db01 prints "db" and fails: two groups, the failed one last.
    const mixed = await runOnPage(page, targets, 'n=$(basename "$PWD"); echo "${n%%[0-9]*}"; test "$n" != db01', 3);
    assert.deepEqual(mixed.map((g) => g.hosts), [['web01', 'web02'], ['db01']]);
    assert.notEqual(mixed[0]!.status, mixed[1]!.status);
    assert.match(mixed[1]!.status, /fail/);
    await shot(page, 'run');
  });

  it('push: a file to three hosts lands byte-exact on each disk; the page shows ✓ per host', async () => {
    const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(300_000)]);
    const want = sha256(data);
    await page.click(byTestId('nav-push'));
    await page.setInputFiles(byTestId('push-file'), { name: 'payload.bin', mimeType: 'application/octet-stream', buffer: data });
    await page.fill(byTestId('push-targets'), '@web,@db');
    await page.fill(byTestId('push-path'), 'pushed.bin');
    await page.click(byTestId('push-submit'));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="push-host"]:not([data-state="running"])').length === 3, null, { timeout: 20_000 });
    const shown = await page.$$eval(byTestId('push-host'), (els) => els.map((e) => ({ host: e.getAttribute('data-host'), state: e.getAttribute('data-state'), sha: e.getAttribute('data-sha256'), text: e.textContent ?? '' })));
    assert.deepEqual(shown.map((s) => s.host).sort(), [...HOSTS].sort());
    for (const s of shown) {
      assert.equal(s.state, 'ok', `${s.host}: ${s.text}`);
      assert.equal(s.sha, want, `${s.host}'s SHA-256 as the page shows it`);
      assert.ok(s.text.includes('✓'), `${s.host} shows ✓: ${s.text}`);
    }
    for (const host of HOSTS) {
      const copy = join(web.homes[host], 'pushed.bin');
      assert.equal(sha256(readFileSync(copy)), want, `SHA-256 of ${copy} on ${host}'s disk`);
    }
    await shot(page, 'push');
  });

  it('the audit page shows the run', async () => {
    await page.click(byTestId('nav-audit'));
    await page.waitForFunction((m) => Array.from(document.querySelectorAll('[data-testid="audit-row"]')).some((r) => (r.textContent ?? '').includes(m)), runMarker, { timeout: 10_000 });
    const rows = await page.$$eval(byTestId('audit-row'), (els, m) => els.filter((e) => (e.textContent ?? '').includes(m)).map((e) => e.textContent ?? ''), runMarker);
    for (const host of HOSTS) assert.ok(rows.some((r) => r.includes(host)), `an audit row names ${host} for the run: ${rows.join(' | ')}`);
    await shot(page, 'audit');
  });

  it('the recordings page plays the terminal session', async () => {
    await page.click(byTestId('nav-recordings'));
    await page.waitForSelector(byTestId('recording-row'), { timeout: 10_000 });
    const row = await page.$(`${byTestId('recording-row')}:has-text("web01")`);
    assert.ok(row, 'a recording of the web01 terminal is listed');
    await shot(page, 'recordings');
    await row.click();
    await page.waitForSelector(byTestId('player'), { timeout: 10_000 });
    // The recorded screen is on the page: the command typed and its output are in it.
    await page.waitForFunction(() => (document.querySelector('[data-testid="player"]')?.textContent ?? '').includes('tput cols'), null, { timeout: 15_000 });
    await shot(page, 'player');
    // And it is a player (asciinema-player: play/pause, the session's own timing), not a
    // static dump of the output: a user replays a session to see what happened when.
    const player = await page.$(`${byTestId('player')} .ap-player`);
    const note = await page.evaluate(() => document.querySelector('[data-testid="player"]')?.parentElement?.innerText ?? '');
    assert.ok(player, `asciinema-player plays the recording (the page says: ${note.replace(/\s+/g, ' ').slice(0, 300)})`);
  });

  it('no session: GET /api/hosts is 401 and a WebSocket upgrade fails, in the browser and from a raw client', async () => {
    const raw = await httpRequest(web.origin, '/api/hosts');
    assert.equal(raw.status, 401, raw.body);
    assert.match(raw.body, /SW_ERR_/);
    for (const path of ['/api/terminal?host=web01&cols=80&rows=24', '/api/run']) {
      const up = await wsUpgrade(web.origin, path, { origin: web.origin });
      assert.equal(up.opened, false, `${path} opened without a session`);
      if (!up.opened) assert.equal(up.status, 401, `${path}: ${up.body || up.error}`);
    }
    const fresh = await tb.newContext();
    const p = await fresh.newPage();
    await p.goto(`${web.origin}/`);
    await p.waitForSelector(byTestId('login-user'));
    assert.equal(await p.evaluate(() => fetch('/api/hosts').then((r) => r.status)), 401);
    const ws = await pageWebSocket(p, `${wss}/api/terminal?host=web01&cols=80&rows=24`, ['bin:touch no-session-marker\r']);
    assert.equal(ws.opened, false);
    assert.equal(existsSync(join(web.homes.web01, 'no-session-marker')), false);
    // The same browser context, once logged in, opens it: the session was what it lacked.
    await login(p, web.origin, 'guest', GUEST_PASSWORD);
    const with_ = await pageWebSocket(p, `${wss}/api/terminal?host=web01&cols=80&rows=24`, [], 1_000);
    assert.equal(with_.opened, true, 'the terminal opens with a session');
    await fresh.close();
  });

  it('a cross-origin WebSocket is refused, even when it carries the session cookie', async () => {
    // Another origin on the same site (same host, another port): Chromium sends the
    // SameSite=Strict cookie with it, so only the Origin check stands in the way.
    const id = await createIdentity('127.0.0.1');
    const evilPage = `<!doctype html><script>
      window.result = new Promise((done) => {
        const r = { opened: false, closeCode: null };
        const ws = new WebSocket(${JSON.stringify(`${wss}/api/run`)});
        ws.onopen = () => { r.opened = true; ws.send(JSON.stringify({ type: 'run', targets: 'web01', command: 'touch ${join(web.homes.web01, 'cross-origin-marker')}' })); };
        ws.onclose = (e) => { r.closeCode = e.code; done(r); };
        setTimeout(() => done(r), 3000);
      });
    </script>`;
    const evil: HttpsServer = createHttpsServer({ key: id.keyPem, cert: id.certPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(evilPage);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const evilOrigin = `https://127.0.0.1:${(evil.address() as { port: number }).port}`;
    try {
      const p = await tb.context.newPage();
      await p.goto(`${evilOrigin}/`);
      const r = await p.evaluate(() => (window as unknown as { result: Promise<{ opened: boolean; closeCode: number | null }> }).result);
      assert.equal(r.opened, false, 'the upgrade from another origin was refused');
      await p.close();
      // It reached the console (not a TLS failure in the browser) and was refused for its Origin.
      // The gateway writes its log asynchronously (pino, then a pipe): it may come after the answer.
      const refusals = () => web.log().split('\n').filter((l) => l.includes('refused') && l.includes(evilOrigin));
      assert.ok(await waitFor(() => refusals().length > 0, 5_000), `the gateway's log names the refused Origin ${evilOrigin}`);
      assert.equal(existsSync(join(web.homes.web01, 'cross-origin-marker')), false);

      // The same request from a raw client with the victim's cookie: refused for its Origin.
      const cookie = await cookieHeader(tb.context, web.origin);
      const foreign = await wsUpgrade(web.origin, '/api/run', { cookie, origin: evilOrigin });
      assert.equal(foreign.opened, false);
      if (!foreign.opened) {
        assert.equal(foreign.status, 403, foreign.body || foreign.error);
        assert.match(foreign.body, /origin/i);
      }
      // With the right Origin the same cookie opens it: the cookie was good, the Origin was not.
      const own = await wsUpgrade(web.origin, '/api/run', { cookie, origin: web.origin });
      assert.equal(own.opened, true, 'the same cookie from the console origin opens the WebSocket');
    } finally {
      await new Promise((r) => evil.close(r));
    }
  });

  it('guest cannot reach a host she lacks, even with hand-made WebSocket and push requests', async () => {
    const ctx = await tb.newContext();
    const p = await ctx.newPage();
    await login(p, web.origin, 'guest', GUEST_PASSWORD);
    await p.click(byTestId('nav-hosts'));
    await p.waitForSelector(byTestId('host-row'));
    await p.waitForTimeout(300);
    assert.deepEqual(await p.$$eval(byTestId('host-row'), (els) => els.map((e) => e.getAttribute('data-host'))), [GUEST_HOST]);

    // Commands run in the host's home (each host has its own): a relative marker shows where one ran.
    const marker = (tag: string) => `guest-${tag}`;
    const ranOn = (tag: string, host: 'web01' | 'web02' | 'db01') => existsSync(join(web.homes[host], marker(tag)));
    // A terminal to db01, by hand: no shell opens, the typed command never runs.
    const term = await pageWebSocket(p, `${wss}/api/terminal?host=db01&cols=80&rows=24`, [`bin:touch ${marker('term')}\r`]);
    assert.equal(term.opened, false, `terminal to db01: ${JSON.stringify(term)}`);
    assert.equal(term.binaryBytes, 0, 'no terminal output from db01');
    // Runs naming db01 and web02 by name, by address, beside her own host, and as @all.
    const db = web.hosts.db01;
    const tries = [['name', 'db01'], ['addr', `127.0.0.1:${db.port}`], ['mixed', `${GUEST_HOST},db01,web02`], ['all', '@all']] as const;
    for (const [tag, targets] of tries) {
      const run = await pageWebSocket(p, `${wss}/api/run`, [JSON.stringify({ type: 'run', targets, command: `touch ${marker(tag)}` })], 3_000);
      const results = run.texts.map((t) => JSON.parse(t) as { type: string; host?: string; status?: string });
      const ran = results.filter((m) => m.type === 'result' && m.status === 'ok').map((m) => m.host);
      assert.ok(!ran.includes('db01') && !ran.includes('web02'), `run ${targets}: ${JSON.stringify(results)}`);
    }
    // A push naming db01, with her CSRF token: refused for db01.
    const session = (await p.evaluate(() => fetch('/api/session').then((r) => r.json()))) as { csrfToken: string };
    const push = await p.evaluate(
      async ({ csrf }) => {
        const r = await fetch('/api/push?targets=db01&path=guest-push&mode=0644', { method: 'PUT', headers: { 'x-csrf-token': csrf, 'content-type': 'application/octet-stream' }, body: 'x' });
        return { status: r.status, text: await r.text() };
      },
      { csrf: session.csrfToken },
    );
    assert.ok(!/"ok":true/.test(push.text), `push to db01: ${push.status} ${push.text}`);
    for (const tag of ['term', ...tries.map((t) => t[0])]) {
      assert.equal(ranOn(tag, 'db01'), false, `marker ${tag} on db01`);
      assert.equal(ranOn(tag, 'web02'), false, `marker ${tag} on web02`);
    }
    assert.equal(existsSync(join(web.homes.db01, 'guest-push')), false);
    // Her own host does run what she sends (so the markers above could have appeared).
    const own = await pageWebSocket(p, `${wss}/api/run`, [JSON.stringify({ type: 'run', targets: GUEST_HOST, command: `touch ${marker('own')}` })], 3_000);
    assert.ok(ranOn('own', GUEST_HOST), `guest's run on ${GUEST_HOST}: ${JSON.stringify(own)}`);
    await ctx.close();
  });

  it('one-time link from `shellwire web-login --via`: logs in, leaves no token in the location, works once', async () => {
    const cli = await web.webLogin();
    assert.equal(cli.code, 0, cli.stderr);
    const url = cli.stdout.toString().trim();
    assert.match(url, new RegExp(`^${web.origin.replace(/[.]/g, '\\.')}/#login=[A-Za-z0-9_-]{40,}$`));
    const ctx = await tb.newContext();
    const p = await ctx.newPage();
    await p.goto(url);
    await p.waitForSelector(byTestId('whoami'), { timeout: 10_000 });
    assert.match((await p.textContent(byTestId('whoami'))) ?? '', /\bops\b/);
    assert.doesNotMatch(await p.evaluate(() => location.href), /login=/);
    await ctx.close();

    const again = await tb.newContext();
    const q = await again.newPage();
    await q.goto(url);
    await q.waitForSelector(byTestId('login-user'), { timeout: 10_000 });
    assert.equal(await q.$(byTestId('whoami')), null, 'the second use of the link logs nobody in');
    await again.close();
    const token = url.slice(url.indexOf('#login=') + 7);
    const raw = await httpRequest(web.origin, '/api/login/link', { method: 'POST', origin: web.origin, body: JSON.stringify({ token }) });
    assert.equal(raw.status, 401, raw.body);
  });

  it('logout ends the session on the server, not only in the page', async () => {
    await page.goto(`${web.origin}/#/hosts`);
    await page.waitForSelector(byTestId('whoami'));
    const cookie = await cookieHeader(tb.context, web.origin);
    assert.equal((await httpRequest(web.origin, '/api/hosts', { cookie })).status, 200);
    await page.click(byTestId('logout'));
    await page.waitForSelector(byTestId('login-user'), { timeout: 10_000 });
    const after = await httpRequest(web.origin, '/api/hosts', { cookie });
    assert.equal(after.status, 401, 'the old cookie is dead');
    const up = await wsUpgrade(web.origin, '/api/run', { cookie, origin: web.origin });
    assert.equal(up.opened, false, 'no WebSocket with the old cookie');
  });
});
