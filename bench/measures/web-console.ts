/**
 * Rows 10a–10c: the web console (issue 14) as an operator meets it, in Debian's headless
 * Chromium (playwright-core) on loopback, against a real `shellwire gateway --web` process in
 * front of real `shellwire serve` daemons.
 *
 *   10a  first page load: a fresh browser context (empty cache) with a session cookie opens
 *        `/#/hosts`; from navigation start to DOMContentLoaded, and to the end of the first
 *        /api answer (the page's first data). Median of N. Target < 300 ms (the later of the two).
 *   10b  keystroke echo in a terminal: from the key's `keydown` (its event time, on
 *        performance.now's clock) to the end of the frame that paints the echoed character:
 *        xterm.js puts it in its rows inside a requestAnimationFrame callback (a
 *        MutationObserver sees that), and style, layout and paint of that frame follow in the
 *        same task, so a task posted from the observer runs once they are done. ~50 keys at a
 *        shell prompt, one at a time. Median and p95. Target ≤ 20 ms.
 *   10c  200 hosts' results: the inventory names 200 hosts (h001–h200) spread over 8 real
 *        daemons (the gateway keeps one connection per inventory host, so it is 200 relays);
 *        from the Run click to all 200 hosts shown in result groups, and the longest
 *        main-thread task meanwhile (PerformanceObserver 'longtask'). Target: no task > 200 ms.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { hashPassword } from '../../dist/auth/password.js';
import { QUICK, pass, type Measure } from '../lib/harness.js';
import { CLI, benchDirs, type BenchDaemon } from '../lib/daemon.js';
import { track } from '../lib/children.js';
import { OPERATOR, prepareGateway, startHost } from '../lib/gateway.js';
import { fmt, median, sleep } from '../lib/util.js';
import { launchBrowser, noChromium } from '../../test/helpers/browser.js';

const HOSTS = 200;
const DAEMONS = 8;
const PASSWORD = 'bench-web-password';
const LOAD_ROW = { metric: '10a. web console first page load on loopback: DOMContentLoaded / first /api answer (ms)', target: '< 300 ms' };
const ECHO_ROW = { metric: '10b. web terminal keystroke echo over loopback, keydown → echo painted: median / p95 (ms)', target: '≤ 20 ms' };
const RUN_ROW = { metric: `10c. run on ${HOSTS} hosts in the web console: longest main-thread task / Run → all results shown (ms)`, target: 'no long task > 200 ms' };

const percentile = (values: number[], p: number) => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

interface WebGateway {
  origin: string;
  stop(): Promise<void>;
}

/** `shellwire gateway --web` with an inventory of `names` over `daemons` (round robin); `bench` logs in with a password. */
async function startWebGateway(prepared: { stateDir: string }, daemons: BenchDaemon[], names: string[]): Promise<WebGateway> {
  const { stateDir } = prepared;
  const inventory = join(stateDir, 'inventory.yaml');
  writeFileSync(inventory, ['hosts:', ...names.map((n, i) => {
    const d = daemons[i % daemons.length]!;
    return `  ${n}: { address: ${d.address.slice(0, d.address.lastIndexOf(':'))}, port: ${d.port}, groups: [bench] }`;
  }), ''].join('\n'));
  writeFileSync(join(stateDir, 'users.yaml'), [
    'settings:', '  passwordLogin: true', 'users:', `  ${OPERATOR}:`, '    allowRoot: true',
    `    password: ${JSON.stringify(await hashPassword(PASSWORD))}`, '    hosts: ["@bench"]', `    as: ${OPERATOR}`, '',
  ].join('\n'), { mode: 0o600 });
  const child: ChildProcess = track(spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', '--web', '127.0.0.1:0', '--state-dir', stateDir, '--inventory', inventory, '--log-level', 'warn'], {
    env: { ...process.env, SHELLWIRE_HOME: benchDirs().home },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8192)));
  const origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway --web gave no "web console:" line in 20 s; stderr: ${stderr}`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const m = /web console: (https:\/\/\S+?)\/?(?:\s|$)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway --web exited during start (${code ?? signal}); stderr: ${stderr.slice(-600)}`));
    });
  });
  child.stdout!.resume();
  return {
    origin,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Log in through the form; the session cookies. */
async function login(page: Page, origin: string): Promise<Parameters<BrowserContext['addCookies']>[0]> {
  await page.goto(`${origin}/`);
  await page.fill('[data-testid="login-user"]', OPERATOR);
  await page.fill('[data-testid="login-password"]', PASSWORD);
  await page.click('[data-testid="login-submit"]');
  await page.waitForSelector('[data-testid="whoami"]', { timeout: 15_000 });
  return page.context().cookies(origin);
}

/** 10a: one cold load of /#/hosts; DOMContentLoaded and first /api answer, ms from navigation start. */
async function firstLoad(newContext: () => Promise<BrowserContext>, cookies: Parameters<BrowserContext['addCookies']>[0], origin: string) {
  const ctx = await newContext();
  try {
    await ctx.addCookies(cookies);
    const page = await ctx.newPage();
    // The first /api answer's end as the page's own clock sees it (resource timing).
    const firstApi = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/api/'), { timeout: 15_000 });
    firstApi.catch(() => {}); // awaited below; a failed navigation must not leave it unhandled
    await page.goto(`${origin}/#/hosts`, { waitUntil: 'domcontentloaded' });
    await firstApi;
    await page.waitForSelector('[data-testid="host-row"]', { timeout: 15_000 });
    return await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      const api = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).filter((e) => new URL(e.name).pathname.startsWith('/api/'));
      const firstApiEnd = Math.min(...api.map((e) => e.responseEnd));
      return { dcl: nav.domContentLoadedEventEnd - nav.startTime, api: firstApiEnd - nav.startTime, apiPath: api.length ? new URL(api[0]!.name).pathname : '' };
    });
  } finally {
    await ctx.close();
  }
}

