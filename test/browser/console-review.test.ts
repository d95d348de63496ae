/**
 * The web console's front end against the fresh review of issue 14 (findings 3, 4, 5, 13, 15),
 * in Debian's Chromium against the real `shellwire gateway --web` child process and three real
 * daemons (test/helpers/web-console.ts). What is checked is what the page shows and what lands
 * on the hosts' disks.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser, noChromium, type TestBrowser } from '../helpers/browser.js';
import { HOSTS, OPS_PASSWORD, startWebConsole, type WebConsole } from '../helpers/web-console.js';

const byTestId = (id: string) => `[data-testid="${id}"]`;
const RLO = '\u202e';
/** Chromium's computed style of the first element matching `selector`. */
const bidiOf = (page: Page, selector: string) => page.$eval(selector, (el) => getComputedStyle(el).unicodeBidi);

async function login(page: Page, origin: string): Promise<void> {
  await page.goto(`${origin}/`);
  await page.fill(byTestId('login-user'), 'ops');
  await page.fill(byTestId('login-password'), OPS_PASSWORD);
  await page.click(byTestId('login-submit'));
  await page.waitForSelector(byTestId('whoami'), { timeout: 10_000 });
}

/** Run `command` on `targets` from the run page; the groups once `hostCount` hosts have a result. */
async function runOnPage(page: Page, targets: string, command: string, hostCount: number) {
  await page.click(byTestId('nav-run'));
  await page.fill(byTestId('run-targets'), targets);
  await page.fill(byTestId('run-command'), command);
  await page.$$eval(byTestId('run-group'), (els) => els.forEach((e) => e.setAttribute('data-stale', '1')));
  await page.click(byTestId('run-submit'));
  await page.waitForFunction(
    (n) => {
      const groups = Array.from(document.querySelectorAll('[data-testid="run-group"]'));
      if (groups.some((g) => g.hasAttribute('data-stale'))) return false;
      return groups.flatMap((g) => (g.getAttribute('data-hosts') ?? '').split(',').filter(Boolean)).length === n;
    },
    hostCount,
    { timeout: 20_000 },
  );
  return page.$$eval(byTestId('run-group'), (els) => els.map((el) => ({ hosts: el.getAttribute('data-hosts') ?? '', status: el.getAttribute('data-status') ?? '', text: el.textContent ?? '' })));
}

/** Push `data` as `name` to `targets` at `path` from the push page; the host rows once all answered. */
async function pushOnPage(page: Page, name: string, data: Buffer, targets: string, path: string, hostCount: number) {
  await page.click(byTestId('nav-push'));
  await page.setInputFiles(byTestId('push-file'), { name, mimeType: 'application/octet-stream', buffer: data });
  await page.fill(byTestId('push-targets'), targets);
  await page.fill(byTestId('push-path'), path);
  const preview = await page.$eval(byTestId('push-final-path'), (el) => ({ path: el.getAttribute('data-path'), text: el.textContent ?? '', hidden: (el as HTMLElement).hidden })).catch(() => null);
  await page.click(byTestId('push-submit'));
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="push-host"]:not([data-state="running"])').length === n, hostCount, { timeout: 20_000 });
  const rows = await page.$$eval(byTestId('push-host'), (els) => els.map((e) => ({ host: e.getAttribute('data-host') ?? '', state: e.getAttribute('data-state') ?? '', text: e.textContent ?? '' })));
  return { preview, rows };
}

/** Paste `text` into the terminal of `host` as a user's Ctrl+V does (a paste event on xterm's textarea). */
async function paste(page: Page, host: string, text: { literal: string } | { repeat: string; times: number }): Promise<void> {
  await page.evaluate(
    ({ host, text }) => {
      const data = 'literal' in text ? text.literal : text.repeat.repeat(text.times);
      const ta = document.querySelector(`[data-testid="terminal"][data-host="${host}"] .xterm-helper-textarea`)!;
      const dt = new DataTransfer();
      dt.setData('text/plain', data);
      ta.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    },
    { host, text },
  );
}

async function screenText(page: Page, host: string): Promise<string> {
  return page.evaluate((h) => Array.from(document.querySelectorAll(`[data-testid="terminal"][data-host="${h}"] .xterm-rows > div`)).map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()).join('\n'), host);
}

