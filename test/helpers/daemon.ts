/**
 * Test helpers: a real daemon on a free loopback port with its own state dir, a client
 * home with the daemon pinned in known_hosts, and the real CLI run as a child process.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Server, type ServerOptions } from '../../src/server/server.js';
import { connect, type ConnectOptions } from '../../src/client/connect.js';
import type { Connection } from '../../src/client/connection.js';
import { daemonPrincipal, type Authenticator } from '../../src/auth/authenticator.js';

export const CLI = resolve(import.meta.dirname, '../../bin/shellwire.cjs');

export interface TestDaemon {
  server: Server;
  port: number;
  /** `127.0.0.1:PORT` */
  address: string;
  token: string;
  tokenFile: string;
  fingerprint: string;
  /** A SHELLWIRE_HOME whose known_hosts already trusts this daemon. */
  home: string;
  /** Environment for running the CLI against this daemon. */
  env: NodeJS.ProcessEnv;
  connect(options?: ConnectOptions): Promise<Connection>;
  stop(): Promise<void>;
}

export async function startDaemon(options: ServerOptions = {}): Promise<TestDaemon> {
  const root = mkdtempSync(join(tmpdir(), 'shellwire-test-'));
  const stateDir = options.stateDir ?? join(root, 'server');
  const server = await Server.create({ host: '127.0.0.1', port: 0, stateDir, ...options });
  const { port } = await server.listen();
  const host = options.host ?? '127.0.0.1';
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const home = join(root, 'home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'known_hosts'), `${address} ${server.identity.fingerprint}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: server.token };
  return {
    server,
    port,
    address,
    token: server.token,
    tokenFile: server.tokenFile,
    fingerprint: server.identity.fingerprint,
    home,
    env,
    connect: (connectOptions = {}) =>
      connect({ host, port }, { token: server.token, fingerprint: server.identity.fingerprint, ...connectOptions }),
    async stop() {
      await server.close(500);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Run the real CLI (`bin/shellwire.cjs`, built by `tsc`) as a child process. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const result = cliResult(child, options.timeoutMs);
  child.stdin.on('error', () => {});
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  return result;
}

/**
 * The CLI with argv words that are exact bytes: Node's spawn would encode them as UTF-8, so
 * they go NUL-separated through a file in `scratchDir` that bash reads back (and removes).
 */
export function runCliRaw(words: Array<string | Buffer>, options: { env: NodeJS.ProcessEnv; scratchDir: string; timeoutMs?: number }): Promise<CliResult> {
  const argsFile = join(options.scratchDir, `.argv-${process.hrtime.bigint()}`);
  writeFileSync(argsFile, Buffer.concat([process.execPath, CLI, ...words].map((w) => Buffer.concat([Buffer.from(w), Buffer.of(0)]))));
  const child = spawn('/bin/bash', ['-c', 'mapfile -d "" words < "$1" && rm -f "$1" && exec "${words[@]}"', 'cli', argsFile], { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  return cliResult(child, options.timeoutMs);
}

/** A CLI child's exit and whole output (stdout and stderr piped); SIGKILLed after `timeoutMs`. */
export function cliResult(child: ChildProcess, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** True while a process with this pid exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Poll `predicate` every 20 ms until true or `timeoutMs` passes; returns its last value. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A daemon whose token acts as the daemon's account with `root` as its only file root and
 * `home` (inside it) as its home: the file service's tests see one confined user.
 */
export async function startDaemonWithRoot(root: string, home: string, options: ServerOptions = {}): Promise<TestDaemon> {
  let token = '';
  const authenticator: Authenticator = {
    authenticate: (attempts) =>
      attempts.some((a) => a.method === 'token' && a.token === token)
        ? { ok: true, principal: { ...daemonPrincipal([root]), home } }
        : { ok: false, reason: 'wrong token', delayMs: 0 },
  };
  const daemon = await startDaemon({ authenticator, audit: false, ...options });
  token = daemon.token;
  return daemon;
}
