/**
 * The process-group helper both command kinds use (src/process/process-group.ts), on real
 * process groups: a stop escalates to SIGKILL after the grace, the hang-up after a leader's own
 * exit reaches what it left in its group, a stop replaces a pending hang-up, and the container
 * is finished exactly once whichever way the command ends (docs/processes.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessGroup, HANGUP_DELAY_MS, type GroupContainer } from '../../src/process/process-group.js';
import { tagged } from '../helpers/processes.js';

/** A command as the daemon starts one: the leader of its own process group. */
function startGroup(script: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout!.resume();
  return child;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(25);
  assert.ok(condition(), what);
}

/** A container that records what it is asked (the cgroup part is containment.test.ts's). */
function recordingContainer(group: () => ProcessGroup): GroupContainer & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    signalAll: (signal) => {
      calls.push(signal);
      return group().signal(signal);
    },
    killAll: () => {
      calls.push('killAll');
      group().signal('SIGKILL');
    },
    finish: () => calls.push('finish'),
  };
}

test('a stop signals the group and SIGKILLs what ignores it after the grace', async (t) => {
  const tag = `${process.pid}01`;
  const child = startGroup(`trap '' TERM; sleep 600.${tag} & wait`);
  t.after(() => child.pid && new ProcessGroup(child.pid, null).kill());
  // The shell's own argv holds the tag too: two until sleep runs.
  await until(() => tagged(tag).length === 2, 'the member started');
  const group = new ProcessGroup(child.pid, null, 200);
  group.terminate(['SIGTERM']);
  assert.equal(group.stopping, true);
  await sleep(50);
  assert.ok(group.alive(), 'SIGTERM is ignored, so the group lives until the grace ends');
  await until(() => !group.alive(), 'SIGKILL after the grace ended the whole group');
});

test('a leader that exits by itself leaves its group a hang-up: a plain background job ends', async (t) => {
  const tag = `${process.pid}02`;
  const child = startGroup(`sleep 600.${tag} & exit 0`);
  t.after(() => child.pid && new ProcessGroup(child.pid, null).kill());
  const group = new ProcessGroup(child.pid, null);
  await once(child, 'exit');
  assert.equal(tagged(tag).length, 1, 'the job outlived its leader');
  group.leaderExited();
  await until(() => tagged(tag).length === 0, 'SIGHUP ended the job');
  assert.equal(group.stopping, false);
});

test('the container finishes after the hang-up when the command ended first', async (t) => {
  const child = startGroup('sleep 600 & exit 0');
  t.after(() => child.pid && new ProcessGroup(child.pid, null).kill());
  const container = recordingContainer(() => group);
  const group = new ProcessGroup(child.pid, container);
  await once(child, 'exit');
  group.leaderExited();
  group.end();
  assert.deepEqual(container.calls, [], 'contained until the hang-up went out');
  await sleep(HANGUP_DELAY_MS + 100);
  assert.deepEqual(container.calls, ['finish']);
  group.kill();
});

test('a stop during the pending hang-up replaces it, and the container still finishes once', async (t) => {
  const child = startGroup('sleep 600 & exit 0');
  t.after(() => child.pid && new ProcessGroup(child.pid, null).kill());
  const container = recordingContainer(() => group);
  const group = new ProcessGroup(child.pid, container, 100);
  await once(child, 'exit');
  group.leaderExited();
  group.end();
  group.terminate(['SIGHUP', 'SIGTERM']);
  assert.deepEqual(container.calls, ['SIGHUP', 'SIGTERM', 'finish'], 'signals to all of it, then the finish the hang-up owed');
  await sleep(HANGUP_DELAY_MS + 100);
  // After it only the grace's SIGKILL may come (if the SIGTERM still reached a process): no second finish.
  assert.deepEqual(container.calls.slice(0, 3), ['SIGHUP', 'SIGTERM', 'finish']);
  assert.deepEqual(container.calls.slice(3).filter((call) => call !== 'killAll'), []);
});

test('a stop before the end: the end finishes the container, the grace brings killAll', async (t) => {
  const child = startGroup(`trap '' TERM; sleep 600 & wait`);
  t.after(() => child.pid && new ProcessGroup(child.pid, null).kill());
  const container = recordingContainer(() => group);
  const group = new ProcessGroup(child.pid, container, 100);
  group.terminate(['SIGTERM']);
  group.leaderExited();
  await until(() => container.calls.includes('killAll'), 'SIGKILL after the grace');
  group.end();
  assert.deepEqual(container.calls, ['SIGTERM', 'killAll', 'finish']);
  await until(() => !group.alive(), 'the group is gone');
});

/**
 * A leader caught between its fork and its setsid(): node-pty returns from the fork before
 * the child makes its group, so a connection lost at once stops a pid that leads no group
 * yet. Modelled by a child left in the test's own group (no setsid at all).
 */
function startBeforeSetsid(script: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout!.resume();
  return child;
}

test('a stop before the leader made its group still reaches the leader', { timeout: 10_000 }, async (t) => {
  const child = startBeforeSetsid('exec sleep 600');
  t.after(() => child.kill('SIGKILL'));
  const exited = once(child, 'exit');
  const group = new ProcessGroup(child.pid, null, 5_000);
  group.terminate(['SIGHUP', 'SIGTERM']);
  const [code, signal] = await exited;
  assert.equal(code, null);
  assert.ok(signal === 'SIGHUP' || signal === 'SIGTERM', `ended by ${signal}`);
});

function state(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0]!;
}

test('a leader that stopped itself before it made its group is SIGKILLed after the grace (the fuzz leftover `sh [T]`)', { timeout: 10_000 }, async (t) => {
  const child = startBeforeSetsid(`trap '' HUP TERM; kill -STOP $$; sleep 600`);
  t.after(() => child.kill('SIGKILL'));
  const exited = once(child, 'exit');
  await until(() => state(child.pid!) === 'T', 'the leader stopped itself');
  const container = recordingContainer(() => group);
  const group = new ProcessGroup(child.pid, container, 100);
  group.terminate(['SIGHUP', 'SIGTERM']);
  const [, signal] = await exited;
  assert.equal(signal, 'SIGKILL');
  assert.deepEqual(container.calls, ['SIGHUP', 'SIGTERM', 'killAll'], 'the grace was armed although no group had its id');
});

test('once the leader exited, a stop never signals its pid alone (another process may have it now)', async (t) => {
  // A process holding the pid the leader had: in no group of that id, as a reused pid is.
  const other = startBeforeSetsid('exec sleep 600');
  t.after(() => other.kill('SIGKILL'));
  const group = new ProcessGroup(other.pid, null, 50);
  group.leaderExited();
  group.terminate(['SIGTERM']);
  await sleep(300);
  group.kill();
  await sleep(50);
  assert.equal(state(other.pid!), 'S', 'the process with the old pid was left alone');
});
