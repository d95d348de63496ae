/**
 * Issue 12 item 1: the spawner (src/process/spawner.ts) starts commands from a small helper
 * process, with stdio sockets that run straight from the child to the daemon. Real processes
 * throughout: bytes, exit statuses, spawn errors as Node reports them, process groups, the
 * helper's death (kill -9) and the daemon's, and no descriptor leaking into a command.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as nodeSpawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Spawner, SpawnerError, type SpawnedChild } from '../../src/process/spawner.js';
import { ErrorCode } from '../../src/errors.js';
import { waitFor } from '../helpers/daemon.js';
import { tempDir, removeDir, processGroupRunning } from '../helpers/fixtures.js';
import { running, tagged } from '../helpers/processes.js';

const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function closed(child: SpawnedChild): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve([code, signal])));
}

async function run(spawner: Spawner, file: string, args: string[], input?: Buffer) {
  const child = await spawner.spawn({ file, args, cwd: '/', env: ENV });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  const done = closed(child);
  if (input) child.stdin.end(input);
  else child.stdin.end();
  const [code, signal] = await done;
  return { child, code, signal, stdout: await stdout, stderr: await stderr };
}

/** The process group of a running pid (/proc/PID/stat field 5). */
function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('spawner', () => {
  let spawner: Spawner;
  let dir: string;
  before(async () => {
    dir = tempDir('shellwire-spawner-');
    spawner = await Spawner.start({ dir });
  });
  after(() => {
    spawner.close();
    removeDir(dir);
  });

  it('a loop blocked past the header timeout (a starved daemon) loses no pooled connection: later spawns still start', async () => {
    // The helper refills its pool while this loop is stuck; when the loop runs again, the
    // header timers are due before the poll phase reads the headers waiting in the kernel.
    // Destroying those connections then left spawns that took their slots waiting forever.
    // 12 commands need 36 connections, the pool holds 12: the helper opens the rest now.
    const started = Array.from({ length: 12 }, () => run(spawner, '/bin/true', []));
    const busyUntil = Date.now() + 5_500;
    while (Date.now() < busyUntil) {
      // blocked, as an agent process on a saturated machine
    }
    const results = await Promise.race([
      Promise.all([...started, ...Array.from({ length: 12 }, () => run(spawner, '/bin/true', []))]),
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 8_000).unref()),
    ]);
    assert.notEqual(results, 'hung', 'spawns after the stall must start, not wait for connections that were dropped');
  });

  it('runs commands in a helper process, not in this one', async () => {
    const helper = spawner.helperPid!;
    assert.ok(helper > 0 && running(helper));
    const { stdout } = await run(spawner, '/bin/sh', ['-c', 'echo $PPID']);
    assert.equal(Number(stdout.toString().trim()), helper, 'the command is the helper\'s child');
  });

  it('moves every byte exactly: stdin → cat → stdout, 256 byte values and 50 MiB (SHA-256)', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.deepEqual((await run(spawner, 'cat', [], all)).stdout, all);
    const big = randomBytes(50 * 1024 * 1024);
    const result = await run(spawner, 'cat', [], big);
    assert.equal(result.code, 0);
    assert.equal(result.stdout.length, big.length);
    assert.equal(sha(result.stdout), sha(big));
  });

  it('keeps stderr apart from stdout', async () => {
    const result = await run(spawner, '/bin/sh', ['-c', 'printf out; printf err >&2; printf out2']);
    assert.equal(result.stdout.toString(), 'outout2');
    assert.equal(result.stderr.toString(), 'err');
  });

  it('reports exit codes and signals as ChildProcess does (exit, then close)', async () => {
    const seven = await run(spawner, '/bin/sh', ['-c', 'exit 7']);
    assert.deepEqual([seven.code, seven.signal], [7, null]);
    assert.deepEqual([seven.child.exitCode, seven.child.signalCode], [7, null]);
    const term = await run(spawner, '/bin/sh', ['-c', 'kill -TERM $$']);
    assert.deepEqual([term.code, term.signal], [null, 'SIGTERM']);
    // 'close' waits for the output of what the leader left behind; 'exit' does not.
    const child = await spawner.spawn({ file: '/bin/sh', args: ['-c', 'echo a; (sleep 0.3; echo b) &'], cwd: '/', env: ENV });
    const out = collect(child.stdout);
    let exitedFirst = false;
    child.once('exit', () => {
      exitedFirst = true;
    });
    const [code] = await closed(child);
    assert.ok(exitedFirst);
    assert.equal(code, 0);
    assert.equal((await out).toString(), 'a\nb\n');
  });

  it('fails to start a missing or non-executable program with the error Node gives', async () => {
    const nodeError = (file: string) =>
      new Promise<NodeJS.ErrnoException>((resolve) => nodeSpawn(file, ['x'], { cwd: '/', env: ENV }).once('error', resolve));
    const script = join(dir, 'not-executable');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o644);
    for (const file of ['/nonexistent/prog', 'no-such-program-anywhere', script]) {
      const expected = await nodeError(file);
      const err = await spawner.spawn({ file, args: ['x'], cwd: '/', env: ENV }).then(
        () => assert.fail(`${file} started`),
        (e: NodeJS.ErrnoException & { spawnargs?: string[] }) => e,
      );
      assert.equal(err.message, expected.message);
      assert.equal(err.code, expected.code);
      assert.equal(err.errno, expected.errno);
      assert.equal(err.syscall, expected.syscall);
      assert.equal(err.path, expected.path);
      assert.deepEqual(err.spawnargs, ['x']);
    }
    // A missing working directory, too.
    const err = await spawner.spawn({ file: '/bin/true', args: [], cwd: join(dir, 'missing'), env: ENV }).then(() => null, (e: NodeJS.ErrnoException) => e);
    assert.equal(err?.code, 'ENOENT');
  });

  it('gives every command its own process group (pid = pgid), and a group kill reaches a grandchild', async () => {
    const child = await spawner.spawn({ file: '/bin/sh', args: ['-c', 'sleep 300 & echo $!; wait'], cwd: '/', env: ENV });
    const done = closed(child);
    const grandchild = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    try {
      assert.equal(pgidOf(child.pid), child.pid);
      assert.equal(pgidOf(grandchild), child.pid);
      process.kill(-child.pid, 'SIGTERM');
      assert.deepEqual(await done, [null, 'SIGTERM']);
      assert.ok(await waitFor(() => !running(grandchild), 3_000), 'the grandchild got the signal');
    } finally {
      if (running(grandchild)) process.kill(grandchild, 'SIGKILL');
    }
  });

  it('kill() signals the leader through the helper, and is a no-op once it exited', async () => {
    const child = await spawner.spawn({ file: 'sleep', args: ['300'], cwd: '/', env: ENV });
    const done = closed(child);
    assert.equal(child.kill('SIGINT'), true);
    assert.deepEqual(await done, [null, 'SIGINT']);
    assert.equal(child.kill('SIGKILL'), false);
  });

  it('runs 200 concurrent commands to the end', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => run(spawner, 'true', [])));
    assert.equal(results.filter((r) => r.code === 0 && r.signal === null).length, 200);
  });

  it('passes no descriptor of the daemon or the helper to the command (extra pipes as asked)', async () => {
    const plain = await run(spawner, '/bin/sh', ['-c', 'ls /proc/$$/fd']);
    assert.deepEqual(plain.stdout.toString().split('\n').filter(Boolean).map(Number).sort(), [0, 1, 2]);
    const child = await spawner.spawn({ file: '/bin/sh', args: ['-c', 'ls /proc/$$/fd; echo state >&3'], cwd: '/', env: ENV, extraPipes: 1 });
    assert.equal(child.stdio.length, 4);
    const [out, state] = [collect(child.stdout), collect(child.stdio[3]!)];
    child.stdin.end();
    await closed(child);
    assert.deepEqual((await out).toString().split('\n').filter(Boolean).map(Number).sort(), [0, 1, 2, 3]);
    assert.equal((await state).toString(), 'state\n');
  });

  it('passes argv, env and cwd as a direct spawn does (strings kept exactly across the helper)', async () => {
    const args = ['-c', 'printf "%s|%s|%s" "$1" "$V" "$PWD"', 'sh', 'caf\u00e9 \udce9 \u{1f600}'];
    const env = { ...ENV, V: 'v\udcff\u00e9' };
    const direct = await new Promise<Buffer>((resolve) => {
      const c = nodeSpawn('/bin/sh', args, { cwd: '/tmp', env, stdio: ['ignore', 'pipe', 'ignore'] });
      void collect(c.stdout).then(resolve);
    });
    const child = await spawner.spawn({ file: '/bin/sh', args, cwd: '/tmp', env });
    child.stdin.end();
    assert.deepEqual(await collect(child.stdout), direct);
  });

  it('fails running commands with SW_ERR_SPAWNER when the helper is killed -9, and starts a new helper', async () => {
    const old = spawner.helperPid!;
    const child = await spawner.spawn({ file: 'sleep', args: ['301'], cwd: '/', env: ENV });
    const failed = new Promise<Error>((resolve) => child.once('error', resolve));
    const done = closed(child);
    try {
      process.kill(old, 'SIGKILL');
      const err = await failed;
      assert.ok(err instanceof SpawnerError);
      assert.equal((err as SpawnerError).code, ErrorCode.SPAWNER);
      assert.match(err.message, /spawner helper died \(killed by SIGKILL\)/);
      assert.deepEqual(await done, [null, 'SIGKILL']);
      assert.ok(await waitFor(() => !running(child.pid), 3_000), 'its process group was killed');
    } finally {
      if (running(child.pid)) process.kill(child.pid, 'SIGKILL');
    }
    const next = await run(spawner, '/bin/sh', ['-c', 'echo again']);
    assert.equal(next.stdout.toString(), 'again\n');
    assert.notEqual(spawner.helperPid, old);
  });

  it('never leaves a spawn hanging when the helper dies while it starts commands', async () => {
    // A command forked just before the helper died, whose pid never reached us, is an orphan
    // nothing can report (with containment, its cgroup is killed when the spawn fails): the
    // tag finds those for the cleanup.
    const tag = `${process.pid}303`;
    const spawns = Array.from({ length: 20 }, () => spawner.spawn({ file: 'sleep', args: [`303.${tag}`], cwd: '/', env: ENV }));
    after(() => {
      for (const pid of tagged(tag)) process.kill(pid, 'SIGKILL');
    });
    await new Promise((resolve) => setImmediate(resolve));
    process.kill(spawner.helperPid!, 'SIGKILL');
    const outcomes = await Promise.all(
      spawns.map((p) =>
        p.then(
          (child) => new Promise<unknown>((resolve) => child.once('error', resolve)),
          (err: unknown) => err,
        ),
      ),
    );
    for (const err of outcomes) assert.ok(err instanceof SpawnerError && err.code === ErrorCode.SPAWNER, String(err));
    assert.equal((await run(spawner, 'true', [])).code, 0);
  });

  it('exits with its daemon, killing the commands still running', async () => {
    const script = join(dir, 'daemon.mts');
    writeFileSync(
      script,
      `import { Spawner } from ${JSON.stringify(join(import.meta.dirname, '../../src/process/spawner.ts'))};\n` +
        `const s = await Spawner.start();\n` +
        `const c = await s.spawn({ file: 'sleep', args: ['302'], cwd: '/', env: {} });\n` +
        `process.stdout.write(JSON.stringify({ helper: s.helperPid, command: c.pid }) + '\\n');\n` +
        `setInterval(() => {}, 1000);\n`,
    );
    const daemon = nodeSpawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let pids: { helper: number; command: number } | undefined;
    try {
      const line = await new Promise<string>((resolve, reject) => {
        daemon.stdout.once('data', (d: Buffer) => resolve(d.toString()));
        daemon.once('exit', () => reject(new Error('the test daemon exited')));
      });
      pids = JSON.parse(line) as { helper: number; command: number };
      assert.ok(running(pids.helper) && running(pids.command));
      daemon.kill('SIGKILL');
      assert.ok(await waitFor(() => !running(pids!.helper), 5_000), 'the helper exited');
      assert.ok(await waitFor(() => !running(pids!.command), 5_000), 'the command was killed');
    } finally {
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
      for (const pid of pids ? [pids.helper, pids.command] : []) if (running(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});

/**
 * Something else listens at a spawner's socket path (the real socket renamed away): `held`
 * accepts the helper's connections and holds them (they never reach the daemon); `partial`
 * passes each one on to the daemon but only its first 10 header bytes (a header that never
 * completes). The spawn waited for those connections for ever.
 */
async function spawnPastImpostor(mode: 'held' | 'partial'): Promise<void> {
  const dir = tempDir('shellwire-spawner-lost-');
  // No pool: every connection is opened at spawn time, so they all go to the impostor.
  const spawner = await Spawner.start({ dir, poolSize: 0, stdioTimeoutMs: 1_000 });
  const socketPath = join(dir, readdirSync(dir).find((name) => name.startsWith('shellwire-spawner-'))!, 's');
  const real = `${socketPath}.real`;
  const held: Socket[] = [];
  const impostor = createServer((socket) => {
    held.push(socket);
    if (mode === 'held') return;
    socket.once('data', (header: Buffer) => {
      const onward = createConnection(real, () => onward.write(header.subarray(0, 10)));
      onward.on('error', () => {});
      held.push(onward);
    });
  });
  const tag = `${process.pid}305`;
  const pidFile = join(dir, 'pid');
  try {
    renameSync(socketPath, real);
    await new Promise<void>((resolve) => impostor.listen(socketPath, resolve));
    const outcome = await Promise.race([
      spawner.spawn({ file: '/bin/sh', args: ['-c', `sleep 305.${tag} & echo $$ > ${pidFile}; wait`], cwd: '/', env: ENV }).then(() => 'started', (err: unknown) => err),
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 6_000).unref()),
    ]);
    assert.ok(outcome instanceof SpawnerError, `the spawn fails with a SpawnerError, not ${String(outcome)}`);
    assert.equal(outcome.code, ErrorCode.SPAWNER);
    assert.match(outcome.message, /^\/bin\/sh \(pid \d+\) was started, but its stdio connections from the spawner helper did not reach the daemon \(none of the helper's connections arrived for 1000 ms\) .*its process group was killed\. Run the command again/);
    // It did start (its stdio are the impostor's): its whole group is gone, background job included.
    assert.ok(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 3_000), 'the command started');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.match(outcome.message, new RegExp(`\\(pid ${pid}\\)`));
    assert.ok(await waitFor(() => !processGroupRunning(pid), 3_000), 'its process group was killed');
  } finally {
    for (const p of tagged(tag)) process.kill(p, 'SIGKILL');
    for (const socket of held) socket.destroy();
    // Closed before the real socket is back: a listener removes its socket file when it closes.
    await new Promise((resolve) => impostor.close(resolve));
    if (existsSync(real)) renameSync(real, socketPath);
  }
  try {
    // The same helper goes on: its next command's connections reach the daemon again.
    const helper = spawner.helperPid;
    const next = await run(spawner, '/bin/sh', ['-c', 'echo again']);
    assert.equal(next.stdout.toString(), 'again\n');
    assert.equal(spawner.helperPid, helper);
  } finally {
    spawner.close();
    removeDir(dir);
  }
}

describe('spawner: stdio connections that never reach the daemon', () => {
  it('connections held elsewhere: the spawn fails with SW_ERR_SPAWNER within stdioTimeoutMs, the command\'s group is killed, the next spawn starts', async () => {
    await spawnPastImpostor('held');
  });

  it('headers that never complete: the same', async () => {
    await spawnPastImpostor('partial');
  });
});

describe('spawner: a slow but moving accept path is waited for', () => {
  it('an overloaded daemon (its loop blocked most of the time) still starts every command of a burst: no SW_ERR_SPAWNER while connections keep arriving', async () => {
    const dir = tempDir('shellwire-spawner-slow-');
    // A limit far below how long the burst's connections take to be accepted here.
    const spawner = await Spawner.start({ dir, poolSize: 0, stdioTimeoutMs: 150 });
    // The loop is blocked 120 ms of every ~125 ms: each turn accepts a few connections, then stalls.
    const hog = setInterval(() => {
      const until = performance.now() + 120;
      while (performance.now() < until) { /* busy: an overloaded machine */ }
    }, 5);
    try {
      const outcomes = await Promise.all(Array.from({ length: 120 }, () => run(spawner, '/bin/sh', ['-c', 'echo ok']).then((r) => r.stdout.toString(), (err: unknown) => String(err))));
      clearInterval(hog);
      const failed = outcomes.filter((o) => o !== 'ok\n');
      assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${outcomes.length} failed`);
    } finally {
      clearInterval(hog);
      spawner.close();
      removeDir(dir);
    }
  });
});
