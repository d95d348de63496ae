/**
 * A closed stdout or stderr (issue 8 item 16): `shellwire serve 2>&1 >/dev/null | head -1`
 * hung forever on SIGTERM. The daemon must keep serving and stop on SIGTERM; a second signal
 * forces the stop; a client CLI whose reader went away exits quietly (141, as SIGPIPE would).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { CLI, startDaemon, waitFor } from '../helpers/daemon.js';
import { cleanEnv, freePort, removeDir, tempDir } from '../helpers/fixtures.js';
import { connect } from '../../src/client/connect.js';

const children: ChildProcess[] = [];
const homes: string[] = [];
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const home of homes) removeDir(home);
});

/** `shellwire serve` with the given stdio; resolves once it listens (polling the TCP port). */
async function serveWith(stdio: ['ignore', 'ignore' | 'pipe', 'ignore' | 'pipe'], extraArgs: string[] = []) {
  const home = tempDir('shellwire-epipe-');
  homes.push(home);
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, ...extraArgs], { env: cleanEnv({ SHELLWIRE_HOME: home }), stdio });
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, home, port, address: `127.0.0.1:${port}`, exited, tokenFile: `${home}/server/token` };
}

async function exitWithin(exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>, ms: number) {
  return Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms).unref())]);
}

async function fingerprintOf(home: string): Promise<string> {
  // The daemon writes its token after its identity: only then is there one to read (not make).
  assert.ok(await waitFor(() => existsSync(`${home}/server/token`), 10_000), 'the daemon made its state');
  const { loadOrCreateIdentity } = await import('../../src/auth/identity.js');
  return (await loadOrCreateIdentity(`${home}/server`)).fingerprint;
}

test('serve with stderr a pipe closed after one line (`2>&1 >/dev/null | head -1`), then SIGTERM: exits 0', { timeout: 30_000 }, async () => {
  // The report exactly: nothing logged between the reader going away and the signal.
  const daemon = await serveWith(['ignore', 'ignore', 'pipe']);
  await once(daemon.child.stderr!, 'data');
  daemon.child.stderr!.destroy();
  await fingerprintOf(daemon.home);
  await new Promise((r) => setTimeout(r, 200));
  daemon.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(daemon.exited, 10_000), { code: 0, signal: null });
});

test('serve with stderr closed: keeps serving while its log lines fail, exits 0 on SIGTERM', { timeout: 30_000 }, async () => {
  const daemon = await serveWith(['ignore', 'ignore', 'pipe']);
  await once(daemon.child.stderr!, 'data'); // head read its line...
  daemon.child.stderr!.destroy(); // ...and exited
  const conn = await connect(daemon.address, { fingerprint: await fingerprintOf(daemon.home), tokenFile: daemon.tokenFile, env: cleanEnv() });
  // Each of these logs lines into the closed pipe.
  for (let i = 0; i < 5; i++) assert.equal((await conn.exec(`echo ${i}`)).stdout, `${i}\n`);
  await conn.close();
  daemon.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(daemon.exited, 10_000), { code: 0, signal: null });
});

test('serve with stdout closed before the banner: keeps serving, exits 0 on SIGTERM', { timeout: 30_000 }, async () => {
  const daemon = await serveWith(['ignore', 'pipe', 'ignore']);
  daemon.child.stdout!.destroy();
  const fingerprint = await fingerprintOf(daemon.home);
  let conn;
  assert.ok(await waitFor(async () => {
    conn = await connect(daemon.address, { fingerprint, tokenFile: daemon.tokenFile, env: cleanEnv() }).catch(() => undefined);
    return conn !== undefined || daemon.child.exitCode !== null;
  }, 10_000));
  assert.ok(conn, `the daemon exited ${daemon.child.exitCode}`);
  assert.equal((await conn.exec('echo served')).stdout, 'served\n');
  await conn.close();
  daemon.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(daemon.exited, 10_000), { code: 0, signal: null });
});

test('a second SIGTERM stops the daemon while a command would hold it for the whole grace', { timeout: 30_000 }, async () => {
  const daemon = await serveWith(['ignore', 'ignore', 'pipe'], ['--shutdown-grace', '60']);
  daemon.child.stderr!.resume();
  const fingerprint = await fingerprintOf(daemon.home);
  assert.ok(await waitFor(async () => (await connect(daemon.address, { fingerprint, tokenFile: daemon.tokenFile, env: cleanEnv() }).then((c) => c.close(), () => false)) !== false, 10_000));
  const conn = await connect(daemon.address, { fingerprint, tokenFile: daemon.tokenFile, env: cleanEnv() });
  const proc = conn.spawn('echo started; sleep 60');
  proc.exited.catch(() => {}); // the forced stop kills it: that is the point
  await once(proc.stdout, 'data');
  daemon.child.kill('SIGTERM');
  assert.equal(await exitWithin(daemon.exited, 500), 'still running', 'the first SIGTERM waits for the command');
  daemon.child.kill('SIGTERM');
  assert.deepEqual(await exitWithin(daemon.exited, 10_000), { code: 0, signal: null });
});

test('client CLI: exec with stdout or stderr closed by its reader exits 141 quietly; run piped to head does not hang', { timeout: 30_000 }, async () => {
  const d = await startDaemon();
  try {
    for (const closed of ['stdout', 'stderr'] as const) {
      const child = spawn(process.execPath, [CLI, 'exec', d.address, '--', 'for i in $(seq 1 200000); do echo line $i; echo err $i >&2; done'], { env: d.env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      const other = closed === 'stdout' ? child.stderr! : child.stdout!;
      other.resume();
      await once(child[closed]!, 'data');
      child[closed]!.destroy();
      assert.deepEqual(await exitWithin(exited, 10_000), { code: 141, signal: null }, `exec with ${closed} closed`);
    }
    const run = spawn(process.execPath, [CLI, 'run', d.address, '--', 'seq 1 1000000'], { env: d.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(run);
    const runExited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => run.on('exit', (code, signal) => resolve({ code, signal })));
    let stderr = '';
    run.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await once(run.stdout!, 'data');
    run.stdout!.destroy();
    assert.deepEqual(await exitWithin(runExited, 10_000), { code: 141, signal: null }, stderr);
    assert.doesNotMatch(stderr, /EPIPE|at .*\.js:\d+/, 'no stack trace');
  } finally {
    await d.stop();
  }
});
