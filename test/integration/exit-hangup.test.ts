/**
 * Issue 9 item 6: a command that exits by itself gives what it left behind the hang-up a
 * terminal would (SIGHUP + SIGCONT to its process group), not a kill. `nohup prog >out 2>&1
 * </dev/null &` survives and is released from containment; a plain `prog &` ends; a job that
 * ignores SIGHUP survives, and if it holds the output the channel still ends after the output
 * grace. Cancel, timeout, disconnect and terminal close still kill everything.
 *
 * Processes are found by a tag in their argv (`sleep 313.<tag>`), checked by pid in /proc,
 * and killed by pid at the end.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, startServeCli } from '../helpers/fixtures.js';
import { RawClient } from '../helpers/raw-client.js';
import { FrameType } from '../../src/protocol/frame.js';
import { encodeWindow } from '../../src/protocol/messages.js';
import { ClassicServer } from '../../src/server/classic-server.js';
import { connect } from '../../src/client/connect.js';
import { findCgroup2, cgroupWritable } from '../../src/process/cgroup.js';
import { running, tagged } from '../helpers/processes.js';
import { transportOf } from '../helpers/transport-of.js';

const cgroup = findCgroup2();
const hasCgroups = cgroup !== null && cgroupWritable(cgroup.ownDir);

let tagSeq = 0;
const newTag = () => `${process.pid}${String(++tagSeq).padStart(3, '0')}`;
const tags: string[] = [];
const sleeper = (tag: string) => `sleep 313.${tag}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** The process exists and is not a zombie. */

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function cgroupOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

after(() => {
  for (const tag of tags) for (const pid of tagged(tag)) killPid(pid);
});

function tag(): string {
  const t = newTag();
  tags.push(t);
  return t;
}

/** No command cgroup (`c<N>`) is left under the daemon's parent cgroup. */
function noCommandCgroups(d: TestDaemon): boolean {
  const parent = d.server.containers.parentDir;
  return parent === null || !existsSync(parent) || readdirSync(parent).every((name) => !/^c\d+$/.test(name));
}

