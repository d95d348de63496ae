/**
 * The real `shellwire serve` process: graceful stop on SIGTERM (running commands finish,
 * then exit 0), and `--shutdown-grace` bounding how long they may take.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import type { Connection } from '../../src/client/connection.js';
import { waitFor } from '../helpers/daemon.js';
import { tempDir, removeDir, startServeCli, processGroupRunning, type ServeChild } from '../helpers/fixtures.js';

const daemons: ServeChild[] = [];
const homes: string[] = [];
const pgids: number[] = [];

after(() => {
  for (const daemon of daemons) daemon.kill();
  for (const pgid of pgids) {
    try {
      if (processGroupRunning(pgid)) process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone in the meantime
    }
  }
  for (const home of homes) removeDir(home);
});

async function serve(extraArgs: string[] = []): Promise<ServeChild> {
  const home = tempDir('shellwire-serve-');
  homes.push(home);
  const daemon = await startServeCli(home, extraArgs);
  daemons.push(daemon);
  return daemon;
}

function connectTo(daemon: ServeChild): Promise<Connection> {
  return connect(daemon.address, { fingerprint: daemon.fingerprint, tokenFile: daemon.tokenFile });
}

/** Collect a spawned command's stdout as text. */
function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve(text));
    stream.on('error', () => resolve(text));
  });
}

test('serve makes its identity and token in $SHELLWIRE_HOME/server on first start', { timeout: 20_000 }, async () => {
  const daemon = await serve();
  assert.ok(existsSync(daemon.tokenFile), 'token file');
  assert.match(daemon.stdout().toString('utf8'), /\(new identity\)/);
  assert.ok(daemon.stdout().toString('utf8').includes(join(daemon.home, 'server', 'token')));
  const conn = await connectTo(daemon);
  assert.equal((await conn.exec('echo served')).stdout, 'served\n');
  await conn.close();
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
});

test('SIGTERM: a running command finishes with its output, then the daemon exits 0', { timeout: 20_000 }, async () => {
  const daemon = await serve();
  const conn = await connectTo(daemon);
  const proc = conn.spawn('sleep 1; echo done');
  proc.stdin.end();
  const stdout = collect(proc.stdout);
  const stderr = collect(proc.stderr);
  await proc.started;
  daemon.child.kill('SIGTERM');
  // The daemon has begun stopping while the command still runs...
  await daemon.waitForStderr(/shutting down/);
  let finished = false;
  void proc.exited.then(() => (finished = true), () => (finished = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(finished, false, 'the command ended before the daemon started to stop; the test proves nothing');
  // ...and the command still completes normally.
  const exit = await proc.exited;
  assert.equal(exit.exitCode, 0);
  assert.equal(exit.signal, null);
  assert.equal(await stdout, 'done\n');
  assert.equal(await stderr, '');
  const { code } = await daemon.exited;
  assert.equal(code, 0, daemon.stderr());
  await conn.close();
});

test('SIGTERM with --shutdown-grace 1: a long command is killed, the daemon exits 0', { timeout: 20_000 }, async () => {
  const daemon = await serve(['--shutdown-grace', '1']);
  const conn = await connectTo(daemon);
  const proc = conn.spawn('echo $$; sleep 300');
  proc.stdin.end();
  proc.stderr.on('error', () => {}).resume();
  const pidLine = await new Promise<string>((resolve) => proc.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  proc.stdout.on('error', () => {}).resume();
  const pgid = Number(pidLine.trim());
  pgids.push(pgid);
  assert.ok(processGroupRunning(pgid));
  const outcome = proc.exited.then(
    (exit) => ({ exit, error: undefined }),
    (error: Error & { code?: string }) => ({ exit: null, error }),
  );
  daemon.child.kill('SIGTERM');
  const { code } = await daemon.exited;
  assert.equal(code, 0, daemon.stderr());
  assert.ok(await waitFor(() => !processGroupRunning(pgid), 2_000), 'the command outlived the daemon');
  // The client hears why the command ended.
  const { exit, error } = await outcome;
  assert.equal(exit, null, 'the command cannot have ended normally');
  assert.equal(error?.code, 'SW_ERR_SERVER_SHUTTING_DOWN');
  assert.match(error?.message ?? '', /shutting down.*killed/);
  await conn.close();
});