async function waitFor(what: string, test: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: not within ${timeoutMs} ms`);
}

describe('web console front end: review findings (issue 14)', { skip: noChromium, timeout: 240_000 }, () => {
  let web: WebConsole;
  let tb: TestBrowser;
  let page: Page;

  before(async () => {
    const [b, w] = await Promise.allSettled([
      launchBrowser(),
      // A host whose label holds a right-to-left override (the inventory allows any label text).
      startWebConsole({ extraHosts: [`  bidi01: { address: 127.0.0.1, port: 9, labels: { note: "ab${RLO}cd" } }`], opsHosts: ['bidi01'] }),
    ]);
    if (b.status === 'fulfilled') tb = b.value;
    if (w.status === 'fulfilled') web = w.value;
    if (b.status === 'rejected') throw b.reason;
    if (w.status === 'rejected') throw w.reason;
    page = tb.context.pages()[0] ?? (await tb.context.newPage());
    await login(page, web.origin);
  });

  after(async () => {
    await tb?.close();
    await web?.stop();
  });

  it('finding 3: bidi and control characters from hosts, commands and paths are shown as escapes; cells and output are isolated', async () => {
    // Hosts page: the label's U+202E is shown as \u202e.
    await page.click(byTestId('nav-hosts'));
    await page.waitForSelector(`${byTestId('host-row')}[data-host="bidi01"]`, { timeout: 10_000 });
    const label = await page.textContent(`${byTestId('host-row')}[data-host="bidi01"]`);
    assert.ok(label?.includes('note=ab\\u202ecd'), `the label as shown: ${JSON.stringify(label)}`);
    assert.ok(!label?.includes(RLO));

    // Run: one-line output with U+202E is escaped beside the host names; a command with U+202E
    // and an ESC is escaped in the audit row.
    const one = await runOnPage(page, '@web,@db', `printf 'one\\342\\200\\256two\\n'`, 3);
    assert.equal(one.length, 1, JSON.stringify(one));
    assert.ok(one[0]!.text.includes('one\\u202etwo'), `one-line result: ${JSON.stringify(one[0]!.text)}`);
    assert.ok(!one[0]!.text.includes(RLO));
    // Longer output is the command's own text: kept as it came, isolated (and its controls escaped).
    const multi = await runOnPage(page, 'web01', `printf 'l1\\nl2 \\342\\200\\256x \\033[31mred\\n'`, 1);
    assert.ok(multi[0]!.text.includes(`l2 ${RLO}x \\u001b[31mred`), `multi-line output: ${JSON.stringify(multi[0]!.text)}`);
    assert.equal(await bidiOf(page, `${byTestId('run-group')} pre.out`), 'isolate');
    assert.equal(await bidiOf(page, `${byTestId('run-group')} .names`), 'isolate');

    const marker = `bidi-mark-${Date.now()}`;
    await runOnPage(page, 'web01', `echo ${marker} "x${RLO}y" # \x1b[2K`, 1);

    // Push to a path like the reviewer's (a text input cannot hold his newline: a tab instead) and
    // U+202E; the file lands under that exact name.
    const path = `new\tline-${RLO}.txt`;
    const pushed = await pushOnPage(page, 'bidi.txt', Buffer.from('dir\n'), 'web01', path, 1);
    assert.equal(pushed.rows[0]!.state, 'ok', pushed.rows[0]!.text);
    assert.equal(readFileSync(join(web.homes.web01, path), 'utf8'), 'dir\n');

    await page.click(byTestId('nav-audit'));
    await page.click(byTestId('audit-apply'));
    await page.waitForFunction((m) => Array.from(document.querySelectorAll('[data-testid="audit-row"]')).some((r) => (r.textContent ?? '').includes(m)), marker, { timeout: 10_000 });
    const rows = await page.$$eval(byTestId('audit-row'), (els) => els.map((e) => e.textContent ?? ''));
    const commandRow = rows.find((r) => r.includes(marker))!;
    assert.ok(commandRow.includes(`"x\\u202ey" # \\u001b[2K`), `the command's audit row: ${JSON.stringify(commandRow)}`);
    const fileRow = rows.find((r) => r.includes('line-'));
    assert.ok(fileRow?.includes('new\\tline-\\u202e.txt'), `the push's audit row: ${JSON.stringify(fileRow)}`);
    for (const r of rows) assert.ok(!r.includes(RLO) && !r.includes('\x1b'), `no raw bidi or ESC in an audit row: ${JSON.stringify(r)}`);
    assert.equal(await bidiOf(page, `${byTestId('audit-row')} td`), 'isolate');

    // Recordings list: an exec recording's command (written by hand into the gateway's store).
    const dir = join(web.dir, 'gateway', 'recordings');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = '20261130T100000Z-0bad0b1d';
    writeFileSync(join(dir, `${id}.out`), '');
    writeFileSync(join(dir, `${id}.json`), JSON.stringify({ id, operator: 'ops', host: 'web01', as: 'ops', startedAt: '2026-11-30T10:00:00.000Z', durationMs: 5, bytes: 0, sha256: null, type: 'exec', command: `rm -rf ${RLO}/tmp/x\n` }));
    await page.click(byTestId('nav-recordings'));
    await page.waitForSelector(`${byTestId('recording-row')}[data-id="${id}"]`, { timeout: 10_000 });
    const rec = await page.textContent(`${byTestId('recording-row')}[data-id="${id}"]`);
    assert.ok(rec?.includes('rm -rf \\u202e/tmp/x\\n'), `the recording's command: ${JSON.stringify(rec)}`);
  });

  it('finding 4: a push to DIR/ writes DIR/<file name> (as scp) and shows that path first; a missing DIR/ makes no file', async () => {
    for (const host of HOSTS) mkdirSync(join(web.homes[host], 'into-dir'));
    const data = Buffer.from('into the directory\n');
    const { preview, rows } = await pushOnPage(page, 'payload.txt', data, '@web,@db', 'into-dir/', 3);
    assert.equal(preview?.path, 'into-dir/payload.txt', `the final path shown before sending: ${JSON.stringify(preview)}`);
    assert.match(preview?.text ?? '', /into-dir\/payload\.txt/);
    for (const r of rows) assert.equal(r.state, 'ok', `${r.host}: ${r.text}`);
    for (const host of HOSTS) assert.deepEqual(readFileSync(join(web.homes[host], 'into-dir', 'payload.txt')), data, host);

    const missing = await pushOnPage(page, 'payload.txt', data, 'web01', 'no-such-dir/', 1);
    assert.equal(missing.rows[0]!.state, 'failed', missing.rows[0]!.text);
    assert.equal(existsSync(join(web.homes.web01, 'no-such-dir')), false, 'a trailing / never creates a regular file');
  });

  it('finding 13: binary run output says so with its byte count and downloads its exact bytes; lossy text shows its byte count', async () => {
    const groups = await runOnPage(page, 'web01', 'head -c 300 /bin/ls', 1);
    assert.equal(groups.length, 1);
    const notice = await page.$eval(`${byTestId('run-group')} ${byTestId('run-binary')}`, (el) => ({ text: el.textContent ?? '', bytes: el.getAttribute('data-bytes') }));
    assert.equal(notice.bytes, '300');
    assert.match(notice.text, /binary output, 300 bytes \(shown with replacement characters\)/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`${byTestId('run-group')} ${byTestId('run-download')}`)]);
    assert.equal(download.suggestedFilename(), 'web01-stdout.bin');
    const saved = readFileSync((await download.path())!);
    assert.deepEqual(saved, readFileSync('/bin/ls').subarray(0, 300), 'the downloaded bytes are the output\'s');

    await runOnPage(page, 'web01', `printf 'caf\\351\\n'; printf 'err\\377' >&2`, 1);
    const notices = await page.$$eval(`${byTestId('run-group')} ${byTestId('run-binary')}`, (els) => els.map((el) => el.textContent ?? ''));
    assert.equal(notices.length, 2, JSON.stringify(notices));
    assert.match(notices[0]!, /binary output, 5 bytes/);
    assert.match(notices[1]!, /binary error output, 4 bytes/);
  });

  it('finding 5: a 2 MiB paste arrives byte-exact and the terminal lives on; a paste over 16 MiB is refused with a message', async () => {
    await page.click(byTestId('nav-hosts'));
    await page.click(`${byTestId('host-row')}[data-host="web01"] ${byTestId('open-terminal')}`);
    const term = `${byTestId('terminal')}[data-host="web01"]`;
    await page.waitForSelector(`${term}[data-state="open"]`, { timeout: 10_000 });
    await waitFor('the shell prompt', async () => /[#$] ?$/m.test(await screenText(page, 'web01')));
    await page.click(term);
    await page.keyboard.type('stty -echo; cat > bigpaste.txt');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
    const line = 'abcdefghijklmnopqrstuvwxyz0123456789-the-quick-brown-fox\n';
    const times = Math.ceil((2 * 1024 * 1024) / line.length);
    const want = line.repeat(times);
    await paste(page, 'web01', { repeat: line, times });
    const file = join(web.homes.web01, 'bigpaste.txt');
    await waitFor(`${want.length} bytes in ${file}`, () => existsSync(file) && statSync(file).size >= want.length, 60_000);
    await page.keyboard.press('Control+D');
    await page.keyboard.type('stty echo; echo alive-$((6*7))');
    await page.keyboard.press('Enter');
    await waitFor('the shell answers after the paste', async () => (await screenText(page, 'web01')).includes('alive-42'));
    assert.equal(await page.getAttribute(term, 'data-state'), 'open');
    assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), createHash('sha256').update(want).digest('hex'), 'the pasted text, byte-exact');

    await paste(page, 'web01', { repeat: 'x', times: 17 * 1024 * 1024 });
    await page.waitForSelector(`${term} ${byTestId('terminal-notice')}:visible`, { timeout: 10_000 });
    assert.match((await page.textContent(`${term} ${byTestId('terminal-notice')}`)) ?? '', /at most 16\.0 MiB/);
    await page.keyboard.type('echo still-$((6*7))');
    await page.keyboard.press('Enter');
    await waitFor('the shell answers after the refused paste', async () => (await screenText(page, 'web01')).includes('still-42'));
    assert.equal(await page.getAttribute(term, 'data-state'), 'open');
  });

  it('finding 15: recordings the player would refuse (no events, a torn last line) play or say why, never an empty box', async () => {
    const dir = join(web.dir, 'gateway', 'recordings');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const header = JSON.stringify({ version: 2, width: 80, height: 24, timestamp: 1764496800 });
    const casts = {
      '20261130T100001Z-0000e001': `${header}\n`,
      '20261130T100002Z-0000e002': `${header}\n[0.1, "o", "hello-from-the-cast\\r\\n"]\n[0.2, "o", "tor`,
    };
    for (const [id, text] of Object.entries(casts)) {
      writeFileSync(join(dir, `${id}.cast`), text);
      writeFileSync(join(dir, `${id}.json`), JSON.stringify({ id, operator: 'ops', host: 'web01', as: 'ops', startedAt: `${id.slice(0, 4)}-11-30T10:00:0${id.slice(14, 15)}.000Z`, durationMs: null, bytes: text.length, sha256: null, type: 'terminal', command: null }));
    }
    const [empty, torn] = Object.keys(casts);
    await page.goto(`${web.origin}/#/recordings`);
    await page.click(`${byTestId('recording-row')}[data-id="${empty}"]`);
    await page.waitForSelector(byTestId('player-note'), { timeout: 10_000 });
    assert.match((await page.textContent(byTestId('player-note'))) ?? '', /no output/);
    assert.equal(await page.$('.ap-overlay-error'), null);

    await page.goto(`${web.origin}/#/recordings/${torn}`);
    await page.waitForFunction(() => (document.querySelector('[data-testid="player"]')?.textContent ?? '').includes('hello-from-the-cast'), null, { timeout: 15_000 });
    assert.match((await page.textContent(byTestId('player-note'))) ?? '', /cut off/);
    assert.equal(await page.$('.ap-overlay-error'), null, 'the player plays what is whole');
    // Any other failure shows the player's error overlay: words in a font the page has, not an emoji.
    const overlay = await page.evaluate(() => {
      const span = document.createElement('span');
      span.textContent = '\u{1f4a5}';
      const box = document.createElement('div');
      box.className = 'ap-overlay ap-overlay-error';
      box.appendChild(span);
      document.querySelector('.ap-player')!.appendChild(box);
      const after = getComputedStyle(span, '::after');
      const result = { content: after.content, glyph: getComputedStyle(span).fontSize };
      box.remove();
      return result;
    });
    assert.match(overlay.content, /cannot be played/);
    assert.equal(overlay.glyph, '0px', 'the emoji itself is not drawn');
  });
});
