/**
 * Issue 12 item 1, wired in: the daemon starts commands on pipes through its spawner helper
 * (process/spawner.ts) unless `spawner: false` (`serve --spawner off`). Real daemons, real
 * processes, a raw client for the frames: a CLOSE, a connection loss or a daemon stop that
 * comes while a spawn is in flight (the helper held with SIGSTOP) still stops the command once
 * it exists; the helper's death fails the running command with SW_ERR_SPAWNER and the next one
 * starts a new helper; the classic port shares the daemon's spawner.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode } from '../../src/errors.js';
import { ClassicServer } from '../../src/server/classic-server.js';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { running, tagged } from '../helpers/processes.js';

/** The parent pid of a running pid (/proc/PID/stat field 4). */
function ppidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function rawClient(daemon: TestDaemon): Promise<RawClient> {
  const client = await RawClient.open(daemon.port);
  await client.authenticate(daemon.token);
  return client;
}

/** Run `sleep 600.<tag>` on channel 1 of a raw client whose OPEN waits on a stopped helper. */
async function openWhileHelperStopped(daemon: TestDaemon, tag: string): Promise<{ client: RawClient; helper: number }> {
  const helper = daemon.server.spawner!.helperPid!;
  const client = await rawClient(daemon);
  process.kill(helper, 'SIGSTOP');
  client.sendJson(FrameType.OPEN, 1, { kind: 'exec', window: 65536, maxPacket: 65536, argv: ['sleep', `600.${tag}`] });
  // The OPEN has reached the daemon (and its spawn message the stopped helper's socket).
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(client.frames.filter((f) => f.channel === 1).length, 0, 'no answer while the spawn is in flight');
  return { client, helper };
}

/** Digits: `sleep 600.<tag>` must stay a valid interval. */
function newTag(): string {
  return String(randomInt(1e9, 1e10));
}

function killTagged(tag: string): void {
  for (const pid of tagged(tag)) process.kill(pid, 'SIGKILL');
}

