/**
 * Stopping commands: Ctrl-C in the CLI, a killed CLI, AbortSignal, timeouts. Each time the
 * remote process group (including what the command started) must be gone within 2 s.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, startCli, processGroupRunning, processRunning, type CliChild } from '../helpers/fixtures.js';
import type { Connection } from '../../src/client/connection.js';
import { CommandError, ErrorCode } from '../../src/errors.js';

let daemon: TestDaemon;
let conn: Connection;
let dir: string;
const children: CliChild[] = [];
/** Process groups (the commands' leaders) and other pids the tests started, to kill if a test failed. */
const groupsToReap: number[] = [];
const pidsToReap: number[] = [];

before(async () => {
  daemon = await startDaemon();
  conn = await daemon.connect();
  dir = tempDir();
});

after(async () => {
  for (const child of children) child.kill();
  // A failed test must not leave `sleep 300` behind.
  for (const pgid of groupsToReap) if (processGroupRunning(pgid)) killQuietly(-pgid);
  for (const pid of pidsToReap) if (processRunning(pid)) killQuietly(pid);
  await conn?.close();
  await daemon?.stop();
  if (dir) removeDir(dir);
});

function cli(args: string[]): CliChild {
  const child = startCli(args, { env: daemon.env, timeoutMs: 15_000 });
  children.push(child);
  return child;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone in the meantime
  }
}

/** Remember a command's group (its leader's pid, `$$`) and other pids it started. */
function track(leader: number, ...others: number[]): number[] {
  groupsToReap.push(leader);
  pidsToReap.push(...others);
  return [leader, ...others];
}

test('Ctrl-C in `shellwire exec` kills the remote process group within 2 s; the CLI exits 130', { timeout: 15_000 }, async () => {
  // `sleep` is a child of the shell, so the whole group has to go, not just the leader.
  const child = cli(['exec', daemon.address, '--', 'echo $$; sleep 300; echo not-reached']);
  const [, pidText] = await child.waitForStdout(/^(\d+)\n/);
  const [pgid] = track(Number(pidText));
  assert.ok(processGroupRunning(pgid!), 'the remote command is running');
  child.child.kill('SIGINT');
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'remote process group still alive 2 s after Ctrl-C');
  const { code } = await child.exited;
  assert.equal(code, 130, child.stderr());
  assert.doesNotMatch(child.stdout().toString('utf8'), /not-reached/);
});

test('SIGKILL of the CLI kills the remote command and its background child within 2 s', { timeout: 15_000 }, async () => {
  const child = cli(['exec', daemon.address, '--', 'sleep 300 & echo $$ $!; wait']);
  const [, leader, background] = await child.waitForStdout(/^(\d+) (\d+)\n/);
  const pids = track(Number(leader), Number(background));
  assert.ok(pids.every(processRunning), 'the remote command and its child are running');
  child.child.kill('SIGKILL');
  const gone = await waitFor(() => !processGroupRunning(pids[0]!) && !pids.some(processRunning), 2_000);
  assert.ok(gone, `still alive 2 s after the CLI died: ${pids.filter(processRunning).join(', ')}`);
});

test('`shellwire exec --timeout 1` kills the command and exits 124', { timeout: 15_000 }, async () => {
  const result = await runCli(['exec', '--timeout', '1', daemon.address, '--', 'echo $$; exec sleep 300'], { env: daemon.env, timeoutMs: 10_000 });
  assert.equal(result.signal, null, 'the CLI did not finish on its own');
  assert.equal(result.code, 124, result.stderr);
  assert.match(result.stderr, /timed out/);
  const [pgid] = track(Number(result.stdout.toString('utf8').trim()));
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'remote process group still alive');
});

test('AbortSignal cancels a running command: SW_ERR_COMMAND_CANCELED, process gone', { timeout: 15_000 }, async () => {
  const pidFile = join(dir, 'abort.pid');
  const controller = new AbortController();
  const running = conn.exec(`echo $$ > '${pidFile}'; sleep 300`, { signal: controller.signal });
  const started = await waitFor(() => {
    try {
      return /^\d+\n$/.test(readFileSync(pidFile, 'utf8'));
    } catch {
      return false;
    }
  });
  assert.ok(started, 'the command did not start');
  const [pgid] = track(Number(readFileSync(pidFile, 'utf8')));
  controller.abort();
  await assert.rejects(running, (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.COMMAND_CANCELED);
    assert.equal(err.canceled, true);
    assert.equal(err.timedOut, false);
    return true;
  });
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'remote process group still alive after abort');
  // The connection is still usable.
  assert.equal((await conn.exec('echo after abort')).stdout, 'after abort\n');
});

test('an already-aborted signal cancels before anything runs', { timeout: 15_000 }, async () => {
  const marker = join(dir, 'should-not-exist');
  await assert.rejects(conn.exec(`sleep 0.3; touch '${marker}'`, { signal: AbortSignal.abort() }), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.COMMAND_CANCELED);
    return true;
  });
  // Had the command been left running, the marker would appear 0.3 s after it started.
  await new Promise((resolve) => setTimeout(resolve, 800));
  assert.throws(() => readFileSync(marker), /ENOENT/);
});

