/**
 * The web console's test bench (issue 14): three real daemons on loopback, and the real CLI's
 * `shellwire gateway --listen 127.0.0.1:0 --web 127.0.0.1:0` as a child process in front of
 * them (inventory, users.yaml with password hashes, audit and recordings in its state dir).
 *
 * Hosts: web01, web02 (group `web`, env=prod) and db01 (group `db`, env=staging). Each host
 * gives the operators their own home `<dir>/homes/<host>` (also their only file root), so what a
 * command prints can tell the hosts apart honestly: commands start in the home the host's
 * users.yaml names, so `basename "$PWD"` is the host's name, the way `uname -n` would be on
 * separate machines; a pushed file with a relative path lands in that host's home.
 *
 * Users (gateway users.yaml, `settings.passwordLogin: true`):
 *   ops   password OPS_PASSWORD, may reach all three hosts; also has a key (for `web-login --via`)
 *   guest password GUEST_PASSWORD, may reach web01 only
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import WebSocket from 'ws';
import { hashPassword } from '../../src/auth/password.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { CLI, runCli, startDaemon, type CliResult, type TestDaemon } from './daemon.js';
import { removeDir, tempDir } from './fixtures.js';
import { hostUsersText, keyFile, type KeyFile } from './gateway.js';

export const HOSTS = ['web01', 'web02', 'db01'] as const;
export type HostName = (typeof HOSTS)[number];
export const OPS_PASSWORD = 'correct horse battery staple';
export const GUEST_PASSWORD = 'guest-only-web01';
/** The host guest may reach; the other two are refused to her. */
export const GUEST_HOST: HostName = 'web01';

export interface WebConsole {
  dir: string;
  /** `https://127.0.0.1:PORT` (no trailing slash): the console's origin. */
  origin: string;
  /** The gateway's operator port (for `--via ops@127.0.0.1:PORT`). */
  gatewayPort: number;
  fingerprint: string;
  gatewayPid: number;
  hosts: Record<HostName, TestDaemon>;
  /** Each host's home for ops and guest (their file root): where pushed files land. */
  homes: Record<HostName, string>;
  opsKey: KeyFile;
  /** A SHELLWIRE_HOME whose known_hosts trusts the gateway (for the CLI). */
  cliHome: string;
  /** Everything the gateway wrote on stderr (its JSON log), so far. */
  log(): string;
  /** `shellwire web-login --via ops@GW -i KEY`, the real CLI. */
  webLogin(): Promise<CliResult>;
  stop(): Promise<void>;
}

export interface WebConsoleOptions {
  /** Extra inventory lines (`  NAME: { … }`) and the users they are given to (ops gets all). */
  extraHosts?: string[];
  /** Extra `hosts:` entries for ops (e.g. `@bulk`). */
  opsHosts?: string[];
  logLevel?: string;
}

/** Wait for the gateway's banner: its operator port, fingerprint and the console's URL. */
function banner(child: ChildProcess, stderr: () => string): Promise<{ port: number; fingerprint: string; origin: string }> {
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway gave no "web console:" banner in 20 s; stdout: ${out}; stderr: ${stderr()}`)), 20_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before its banner; stdout: ${out}; stderr: ${stderr()}`));
    });
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const listen = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      const fp = /fingerprint: (SHA256:\S+)/.exec(out);
      const web = /web console: (https:\/\/\S+?)\/?(?:\s|$)/.exec(out);
      if (listen && fp && web && out.includes('gateway key')) {
        clearTimeout(timer);
        resolve({ port: Number(listen[1]), fingerprint: fp[1]!, origin: web[1]! });
      }
    });
  });
}