describe('the daemon and its spawner', () => {
  it('forks commands from the helper by default, from the daemon with spawner: false', async () => {
    for (const spawner of [true, false]) {
      const daemon = await startDaemon({ audit: false, spawner });
      try {
        const conn = await daemon.connect();
        const result = await conn.exec('echo $PPID');
        conn.close();
        const ppid = Number(result.stdout.toString().trim());
        if (spawner) {
          assert.equal(ppid, daemon.server.spawner!.helperPid, 'the command is the helper\'s child');
          assert.notEqual(ppid, process.pid);
          assert.equal(ppidOf(ppid), process.pid, 'the helper is the daemon\'s child');
        } else {
          assert.equal(daemon.server.spawner, undefined);
          assert.equal(ppid, process.pid, 'the daemon forked it');
        }
      } finally {
        await daemon.stop();
      }
    }
  });

  it('answers OPEN_OK with the pid, then EXIT, and a missing program with 127 / SW_ERR_SPAWN_FAILED, through the helper', async () => {
    const daemon = await startDaemon({ audit: false });
    try {
      const client = await rawClient(daemon);
      const ok = await client.openExec(1, { argv: ['/bin/sh', '-c', 'exit 3'] });
      assert.equal(ok.type, FrameType.OPEN_OK);
      assert.equal(typeof ok.body.pid, 'number');
      const exit = await client.nextFrame((f) => f.channel === 1 && f.type === FrameType.EXIT);
      assert.equal(JSON.parse(exit.payload.toString()).exitCode, 3);
      const missing = await client.openExec(3, { argv: ['/nonexistent/prog'] });
      assert.equal(missing.type, FrameType.OPEN_OK);
      assert.equal(missing.body.pid, undefined);
      const status = JSON.parse((await client.nextFrame((f) => f.channel === 3 && f.type === FrameType.EXIT)).payload.toString());
      assert.equal(status.exitCode, 127);
      assert.equal(status.error.code, ErrorCode.SPAWN_FAILED);
      client.destroy();
    } finally {
      await daemon.stop();
    }
  });

  it('a CLOSE that comes while the spawn is in flight still stops the command once it exists', async () => {
    const daemon = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
    const tag = newTag();
    try {
      const { client, helper } = await openWhileHelperStopped(daemon, tag);
      client.send(FrameType.CLOSE, 1);
      await client.nextFrame((f) => f.channel === 1 && f.type === FrameType.CLOSE);
      process.kill(helper, 'SIGCONT');
      // It starts (the helper was asked before the CLOSE), then is stopped.
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(await waitFor(() => tagged(tag).length === 0, 5_000), 'the command was stopped');
      // The connection goes on.
      const again = await client.openExec(3, { argv: ['true'] });
      assert.equal(again.type, FrameType.OPEN_OK);
      client.destroy();
    } finally {
      killTagged(tag);
      await daemon.stop();
    }
  });

  it('a connection lost while the spawn is in flight still stops the command once it exists', async () => {
    const daemon = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
    const tag = newTag();
    try {
      const { client, helper } = await openWhileHelperStopped(daemon, tag);
      client.destroy();
      await waitFor(() => daemon.server.connectionCount === 0, 3_000);
      process.kill(helper, 'SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(await waitFor(() => tagged(tag).length === 0, 5_000), 'the command was stopped');
    } finally {
      killTagged(tag);
      await daemon.stop();
    }
  });

  it('a daemon stop with a spawn in flight finishes, and leaves nothing running', async () => {
    const daemon = await startDaemon({ audit: false });
    const tag = newTag();
    let helper = 0;
    try {
      ({ helper } = await openWhileHelperStopped(daemon, tag));
      await daemon.server.close(200);
      process.kill(helper, 'SIGCONT');
      // The stopped helper finds its channel closed when it runs again: it starts nothing more and exits.
      assert.ok(await waitFor(() => !running(helper), 5_000), 'the helper exited');
      assert.deepEqual(tagged(tag), []);
    } finally {
      if (helper && running(helper)) process.kill(helper, 'SIGCONT');
      killTagged(tag);
      await daemon.stop();
    }
  });

  it('the helper killed -9 under a running command: EXIT says SIGKILL and SW_ERR_SPAWNER, its group is gone, the next command runs', async () => {
    const daemon = await startDaemon({ audit: false });
    const tag = newTag();
    try {
      const client = await rawClient(daemon);
      const ok = await client.openExec(1, { command: `sleep 600.${tag} & sleep 600.${tag}; wait` });
      assert.equal(ok.type, FrameType.OPEN_OK);
      await waitFor(() => tagged(tag).length === 2, 3_000);
      const helper = daemon.server.spawner!.helperPid!;
      process.kill(helper, 'SIGKILL');
      const status = JSON.parse((await client.nextFrame((f) => f.channel === 1 && f.type === FrameType.EXIT, 10_000)).payload.toString());
      assert.equal(status.signal, 'SIGKILL', JSON.stringify(status));
      assert.equal(status.error.code, ErrorCode.SPAWNER);
      assert.match(status.error.message, /spawner helper died/);
      assert.ok(await waitFor(() => tagged(tag).length === 0, 5_000), 'its process group was killed');
      const next = await daemon.connect();
      const result = await next.exec('echo $PPID');
      next.close();
      const newHelper = Number(result.stdout.toString().trim());
      assert.equal(result.exitCode, 0);
      assert.notEqual(newHelper, helper);
      assert.equal(newHelper, daemon.server.spawner!.helperPid);
      client.destroy();
    } finally {
      killTagged(tag);
      await daemon.stop();
    }
  });

  it('the classic port starts its commands through the daemon\'s spawner', async () => {
    const daemon = await startDaemon({ audit: false });
    const classic = new ClassicServer({ token: daemon.token, port: 0, containers: daemon.server.containers, spawner: daemon.server.spawner! });
    try {
      const { port } = await classic.listen();
      daemon.server.attach(classic);
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = netConnect(port, '127.0.0.1', () => socket.end(`${daemon.token}\necho $PPID\n`));
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(reply, new RegExp(`^OK\\n${daemon.server.spawner!.helperPid}\\n`));
    } finally {
      await daemon.stop();
    }
  });
});
