/**
 * Debian's Chromium (/usr/bin/chromium), headless, driven by playwright-core: never a downloaded
 * browser. One browser per test file, with a fresh user-data dir that is removed afterwards.
 * On a failed close the browser's processes are found by that dir in their command line
 * (/proc/PID/cmdline: only ours carry it) and killed by PID.
 *
 * The console serves the gateway's own self-signed TLS identity, so every context ignores
 * certificate errors; the tests check what the page shows, not the certificate chain.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why browser tests skip here, or false when Chromium is installed (CI installs it: .ci/run). */
export const noChromium: string | false = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;

/** The flags of PREAMBLE14: quiet, headless on a machine without a GPU or sandbox support (we are root). */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A laptop screen: the size the console must stay readable at (and the screenshots' size). */
export const LAPTOP = { width: 1366, height: 768 };

export interface TestBrowser {
  browser: Browser;
  /** The first context (the profile in the fresh user-data dir). */
  context: BrowserContext;
  /** Another context (its own cookies): another user, or nobody logged in. */
  newContext(options?: BrowserContextOptions): Promise<BrowserContext>;
  /** The browser's process ids (found by the user-data dir). */
  pids(): number[];
  /** Close the browser; kill what is left by PID; remove the user-data dir. Safe to call twice. */
  close(): Promise<void>;
}

const contextDefaults: BrowserContextOptions = { ignoreHTTPSErrors: true, viewport: LAPTOP };

/**
 * tsx (esbuild with keepNames) wraps named functions in `__name(fn, "name")`; a function handed
 * to page.evaluate runs in the page, where that helper does not exist. Each context defines it.
 */
const KEEP_NAMES_SHIM = 'globalThis.__name ??= (fn) => fn;';

/** Processes whose command line names `userDataDir` (Chromium passes it to every child). */
function pidsOf(userDataDir: string): number[] {
  const needle = `--user-data-dir=${userDataDir}`;
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').includes(needle)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Launch Chromium; the caller closes it (in `after`). */
export async function launchBrowser(options: BrowserContextOptions = {}): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'shellwire-chromium-'));
  // If this process exits before `close` (a crash, process.exit), its browser and profile go with it.
  const onExit = () => {
    killAll(pidsOf(userDataDir));
    rmSync(userDataDir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      timeout: 30_000,
      ...contextDefaults,
      ...options,
    });
  } catch (err) {
    killAll(pidsOf(userDataDir));
    rmSync(userDataDir, { recursive: true, force: true });
    process.removeListener('exit', onExit);
    throw err;
  }
  await context.addInitScript({ content: KEEP_NAMES_SHIM });
  const browser = context.browser()!;
  const others: BrowserContext[] = [];
  let closed = false;
  return {
    browser,
    context,
    async newContext(more = {}) {
      const c = await browser.newContext({ ...contextDefaults, ...more });
      others.push(c);
      await c.addInitScript({ content: KEEP_NAMES_SHIM });
      return c;
    },
    pids: () => pidsOf(userDataDir),
    async close() {
      if (closed) return;
      closed = true;
      const closing = (async () => {
        for (const c of others) await c.close().catch(() => {});
        await context.close();
      })();
      const inTime = await Promise.race([closing.then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
      // Whatever did not go (a hung close, a crashed driver) is killed by PID.
      const left = pidsOf(userDataDir);
      if (!inTime || left.length) killAll(left);
      for (let i = 0; i < 50 && pidsOf(userDataDir).length; i++) await new Promise((r) => setTimeout(r, 20));
      rmSync(userDataDir, { recursive: true, force: true });
      process.removeListener('exit', onExit);
    },
  };
}
