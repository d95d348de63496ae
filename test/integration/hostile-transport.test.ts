/**
 * Issue 8, transport and connection layer: what one hostile (or merely unlucky) client can
 * do to the daemon's process, its file descriptors and its memory. Where a crash must be
 * observed the daemon is the real CLI (`shellwire serve`) in a child process, so a crash
 * fails the test instead of killing the runner; fd counts are read from /proc/<pid>/fd.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode } from '../../src/errors.js';
import { connect } from '../../src/client/connect.js';
import { ALPN_PROTOCOL } from '../../src/transport/tls.js';
import { RawClient, withTimeout } from '../helpers/raw-client.js';
import { startDaemon, waitFor, processAlive, runCli } from '../helpers/daemon.js';
import { startServeCli, tempDir, removeDir, cleanEnv, type ServeChild } from '../helpers/fixtures.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serve(extra: string[] = []): Promise<ServeChild & { token: string; cleanup(): Promise<void> }> {
  const home = tempDir();
  const child = await startServeCli(home, ['--no-audit', ...extra]);
  const token = readFileSync(child.tokenFile, 'utf8').trim();
  return {
    ...child,
    token,
    async cleanup() {
      child.kill();
      await child.exited;
      removeDir(home);
    },
  };
}

/** A logged-in raw client whose exec floods output it never reads, until the socket queue is deep. */
async function floodedClient(port: number, token: string): Promise<RawClient> {
  const raw = await RawClient.open(port);
  await raw.authenticate(token);
  const opened = await raw.openExec(1, { command: 'head -c 100000000 /dev/zero', window: 0xffffffff, maxPacket: 256 * 1024 });
  assert.equal(opened.type, FrameType.OPEN_OK);
  raw.socket.pause(); // stop reading: the daemon's socket queue grows past WRITE_BUFFER_LIMIT
  await sleep(1_500);
  return raw;
}

async function stillServes(d: { address: string; tokenFile: string; fingerprint: string }): Promise<void> {
  const conn = await connect(d.address, { tokenFile: d.tokenFile, fingerprint: d.fingerprint, env: cleanEnv() });
  assert.equal((await conn.exec('echo alive')).stdout, 'alive\n');
  await conn.close();
}

describe('a congested connection that closes does not crash the daemon', () => {
  let d: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    d = await serve();
  });
  after(async () => d.cleanup());

  it('a bad frame (unknown type 0x77) while the write queue is full', async () => {
    const raw = await floodedClient(d.port, d.token);
    raw.write(Buffer.from([0, 0, 0, 0, 0x77, 0, 0, 0, 0]));
    await sleep(500);
    raw.destroy();
    await sleep(200);
    assert.equal(d.child.exitCode, null, `the daemon died: ${d.stderr().slice(-2000)}`);
    assert.ok(processAlive(d.child.pid!));
    await stillServes(d);
  });

  it('the client just disconnects while the write queue is full', async () => {
    const raw = await floodedClient(d.port, d.token);
    raw.destroy();
    await sleep(500);
    assert.equal(d.child.exitCode, null, `the daemon died: ${d.stderr().slice(-2000)}`);
    await stillServes(d);
    assert.doesNotMatch(d.stderr(), /Maximum call stack/);
  });
});

describe('connections that never finish TLS are dropped', () => {
  it('a TCP connection that sends nothing is closed at the handshake deadline', async () => {
    const d = await startDaemon({ audit: false, limits: { handshakeTimeoutMs: 500 } });
    try {
      const socket = netConnect({ host: '127.0.0.1', port: d.port });
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.resume();
      await withTimeout(closed, 3_000, 'the daemon did not drop a connection that never started TLS');
    } finally {
      await d.stop();
    }
  });
});