/**
 * 10b: keystroke echo latencies (ms) of `keys` single keys typed at a shell prompt in host
 * `host`'s terminal: the whole (keydown → in xterm's rows), and the part until the echo's
 * WebSocket message arrived (the rest is the page: xterm parsing and its render frame).
 */
async function echoLatencies(page: Page, origin: string, host: string, keys: number): Promise<{ total: number[]; wire: number[]; inRows: number[] }> {
  // Time each binary WebSocket message as it arrives (this listener runs before the page's own).
  await page.addInitScript(() => {
    const Native = WebSocket;
    const w = window as unknown as { __wsIn: number[] };
    w.__wsIn = [];
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('message', (e) => {
          if (typeof e.data !== 'string') w.__wsIn.push(performance.now());
        });
      }
    };
  });
  await page.goto(`${origin}/#/hosts`);
  await page.reload();
  await page.click(`[data-testid="host-row"][data-host="${host}"] [data-testid="open-terminal"]`);
  const term = `[data-testid="terminal"][data-host="${host}"]`;
  await page.waitForSelector(`${term}[data-state="open"]`, { timeout: 15_000 });
  await page.click(term);
  // Wait for the prompt to settle (the shell's first output), then watch the rows.
  await page.waitForFunction((sel) => (document.querySelector(`${sel} .xterm-rows`)?.textContent ?? '').trim().length > 0, term, { timeout: 15_000 });
  await sleep(500);
  await page.evaluate((sel) => {
    const rows = document.querySelector(`${sel} .xterm-rows`)!;
    const w = window as unknown as { __echo: { downs: number[]; seen: number[]; painted: number[]; base: number } };
    const count = () => ((rows.textContent ?? '').match(/q/g) ?? []).length;
    w.__echo = { downs: [], seen: [], painted: [], base: count() };
    window.addEventListener('keydown', (e) => w.__echo.downs.push(e.timeStamp), true);
    new MutationObserver(() => {
      const n = count() - w.__echo.base;
      while (w.__echo.seen.length < n) {
        const i = w.__echo.seen.push(performance.now()) - 1;
        // The frame's rendering (style, layout, paint) ends the task we are in: the next task runs after it.
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          w.__echo.painted[i] = performance.now();
          channel.port1.close();
        };
        channel.port2.postMessage(null);
      }
    }).observe(rows, { childList: true, subtree: true, characterData: true });
  }, term);
  for (let i = 1; i <= keys; i++) {
    await page.keyboard.type('q');
    await page.waitForFunction((n) => (window as unknown as { __echo: { painted: number[] } }).__echo.painted[n - 1] !== undefined, i, { timeout: 5_000, polling: 10 });
  }
  const { downs, seen, painted, arrived } = await page.evaluate(() => {
    const w = window as unknown as { __echo: { downs: number[]; seen: number[]; painted: number[] }; __wsIn: number[] };
    return { ...w.__echo, arrived: w.__wsIn };
  });
  await page.keyboard.press('Control+U');
  const wire = downs.map((d) => (arrived.find((t) => t >= d) ?? NaN) - d).filter(Number.isFinite);
  return { total: painted.map((t, i) => t - downs[i]!), inRows: seen.map((t, i) => t - downs[i]!), wire };
}