describe('a command that exits by itself hangs up what it left behind', () => {
  it('`nohup prog >out 2>&1 </dev/null &` survives, released from containment; the call returns at once', async (t) => {
    const d = await startDaemon({ audit: false });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const dir = tempDir();
    t.after(() => removeDir(dir));
    const tg = tag();
    const result = await conn.exec(`nohup ${sleeper(tg)} >${dir}/out 2>&1 </dev/null & echo $!`);
    assert.equal(result.exitCode, 0);
    const pid = Number(result.stdout.toString().trim());
    assert.ok(pid > 0);
    // Well past the hang-up and the old kill grace (SIGTERM at once, SIGKILL at 2 s).
    await sleep(3_000);
    assert.ok(running(pid), 'the nohup\'d process was killed when its command exited');
    if (hasCgroups) {
      assert.ok(await waitFor(() => noCommandCgroups(d), 3_000), 'the command\'s cgroup is removed');
      assert.ok(!cgroupOf(pid).includes('shellwire.'), `released into the daemon's cgroup: ${cgroupOf(pid)}`);
    }
    killPid(pid);
  });

  it('a plain `prog &` gets SIGHUP (not SIGTERM) and ends; so does a stopped job', async (t) => {
    // A long kill grace: the old end-of-command SIGKILL must not be what ends them.
    const d = await startDaemon({ audit: false, limits: { killGraceMs: 30_000 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const dir = tempDir();
    t.after(() => removeDir(dir));
    const tg = tag();
    const seen = join(dir, 'signal');
    const result = await conn.exec([
      // A job that says which signal ended it (trapped in `wait`, so it runs at once).
      `sh -c 'trap "echo HUP >${seen}; exit 1" HUP; trap "echo TERM >${seen}; exit 1" TERM; sleep 311.${tg} & wait' >/dev/null 2>&1 &`,
      // One that holds the output open, and one that is stopped.
      `${sleeper(tg)} & a=$!`,
      `sleep 312.${tg} >/dev/null 2>&1 & kill -STOP $!; echo $a $!`,
    ].join('\n'));
    assert.equal(result.exitCode, 0);
    const [holder, stopped] = result.stdout.toString().trim().split(' ').map(Number) as [number, number];
    assert.ok(await waitFor(() => !running(holder) && !running(stopped), 3_000), `still running: ${tagged(tg).join(' ')}`);
    assert.ok(await waitFor(() => existsSync(seen) && readFileSync(seen, 'utf8') !== '', 3_000), 'the trapping job got no signal');
    assert.equal(readFileSync(seen, 'utf8'), 'HUP\n');
    assert.ok(await waitFor(() => tagged(tg).length === 0, 3_000), `still running: ${tagged(tg).join(' ')}`);
  });

  it('a job that ignores SIGHUP (`trap \'\' HUP`) with its output redirected survives, released', async (t) => {
    const d = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tg = tag();
    const result = await conn.exec(`trap '' HUP; ${sleeper(tg)} </dev/null >/dev/null 2>&1 & echo $!`);
    const pid = Number(result.stdout.toString().trim());
    await sleep(1_500);
    assert.ok(running(pid), 'the job that ignores SIGHUP was killed');
    if (hasCgroups) {
      assert.ok(await waitFor(() => noCommandCgroups(d), 3_000), 'the command\'s cgroup is removed');
      assert.ok(!cgroupOf(pid).includes('shellwire.'), `released into the daemon's cgroup: ${cgroupOf(pid)}`);
    }
    killPid(pid);
  });

  it('a survivor holding stdout open does not hang the channel past the output grace; its output up to then arrives', async (t) => {
    // Ignores SIGTERM too, and the kill grace is long: before, the channel waited for SIGKILL.
    const d = await startDaemon({ audit: false, limits: { killGraceMs: 30_000, outputGraceMs: 500 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tg = tag();
    const started = Date.now();
    const result = await conn.exec(`trap '' HUP TERM; { sleep 0.1; echo from-survivor; exec ${sleeper(tg)}; } & echo $!`, { timeout: 20_000 });
    assert.ok(Date.now() - started < 10_000, 'EXIT waited for more than the output grace');
    assert.equal(result.exitCode, 0);
    assert.equal(result.timedOut, false);
    const [pidLine, survivorLine] = result.stdout.toString().split('\n');
    assert.equal(survivorLine, 'from-survivor');
    const pid = Number(pidLine);
    assert.ok(running(pid), 'the survivor is released, not killed');
    killPid(pid);
  });

  it('the output grace never cuts output the client has not had credit for yet', async (t) => {
    const d = await startDaemon({ audit: false, limits: { outputGraceMs: 200 } });
    t.after(() => d.stop());
    const tg = tag();
    const raw = await RawClient.open(d.port);
    t.after(() => raw.destroy());
    await raw.authenticate(d.token);
    // The leader writes 300 000 bytes and exits; a survivor keeps stdout open.
    const opened = await raw.openExec(1, { command: `trap '' HUP; ${sleeper(tg)} & head -c 300000 /dev/zero`, window: 4096, maxPacket: 4096 });
    assert.equal(opened.type, FrameType.OPEN_OK);
    // No credit for well past the grace, while the rest waits in the pipe.
    await sleep(1_000);
    let bytes = 0;
    for (;;) {
      const frame = await raw.nextFrame((f) => f.channel === 1 && (f.type === FrameType.STDOUT || f.type === FrameType.EXIT), 10_000);
      if (frame.type === FrameType.EXIT) break;
      bytes += frame.payload.length;
      raw.send(FrameType.WINDOW, 1, encodeWindow(frame.payload.length));
    }
    assert.equal(bytes, 300_000);
  });

  // Before: a survivor that never stopped writing kept the channel open for as long as it
  // ran (17–95 s seen), as the cut waited for a moment with nothing flowing.
  for (const stream of ['stdout', 'stderr'] as const) {
    it(`a survivor writing to ${stream} without pause is cut after the output grace too, and released`, async (t) => {
      // A long kill grace: the bound under test is the output grace's, not a later one.
      const d = await startDaemon({ audit: false, limits: { outputGraceMs: 500, killGraceMs: 30_000 } });
      t.after(() => d.stop());
      const conn = await d.connect({ window: 64 * 1024 });
      t.after(() => conn.close());
      const redirect = stream === 'stderr' ? ' >&2' : '';
      // The pid goes to the other stream, so it does not drown in the `yes` output.
      const proc = conn.spawn(`(trap '' HUP PIPE; exec yes${redirect}) & echo $! >&${stream === 'stderr' ? 1 : 2}`);
      let pid = 0;
      t.after(() => {
        if (pid > 0) killPid(pid);
      });
      let pidText = '';
      let bytes = 0;
      let exact = true;
      const pattern = Buffer.from('y\n'.repeat(64 * 1024 + 1));
      const fast = stream === 'stderr' ? proc.stderr : proc.stdout;
      const other = stream === 'stderr' ? proc.stdout : proc.stderr;
      fast.on('data', (chunk: Buffer) => {
        // What arrives is a prefix of `yes`'s output: nothing lost or doubled at the cut.
        if (chunk.length > pattern.length - 1 || !chunk.equals(pattern.subarray(bytes % 2, bytes % 2 + chunk.length))) exact = false;
        bytes += chunk.length;
        // A reader slower than `yes` (any is): the daemon keeps running out of credit.
        fast.pause();
        setTimeout(() => fast.resume(), 2);
      });
      other.on('data', (chunk: Buffer) => {
        pidText += chunk.toString();
      });
      const started = Date.now();
      const exit = await Promise.race([proc.exited, sleep(20_000).then(() => null)]);
      const tookMs = Date.now() - started;
      pid = Number(pidText.trim());
      assert.ok(pid > 0, `no pid: ${JSON.stringify(pidText)}`);
      if (exit === null) proc.close();
      // A bound, not a speed: the grace is 0.5 s; before the fix this took many seconds.
      assert.ok(exit !== null && tookMs < 6_000, `EXIT came after ${tookMs} ms`);
      assert.equal(exit.exitCode, 0);
      assert.ok(bytes > 0, 'the survivor\'s output up to the cut arrived');
      assert.ok(exact, 'the output is not an exact prefix of what `yes` wrote');
      if (hasCgroups) assert.ok(await waitFor(() => noCommandCgroups(d), 3_000), 'the command\'s cgroup is removed (the survivor released)');
      // Released, not killed: it ends by itself at its next write (EPIPE), or we kill it.
      if (running(pid) && hasCgroups) assert.ok(!cgroupOf(pid).includes('shellwire.'), `released into the daemon's cgroup: ${cgroupOf(pid)}`);
    });
  }

  it('a client that withholds credit keeps survivors holding the output only until the output grace plus the kill grace', async (t) => {
    const d = await startDaemon({ audit: false, limits: { outputGraceMs: 200, killGraceMs: 500 } });
    t.after(() => d.stop());
    const tg = tag();
    const raw = await RawClient.open(d.port);
    t.after(() => raw.destroy());
    await raw.authenticate(d.token);
    // `yes` repeats its argument, which carries the tag: the survivor is found by it.
    const line = `313.${tg}\n`;
    const opened = await raw.openExec(1, { command: `(trap '' HUP PIPE; exec yes 313.${tg}) &`, window: 4096, maxPacket: 4096 });
    assert.equal(opened.type, FrameType.OPEN_OK);
    // The shell's command line carries the tag too: the survivor is the one that is `yes`.
    const survivor = () => tagged(tg).find((p) => comm(p) === 'yes') ?? 0;
    assert.ok(await waitFor(() => survivor() > 0, 3_000), 'the survivor did not start');
    const pid = survivor();
    t.after(() => killPid(pid));
    // No credit at all: the pipe stays paused. Past both graces it is cut anyway, and the
    // survivor's next write fails (EPIPE; it ignores SIGPIPE and exits) — before, it was
    // held, blocked on the full pipe, for as long as the client liked.
    assert.ok(await waitFor(() => !running(pid), 5_000), 'the survivor still holds the output while the client withholds credit');
    if (hasCgroups) assert.ok(await waitFor(() => noCommandCgroups(d), 3_000), 'the command\'s cgroup is removed');
    // What the daemon had read before the cut still arrives, as an exact prefix, then EXIT.
    const received: Buffer[] = [];
    let exit;
    for (;;) {
      const frame = await raw.nextFrame((f) => f.channel === 1 && (f.type === FrameType.STDOUT || f.type === FrameType.EXIT), 10_000);
      if (frame.type === FrameType.EXIT) {
        exit = frame;
        break;
      }
      received.push(frame.payload);
      raw.send(FrameType.WINDOW, 1, encodeWindow(frame.payload.length));
    }
    assert.ok(exit);
    const out = Buffer.concat(received);
    assert.ok(out.length > 4096, `only ${out.length} bytes arrived`);
    assert.ok(out.equals(Buffer.from(line.repeat(Math.ceil(out.length / line.length) + 1)).subarray(0, out.length)), 'the output is not an exact prefix of what `yes` wrote');
  });
});

describe('explicit stops still kill nohup\'d jobs', () => {
  for (const how of ['close', 'timeout', 'disconnect', 'terminal close'] as const) {
    it(`${how}: the nohup'd job dies with the command`, async (t) => {
      const d = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
      t.after(() => d.stop());
      const conn = await d.connect();
      const tg = tag();
      const proc = conn.spawn(`nohup ${sleeper(tg)} >/dev/null 2>&1 </dev/null & exec sleep 600.${tg}`, {
        ...(how === 'timeout' ? { timeout: 500 } : {}),
        ...(how === 'terminal close' ? { pty: { term: 'xterm', cols: 80, rows: 24 } } : {}),
      });
      proc.stdout.resume();
      proc.stderr.resume();
      await proc.started;
      assert.ok(await waitFor(() => tagged(tg).length === 2, 5_000), 'the command did not start');
      if (how === 'close' || how === 'terminal close') proc.close();
      if (how === 'disconnect') transportOf(conn).destroy();
      await proc.exited.catch(() => {});
      assert.ok(await waitFor(() => tagged(tg).length === 0, 5_000), `still running: ${tagged(tg).join(' ')}`);
      if (how !== 'disconnect') await conn.close();
    });
  }

  it('a stop still ends what ignores SIGTERM after the leader died of it (SIGKILL after the kill grace)', { skip: !hasCgroups && 'needs a writable cgroup v2' }, async (t) => {
    const d = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tg = tag();
    // The leader dies of SIGTERM and the pipes close at once; the job lives on until SIGKILL.
    const proc = conn.spawn(`setsid sh -c "trap '' TERM; exec ${sleeper(tg)}" </dev/null >/dev/null 2>&1 & exec sleep 600.${tg}`);
    proc.stdout.resume();
    proc.stderr.resume();
    await proc.started;
    assert.ok(await waitFor(() => tagged(tg).length === 2, 5_000), 'the command did not start');
    proc.close();
    await proc.exited.catch(() => {});
    assert.ok(await waitFor(() => tagged(tg).length === 0, 5_000), `still running: ${tagged(tg).join(' ')}`);
  });
});

describe('the same rule on a terminal, without cgroups, and on the classic port', () => {
  it('terminal: a nohup\'d job survives the program\'s exit, a plain background job does not', async (t) => {
    const d = await startDaemon({ audit: false, limits: { killGraceMs: 300 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tg = tag();
    // On a terminal the kernel hangs up the foreground group the moment the program exits,
    // before nohup may have ignored SIGHUP (as with `ssh -t host 'nohup prog &'`): give it a moment.
    const result = await conn.exec(`nohup ${sleeper(tg)} >/dev/null 2>&1 </dev/null & a=$!; sleep 312.${tg} & sleep 0.5; echo $a $!`, { pty: { term: 'xterm', cols: 80, rows: 24 } });
    const [survivor, plain] = result.stdout.toString().trim().split(/\s+/).map(Number) as [number, number];
    assert.ok(await waitFor(() => !running(plain), 3_000), 'the plain background job outlived the terminal');
    await sleep(1_000);
    assert.ok(running(survivor), 'the nohup\'d job was killed');
    if (hasCgroups) assert.ok(!cgroupOf(survivor).includes('shellwire.'), `released: ${cgroupOf(survivor)}`);
    killPid(survivor);
  });

  it('process-group containment: a nohup\'d job survives and is forgotten', async (t) => {
    const d = await startDaemon({ audit: false, containment: 'process-group', limits: { killGraceMs: 300 } });
    t.after(() => d.stop());
    const conn = await d.connect();
    t.after(() => conn.close());
    const tg = tag();
    const result = await conn.exec(`nohup ${sleeper(tg)} >/dev/null 2>&1 </dev/null & echo $!`);
    const pid = Number(result.stdout.toString().trim());
    await sleep(1_500);
    assert.ok(running(pid), 'the nohup\'d job was killed');
    // The daemon's stop kills running commands only: a released job is not one.
    await conn.close();
    await d.server.close(500);
    assert.ok(running(pid), 'the daemon\'s stop killed a released job');
    killPid(pid);
  });

  it('classic port: a nohup\'d job survives, a plain background job ends', async (t) => {
    const d = await startDaemon({ audit: false });
    t.after(() => d.stop());
    const classic = new ClassicServer({ token: d.token, port: 0, containers: d.server.containers, limits: { killGraceMs: 300 } });
    const { port } = await classic.listen();
    t.after(() => classic.close());
    const tg = tag();
    const socket = netConnect(port, '127.0.0.1');
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
    socket.end(`${d.token}\nnohup ${sleeper(tg)} >/dev/null 2>&1 </dev/null & a=$!; sleep 312.${tg} & echo $a $!\n`);
    await once(socket, 'close');
    const match = /^OK\n(\d+) (\d+)\n$/.exec(reply);
    assert.ok(match, `reply: ${JSON.stringify(reply)}`);
    const [survivor, plain] = [Number(match[1]), Number(match[2])];
    assert.ok(await waitFor(() => !running(plain), 3_000), 'the plain background job outlived its command');
    await sleep(1_000);
    assert.ok(running(survivor), 'the nohup\'d job was killed');
    killPid(survivor);
  });
});

describe('released jobs outlive the daemon', { skip: !hasCgroups && 'needs a writable cgroup v2' }, () => {
  it('the supervisor of a SIGKILLed daemon does not kill what was released', async () => {
    const home = tempDir();
    const daemon = await startServeCli(home, ['--no-audit']);
    try {
      const token = readFileSync(daemon.tokenFile, 'utf8').trim();
      const conn = await connect({ host: '127.0.0.1', port: daemon.port }, { token, fingerprint: daemon.fingerprint });
      const tg = tag();
      const result = await conn.exec(`nohup ${sleeper(tg)} >/dev/null 2>&1 </dev/null & echo $!; exec sleep 0.5`);
      const pid = Number(result.stdout.toString().trim());
      assert.ok(await waitFor(() => !cgroupOf(pid).includes('shellwire.'), 3_000), `not released: ${cgroupOf(pid)}`);
      // A command still running when the daemon dies is killed, as before.
      const running2 = conn.spawn(`exec sleep 600.${tg}`);
      await running2.started;
      running2.exited.catch(() => {});
      assert.ok(await waitFor(() => tagged(tg).length === 2, 5_000), 'the second command did not start');
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      assert.ok(await waitFor(() => tagged(tg).length === 1, 5_000), `running: ${tagged(tg).join(' ')}`);
      await sleep(500);
      assert.deepEqual(tagged(tg), [pid], 'the released job was killed with its daemon');
      transportOf(conn).destroy();
      killPid(pid);
    } finally {
      daemon.child.kill('SIGKILL');
      removeDir(home);
    }
  });
});