describe('refused connections leave no file descriptor behind', () => {
  let d: Awaited<ReturnType<typeof serve>>;
  let holder: Awaited<ReturnType<typeof connect>>;
  before(async () => {
    d = await serve(['--max-connections', '1']);
    // The one connection allowed, busy with a command: everyone else is refused.
    holder = await connect(d.address, { tokenFile: d.tokenFile, fingerprint: d.fingerprint, env: cleanEnv() });
    const held = holder.spawn('sleep 30');
    held.exited.catch(() => {}); // ends with the connection in after()
    await held.started;
    await sleep(100);
  });
  after(async () => {
    await holder.close();
    await d.cleanup();
  });

  it('20 connections refused with SW_ERR_TOO_MANY_CONNECTIONS', async () => {
    const pid = d.child.pid!;
    const before = fdCount(pid);
    for (let i = 0; i < 20; i++) {
      await assert.rejects(
        connect(d.address, { tokenFile: d.tokenFile, fingerprint: d.fingerprint, env: cleanEnv() }),
        (err: { code?: string }) => err.code === ErrorCode.TOO_MANY_CONNECTIONS,
      );
    }
    const settled = await waitFor(() => fdCount(pid) <= before + 2, 5_000);
    assert.ok(settled, `daemon fds went ${before} → ${fdCount(pid)} after 20 refused connections`);
  });

  it('200 refused TLS clients that send one byte and disconnect, without credentials', async () => {
    const pid = d.child.pid!;
    const before = fdCount(pid);
    for (let batch = 0; batch < 10; batch++) {
      await withTimeout(Promise.all(
        Array.from({ length: 20 }, () => new Promise<void>((resolve) => {
          const socket = tlsConnect({ host: '127.0.0.1', port: d.port, rejectUnauthorized: false, ALPNProtocols: [ALPN_PROTOCOL] });
          socket.on('error', () => {});
          socket.on('close', () => resolve());
          socket.resume();
          socket.on('secureConnect', () => socket.end(Buffer.from([0x01])));
        })),
      ), 5_000, 'the daemon did not close refused connections');
    }
    const settled = await waitFor(() => fdCount(pid) <= before + 2, 5_000);
    assert.ok(settled, `daemon fds went ${before} → ${fdCount(pid)} after 200 refused connections`);
  });

  it('a raw TCP client that sends one byte and leaves', async () => {
    const pid = d.child.pid!;
    const before = fdCount(pid);
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const socket = netConnect({ host: '127.0.0.1', port: d.port });
        socket.on('error', () => {});
        socket.on('close', () => resolve());
        socket.on('connect', () => socket.end('x'));
      });
    }
    const settled = await waitFor(() => fdCount(pid) <= before + 2, 5_000);
    assert.ok(settled, `daemon fds went ${before} → ${fdCount(pid)}`);
  });
});

/** Silent TLS clients from one source address, each reopened as soon as the daemon drops it. */
function silentFlood(port: number, localAddress: string, count: number): { stop(): void; opened(): number } {
  let stopped = false;
  let opened = 0;
  const sockets = new Set<Socket>();
  const open = () => {
    if (stopped) return;
    opened += 1;
    const socket = tlsConnect({ host: '127.0.0.1', port, localAddress, rejectUnauthorized: false, ALPNProtocols: [ALPN_PROTOCOL] });
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      setTimeout(open, 10);
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    stop() {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
    opened: () => opened,
  };
}

/** `count` token logins one after another; how many succeeded, and why the others failed. */
async function tokenLogins(d: { address: string; tokenFile: string; fingerprint: string }, count: number): Promise<{ ok: number; failures: string[] }> {
  let ok = 0;
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    try {
      const conn = await connect(d.address, { tokenFile: d.tokenFile, fingerprint: d.fingerprint, env: cleanEnv(), connectTimeoutMs: 5_000 });
      await conn.close();
      ok += 1;
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  return { ok, failures };
}

describe('silent connections cannot lock legitimate users out (MaxStartups)', () => {
  it('4 addresses × 32 silent TLS connections, reopened on drop: 40 logins nearly all succeed', async () => {
    const d = await serve(['--max-startups', '10:30:100', '--max-startups-per-source', '10']);
    const floods = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((addr) => silentFlood(d.port, addr, 32));
    try {
      await sleep(1_000);
      const { ok, failures } = await tokenLogins(d, 40);
      assert.ok(ok >= 38, `only ${ok}/40 logins succeeded: ${failures.slice(0, 3).join(' | ')}`);
      assert.equal(d.child.exitCode, null);
    } finally {
      for (const f of floods) f.stop();
      await d.cleanup();
    }
  });
});

describe('silent connections from the same address as a user do not lock that user out', () => {
  it('30 silent TLS connections from 127.0.0.1, reopened on drop: token logins from 127.0.0.1 still succeed (defaults)', async () => {
    const d = await serve();
    const flood = silentFlood(d.port, '127.0.0.1', 30);
    try {
      await sleep(1_000);
      const { ok, failures } = await tokenLogins(d, 10);
      assert.ok(ok >= 9, `only ${ok}/10 logins succeeded: ${failures.slice(0, 3).join(' | ')}`);
    } finally {
      flood.stop();
      await d.cleanup();
    }
  });
});

describe('serve --max-startups', () => {
  it('refuses a malformed START:RATE:FULL', async () => {
    const r = await runCli(['serve', '--listen', '127.0.0.1:0', '--max-startups', '50:30:10'], { env: cleanEnv({ SHELLWIRE_HOME: tempDir() }) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--max-startups takes START:RATE:FULL/);
  });
});

describe('connection loss settles every channel', () => {
  it('a command that exited with output waiting for credit leaks no fd when the client drops', async () => {
    const d = await serve();
    try {
      const pid = d.child.pid!;
      await stillServes(d);
      await sleep(200);
      const before = fdCount(pid);
      for (let i = 0; i < 3; i++) {
        const raw = await RawClient.open(d.port);
        await raw.authenticate(d.token);
        const opened = await raw.openExec(1, { command: "trap '' TERM; (sleep 0.3; head -c 100000 /dev/zero) & exit 0", window: 1, maxPacket: 1024 });
        assert.equal(opened.type, FrameType.OPEN_OK);
        await sleep(1_000);
        raw.destroy();
      }
      // The hang-up at the command's exit ends the background job; then every pipe must be closed.
      const settled = await waitFor(() => fdCount(pid) <= before, 8_000);
      assert.ok(settled, `daemon fds went ${before} → ${fdCount(pid)}`);
    } finally {
      await d.cleanup();
    }
  });
});

describe('file gets with huge windows and a reader that stopped hold bounded memory', () => {
  it('200 stalled gets of a 24 MiB file with 4 GiB windows: the daemon grows by megabytes, not gigabytes', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'big.bin'), Buffer.alloc(24 * 1024 * 1024, 0x5a));
    const d = await serve(['--file-root', dir]);
    try {
      const pid = d.child.pid!;
      const raw = await RawClient.open(d.port);
      await raw.authenticate(d.token);
      raw.socket.pause(); // read nothing: everything the daemon reads ahead stays in its memory
      const rssBefore = rssBytes(pid);
      for (let channel = 1; channel <= 200; channel++) {
        raw.sendJson(FrameType.OPEN, channel, { kind: 'file', op: 'get', path: join(dir, 'big.bin'), window: 0xffffffff, maxPacket: 1024 * 1024 });
      }
      await sleep(3_000);
      const grown = rssBytes(pid) - rssBefore;
      // Each get alone reads 3 MiB ahead: 600 MiB for 200 without a per-connection bound.
      assert.ok(grown < 128 * 1024 * 1024, `daemon RSS grew by ${Math.round(grown / 1048576)} MiB for 200 stalled gets`);
      raw.destroy();
      await stillServes({ address: `127.0.0.1:${d.port}`, tokenFile: d.tokenFile, fingerprint: d.fingerprint });
    } finally {
      await d.cleanup();
      removeDir(dir);
    }
  });
});