/** 10c: one run on every host from the run page: ms from the click to all results shown, and the longest task. */
async function runAll(page: Page, origin: string, command: string) {
  await page.goto(`${origin}/#/run`);
  await page.fill('[data-testid="run-targets"]', '@bench');
  await page.fill('[data-testid="run-command"]', command);
  await page.evaluate((n) => {
    const w = window as unknown as { __run: { clicked: number; done: number; longest: number; tasks: number }; __observers?: Array<{ disconnect(): void }> };
    // The last run's observers go, and its groups are marked: only this run's count.
    for (const o of w.__observers ?? []) o.disconnect();
    document.querySelectorAll('[data-testid="run-group"]').forEach((g) => g.setAttribute('data-stale', '1'));
    w.__run = { clicked: 0, done: 0, longest: 0, tasks: 0 };
    const tasks = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (w.__run.clicked && e.startTime + e.duration >= w.__run.clicked) {
          w.__run.longest = Math.max(w.__run.longest, e.duration);
          w.__run.tasks++;
        }
      }
    });
    tasks.observe({ type: 'longtask', buffered: false });
    document.querySelector('[data-testid="run-submit"]')!.addEventListener('click', () => (w.__run.clicked = performance.now()), true);
    const check = () => {
      const hosts = Array.from(document.querySelectorAll('[data-testid="run-group"]:not([data-stale])')).reduce((s, g) => s + (g.getAttribute('data-hosts') ?? '').split(',').filter(Boolean).length, 0);
      if (hosts >= n && !w.__run.done) w.__run.done = performance.now();
    };
    const shown = new MutationObserver(check);
    shown.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-hosts'] });
    w.__observers = [tasks, shown];
  }, HOSTS);
  await page.click('[data-testid="run-submit"]');
  await page.waitForFunction(() => (window as unknown as { __run: { done: number } }).__run.done > 0, null, { timeout: 60_000 });
  // Long tasks are reported after they end: give the observer a moment.
  await sleep(300);
  const r = await page.evaluate(() => (window as unknown as { __run: { clicked: number; done: number; longest: number; tasks: number } }).__run);
  return { ms: r.done - r.clicked, longest: r.longest, tasks: r.tasks };
}