export async function startWebConsole(options: WebConsoleOptions = {}): Promise<WebConsole> {
  const dir = tempDir('shellwire-web-');
  const daemons: TestDaemon[] = [];
  let child: ChildProcess | null = null;
  try {
    const gwDir = join(dir, 'gateway');
    mkdirSync(gwDir, { recursive: true, mode: 0o700 });
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    const opsKey = keyFile(dir, 'ops');
    const homes = {} as Record<HostName, string>;
    const hosts = {} as Record<HostName, TestDaemon>;
    for (const name of HOSTS) {
      const d = await startDaemon();
      daemons.push(d);
      const home = join(dir, 'homes', name);
      mkdirSync(home, { recursive: true });
      homes[name] = home;
      hosts[name] = d;
      // The gateway's key acts as ops and guest; both get this host's home as home and file root.
      const text = hostUsersText([gwKey], ['ops', 'guest']).replace(/^( {2}(ops|guest):\n {4}allowRoot: true)$/gm, `$1\n    home: ${JSON.stringify(home)}\n    fileRoots: [${JSON.stringify(home)}]`);
      writeFileSync(join(d.server.stateDir, 'users.yaml'), text);
      const reloaded = d.server.reloadUsers();
      assert.ok(reloaded.ok, `host users.yaml: ${JSON.stringify(reloaded)}`);
    }
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(
      inventory,
      [
        'hosts:',
        `  web01: { address: 127.0.0.1, port: ${hosts.web01.port}, labels: { env: prod }, groups: [web] }`,
        `  web02: { address: 127.0.0.1, port: ${hosts.web02.port}, labels: { env: prod }, groups: [web] }`,
        `  db01: { address: 127.0.0.1, port: ${hosts.db01.port}, labels: { env: staging }, groups: [db] }`,
        ...(options.extraHosts ?? []),
      ].join('\n') + '\n',
    );
    writeFileSync(
      join(gwDir, 'users.yaml'),
      [
        'settings:',
        '  passwordLogin: true',
        'users:',
        '  ops:',
        '    allowRoot: true',
        `    keys: [${JSON.stringify(opsKey.line)}]`,
        `    password: ${JSON.stringify(await hashPassword(OPS_PASSWORD))}`,
        `    hosts: ${JSON.stringify(['@web', '@db', ...(options.opsHosts ?? [])])}`,
        '  guest:',
        '    allowRoot: true',
        `    password: ${JSON.stringify(await hashPassword(GUEST_PASSWORD))}`,
        `    hosts: [${GUEST_HOST}]`,
      ].join('\n') + '\n',
      { mode: 0o600 },
    );
    const cliHome = join(dir, 'cli-home');
    mkdirSync(cliHome, { recursive: true, mode: 0o700 });
    let stderr = '';
    const env: NodeJS.ProcessEnv = { ...process.env, SHELLWIRE_HOME: cliHome };
    delete env.SHELLWIRE_TOKEN;
    child = spawn(
      process.execPath,
      [CLI, 'gateway', '--listen', '127.0.0.1:0', '--web', '127.0.0.1:0', '--state-dir', gwDir, '--inventory', inventory, '--log-level', options.logLevel ?? 'info'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const started = await banner(child, () => stderr);
    child.stdout!.resume();
    writeFileSync(join(cliHome, 'known_hosts'), `127.0.0.1:${started.port} ${started.fingerprint}\n`);
    const gateway = child;
    return {
      dir,
      origin: started.origin,
      gatewayPort: started.port,
      fingerprint: started.fingerprint,
      gatewayPid: gateway.pid!,
      hosts,
      homes,
      opsKey,
      cliHome,
      log: () => stderr,
      webLogin: () => runCli(['web-login', '-i', opsKey.file, '--via', `ops@127.0.0.1:${started.port}`], { env, timeoutMs: 20_000 }),
      async stop() {
        await stopChild(gateway);
        for (const d of daemons) await d.stop().catch(() => {});
        removeDir(dir);
      },
    };
  } catch (err) {
    if (child) await stopChild(child);
    for (const d of daemons) await d.stop().catch(() => {});
    removeDir(dir);
    throw err;
  }
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the child has exited. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------ raw HTTP and WebSocket clients

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The body as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/** One HTTPS request to the console from Node (no browser, no cookie unless given). */
export function httpRequest(
  origin: string,
  path: string,
  options: { method?: string; cookie?: string; origin?: string; csrf?: string; body?: string | Buffer; contentType?: string } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  if (options.cookie) headers.cookie = options.cookie;
  if (options.origin) headers.origin = options.origin;
  if (options.csrf) headers['x-csrf-token'] = options.csrf;
  if (options.body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(options.body));
  }
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, origin), { method: options.method ?? 'GET', headers, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`${path}: no answer in 15 s`)));
    req.end(options.body);
  });
}

/** How a WebSocket upgrade ended: opened (then closed by us), or refused with the HTTP answer. */
export type UpgradeResult = { opened: true; messages: Array<string | Buffer> } | { opened: false; status: number; body: string; error?: string };

/**
 * Open a WebSocket to the console from Node with the given cookie and Origin; send `send`
 * once open, collect what comes for `holdMs`, then close.
 */
export function wsUpgrade(origin: string, path: string, options: { cookie?: string; origin?: string; send?: string[]; holdMs?: number } = {}): Promise<UpgradeResult> {
  const url = new URL(path, origin.replace(/^https:/, 'wss:'));
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      rejectUnauthorized: false,
      ...(options.origin ? { origin: options.origin } : {}),
      headers: options.cookie ? { cookie: options.cookie } : {},
      handshakeTimeout: 10_000,
    });
    const messages: Array<string | Buffer> = [];
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve({ opened: false, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    ws.on('error', (err) => resolve({ opened: false, status: 0, body: '', error: err.message }));
    ws.on('message', (data, isBinary) => messages.push(isBinary ? Buffer.from(data as Buffer) : data.toString()));
    ws.on('open', () => {
      for (const m of options.send ?? []) ws.send(m);
      setTimeout(() => {
        ws.close();
        resolve({ opened: true, messages });
      }, options.holdMs ?? 300);
    });
  });
}