describe('a PTY takes stdin no faster than the terminal does', () => {
  it('stdin to a program that reads nothing does not pile up in the daemon', async () => {
    const d = await serve();
    try {
      const pid = d.child.pid!;
      const raw = await RawClient.open(d.port);
      await raw.authenticate(d.token);
      const opened = await raw.openExec(1, { command: 'sleep 60', pty: { term: 'xterm', cols: 80, rows: 24 } });
      assert.equal(opened.type, FrameType.OPEN_OK);
      let credit = Number(opened.body.window);
      let sent = 0;
      const rssBefore = rssBytes(pid);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const deadline = Date.now() + 3_000;
      while (Date.now() < deadline) {
        while (credit > 0) {
          const n = Math.min(credit, chunk.length);
          raw.send(FrameType.STDIN, 1, chunk.subarray(0, n));
          credit -= n;
          sent += n;
        }
        const w = await raw.nextFrame((f) => f.type === FrameType.WINDOW && f.channel === 1, 200).catch(() => null);
        if (w) credit += w.payload.readUInt32BE(0);
      }
      // The terminal itself takes (and, full, discards) what a program does not read, so the
      // credit keeps coming at the kernel's pace; what must not grow is the daemon's memory.
      const grown = rssBytes(pid) - rssBefore;
      assert.ok(grown < 48 * 1024 * 1024, `daemon RSS grew by ${grown} bytes after ${sent} bytes of stdin to a program that reads nothing`);
      raw.destroy();
    } finally {
      await d.cleanup();
    }
  });
});

describe('connection loss records every command end exactly once (audit)', () => {
  it('commands that exited while their output waited for credit, then the client dropped', async () => {
    const d = await startDaemon();
    try {
      const commands = {
        pipe: "head -c 1000 /dev/zero; exit 0",
        pty: "head -c 1000 /dev/zero | tr '\\0' a; exit 0",
        // Closed by the client instead: the same settling through CLOSE.
        closed: "head -c 1000 /dev/zero; exit 3",
      };
      for (const [name, command] of Object.entries(commands)) {
        const raw = await RawClient.open(d.port);
        await raw.authenticate(d.token);
        const opened = await raw.openExec(1, { command, window: 1, maxPacket: 1024, ...(name === 'pty' ? { pty: { term: 'xterm', cols: 80, rows: 24 } } : {}) });
        assert.equal(opened.type, FrameType.OPEN_OK);
        await sleep(500); // it has exited; 999 bytes wait for credit
        if (name === 'closed') {
          raw.send(FrameType.CLOSE, 1);
          await raw.nextFrame((f) => f.type === FrameType.CLOSE);
        }
        raw.destroy();
      }
      const log = AuditLog.open(auditLogPath(d.server.stateDir), { readonly: true });
      try {
        const ends = () => log.query({}).filter((r) => r.kind === 'command-end');
        await waitFor(() => ends().length >= 3, 5_000);
        await sleep(300); // a second row would come now
        const rows = ends();
        for (const command of Object.values(commands)) {
          assert.equal(rows.filter((r) => r.command === command).length, 1, `one command-end row for ${command}: ${JSON.stringify(rows.map((r) => r.command))}`);
        }
      } finally {
        log.close();
      }
    } finally {
      await d.stop();
    }
  });
});