test('the timeout option: SW_ERR_COMMAND_TIMED_OUT, timedOut true, process group gone', { timeout: 15_000 }, async () => {
  await assert.rejects(conn.exec('sleep 300 & echo $$ $!; wait', { timeout: 300 }), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.COMMAND_TIMED_OUT);
    assert.equal(err.timedOut, true);
    assert.match(err.message, /timed out after 300 milliseconds/);
    const pids = track(...(err.stdout.trim().split(' ').map(Number) as [number, ...number[]]));
    assert.equal(pids.length, 2);
    return true;
  });
  const pids = [groupsToReap.at(-1)!, pidsToReap.at(-1)!];
  assert.ok(await waitFor(() => !processGroupRunning(pids[0]!) && !pids.some(processRunning), 2_000), 'timed-out command still alive');
});

test('a command that finishes before its timeout is not marked timed out', async () => {
  const result = await conn.exec('echo quick', { timeout: 10_000 });
  assert.equal(result.stdout, 'quick\n');
  assert.equal(result.timedOut, false);
  assert.equal(result.exitCode, 0);
});

// Since issue 9 item 6 a command's exit hangs up (SIGHUP) what it left in its group instead of
// killing it: a job that does not ignore SIGHUP still ends (exit-hangup.test.ts has the rest).
test('background jobs that let go of the output get the hang-up and end when the command ends', { timeout: 15_000 }, async () => {
  const result = await conn.exec('sleep 300 >/dev/null 2>&1 & echo $$ $!');
  const [, pid] = track(...(result.stdout.trim().split(' ').map(Number) as [number, ...number[]]));
  assert.ok(pid! > 0);
  assert.ok(await waitFor(() => !processRunning(pid!), 2_000), 'a background job outlived its channel');
});

test('closing the connection kills its running commands', { timeout: 15_000 }, async () => {
  const other = await daemon.connect();
  const proc = other.spawn('echo $$; exec sleep 300');
  proc.stdin.end();
  const pidLine = await new Promise<string>((resolve) => proc.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  const [pgid] = track(Number(pidLine.trim()));
  // The streams end with the connection's error; a user of spawn() handles it.
  proc.stdout.on('error', () => {}).resume();
  proc.stderr.on('error', () => {}).resume();
  const exited = proc.exited.then(() => 'resolved', (err: Error & { code?: string }) => err.code);
  await other.close();
  assert.equal(await exited, ErrorCode.CONNECTION_CLOSED);
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'command outlived its connection');
});

test('a background job that keeps the output open is hung up (SIGHUP) when the command exits', {
  timeout: 15_000,
}, async () => {
  const proc = conn.spawn('sleep 300 & echo $$ $!');
  proc.stdin.end();
  let stdout = '';
  proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString())).on('error', () => {});
  proc.stderr.on('error', () => {}).resume();
  proc.exited.catch(() => {});
  try {
    assert.ok(await waitFor(() => /^\d+ \d+\n$/.test(stdout)), 'the command did not start');
    const [leader, background] = track(...(stdout.trim().split(' ').map(Number) as [number, ...number[]]));
    // The shell itself is done at once...
    assert.ok(await waitFor(() => !processRunning(leader!)), 'the shell did not exit');
    // ...so the job it left behind gets the hang-up and ends, and with it the channel.
    assert.ok(await waitFor(() => !processRunning(background!), 2_000), 'the background job outlived its command');
    const exit = await proc.exited;
    assert.equal(exit.exitCode, 0);
    assert.equal(stdout, `${leader} ${background}\n`);
  } finally {
    proc.close(); // no-op once it ended; else the daemon kills the group
  }
});

test('`shellwire exec … | head -1`: the reader going away stops the remote command', { timeout: 15_000 }, async () => {
  const child = cli(['exec', daemon.address, '--', 'echo $$; exec seq 1 1000000000']);
  const [, pidText] = await child.waitForStdout(/^(\d+)\n/);
  const [pgid] = track(Number(pidText));
  child.child.stdout.destroy(); // as `head` exiting after its line
  const { code } = await child.exited;
  assert.equal(code, 141, child.stderr());
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'remote command still running after the reader left');
});

test('Ctrl-C in `shellwire shell` cancels the running command, not the session', { timeout: 15_000 }, async () => {
  const child = cli(['shell', daemon.address]);
  child.child.stdin.write('cd /tmp\necho $$; sleep 300\n');
  const [, pidText] = await child.waitForStdout(/^(\d+)\n/);
  const [pgid] = track(Number(pidText));
  child.child.kill('SIGINT');
  assert.ok(await waitFor(() => !processGroupRunning(pgid!), 2_000), 'remote process group still alive 2 s after Ctrl-C');
  // The session goes on, still in /tmp.
  child.child.stdin.end('pwd\n');
  const { code } = await child.exited;
  assert.equal(code, 0, child.stderr());
  assert.equal(child.stdout().toString('utf8'), `${pidText}\n/tmp\n`);
});