export const webConsole: Measure = {
  id: 'web-console',
  name: 'web console in Chromium: first load, keystroke echo, 200 hosts',
  rows: [LOAD_ROW, ECHO_ROW, RUN_ROW],
  daemon: 'own',
  async run({ row, detail }) {
    if (noChromium) {
      for (const r of [LOAD_ROW, ECHO_ROW, RUN_ROW]) row({ ...r, sw: `n/a (${noChromium})`, ref: '', ratio: '', result: 'n/a' });
      return;
    }
    const prepared = prepareGateway();
    const daemons: BenchDaemon[] = [];
    let gw: WebGateway | null = null;
    let browser: Awaited<ReturnType<typeof launchBrowser>> | null = null;
    try {
      const homes = join(benchDirs().home, 'web-hosts');
      for (let first = 0; first < DAEMONS; first += 4) {
        daemons.push(...(await Promise.all(Array.from({ length: Math.min(4, DAEMONS - first) }, (_, k) => {
          // Each daemon gives `bench` its own home: `basename "$PWD"` tells them apart.
          const home = join(homes, `d${first + k + 1}`);
          mkdirSync(home, { recursive: true });
          return startHost(prepared.keyLine, { host: `127.0.0.${first + k + 2}`, home });
        }))));
      }
      const names = Array.from({ length: HOSTS }, (_, i) => `h${String(i + 1).padStart(3, '0')}`);
      // Both at once, and both waited for: `finally` stops whichever started if the other failed.
      const [gs, bs] = await Promise.allSettled([startWebGateway(prepared, daemons, names), launchBrowser()]);
      if (gs.status === 'fulfilled') gw = gs.value;
      if (bs.status === 'fulfilled') browser = bs.value;
      if (gs.status === 'rejected') throw gs.reason;
      if (bs.status === 'rejected') throw bs.reason;
      const { origin } = gs.value;
      const chromium = bs.value;
      const page = chromium.context.pages()[0] ?? (await chromium.context.newPage());
      const cookies = await login(page, origin);

      const loads: Array<{ dcl: number; api: number; apiPath: string }> = [];
      const loadRuns = QUICK ? 5 : 15;
      for (let i = 0; i < loadRuns + 1; i++) {
        const one = await firstLoad(() => chromium.newContext(), cookies, origin);
        if (i > 0) loads.push(one); // the first warms the gateway (its JIT, the pool), not the browser
      }
      const dcl = median(loads.map((l) => l.dcl));
      const api = median(loads.map((l) => l.api));
      const loadMs = Math.max(dcl, api);
      row({ ...LOAD_ROW, sw: `${fmt(dcl, 0)} / ${fmt(api, 0)}`, ref: '', ratio: '', result: pass(loadMs < 300), values: { sw: loadMs }, check: (v) => v.sw < 300 });

      const keys = QUICK ? 30 : 50;
      const { total: lat, wire, inRows } = await echoLatencies(page, origin, 'h001', keys);
      const echoMed = median(lat);
      const echoP95 = percentile(lat, 95);
      row({ ...ECHO_ROW, sw: `${fmt(echoMed, 1)} / ${fmt(echoP95, 1)}`, ref: '', ratio: '', result: pass(echoMed <= 20), values: { sw: echoMed }, check: (v) => v.sw <= 20 });

      const command = 'basename "$PWD"; seq 1 20';
      await runAll(page, origin, command); // warm: the gateway opens its 200 host connections
      const runs = [];
      for (let i = 0; i < (QUICK ? 1 : 3); i++) runs.push(await runAll(page, origin, command));
      const longest = Math.max(...runs.map((r) => r.longest));
      const renderMs = median(runs.map((r) => r.ms));
      row({ ...RUN_ROW, sw: `${fmt(longest, 0)} / ${fmt(renderMs, 0)}`, ref: '', ratio: '', result: pass(longest <= 200), values: { sw: longest }, check: (v) => v.sw <= 200 });

      detail(
        `- 10a: ${loads.length} cold loads (a fresh browser context each, the session cookie copied in) of \`/#/hosts\` in headless Chromium; ` +
          `navigation start → DOMContentLoaded median ${fmt(dcl, 1)} ms (${fmt(Math.min(...loads.map((l) => l.dcl)), 1)}–${fmt(Math.max(...loads.map((l) => l.dcl)), 1)}), ` +
          `→ end of the first /api answer (${loads[0]?.apiPath}) median ${fmt(api, 1)} ms (${fmt(Math.min(...loads.map((l) => l.api)), 1)}–${fmt(Math.max(...loads.map((l) => l.api)), 1)}).`,
      );
      detail(
        `- 10b: ${lat.length} keys typed one at a time at a shell prompt in a terminal on h001 (PTY through the gateway); latency = keydown's event time → the end of the frame that paints the echoed character (the task after the one in which a MutationObserver saw it in xterm.js's rows). ` +
          `median ${fmt(echoMed, 1)} ms, p95 ${fmt(echoP95, 1)} ms, max ${fmt(Math.max(...lat), 1)} ms. ` +
          `Of which keydown → the echo's WebSocket message arriving in the page (browser → gateway → host PTY → back): median ${fmt(median(wire), 1)} ms, p95 ${fmt(percentile(wire, 95), 1)} ms; ` +
          `→ the character in xterm.js's rows (its next animation frame): median ${fmt(median(inRows), 1)} ms; the rest is that frame's style, layout and paint.`,
      );
      detail(
        `- 10c: \`${command}\` on \`@bench\` = ${HOSTS} inventory hosts over ${DAEMONS} daemons (127.0.0.2–${DAEMONS + 1}), one warm-up run then ${runs.length}; ` +
          `Run click → all ${HOSTS} hosts in result groups: ${runs.map((r) => `${fmt(r.ms, 0)} ms`).join(', ')}; long tasks (> 50 ms) per run: ${runs.map((r) => r.tasks).join(', ')}, longest ${fmt(longest, 0)} ms.`,
      );
    } finally {
      await browser?.close();
      await gw?.stop();
      await Promise.all(daemons.map((d) => d.stop()));
    }
  },
};
