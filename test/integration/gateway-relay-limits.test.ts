/**
 * What one operator can do to the gateway and to the other operators (issue 13, attack
 * findings 1, 2, 9, 11): the relay holds a bounded amount per channel whatever window the
 * operator asks and however slowly she reads; one operator cannot take a host's pooled
 * connection from everyone; what an operator is told names hosts by their inventory name
 * (never an address) and says whose move it is; a frozen gateway or a silent operator leaves
 * nothing running on the hosts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import { rawChannel, transportOf, type Connection } from '../../src/client/connection.js';
import { FrameType } from '../../src/protocol/frame.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { RELAY_MAX_WINDOW, hostUnreachableMessage } from '../../src/gateway/relay-messages.js';
import { Readable } from 'node:stream';
import { processAlive, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, setHostUsers, startGatewayProcess, type KeyFile } from '../helpers/gateway.js';
import type { ShellwireError } from '../../src/errors.js';

/** Stamp `host` on every OPEN this connection sends (what `--via` does in the client). */
function through(conn: Connection, host: string): Connection {
  const frames = conn[transportOf]();
  const send = frames.send.bind(frames);
  frames.send = (type, channel, payload) => {
    if (type === FrameType.OPEN && payload) {
      const open = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
      open.host = host;
      payload = Buffer.from(JSON.stringify(open));
    }
    send(type, channel, payload);
  };
  return conn;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** The pid a command printed first. */
function firstPid(proc: { stdout: NodeJS.ReadableStream }): Promise<number> {
  return new Promise((resolve) => proc.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
}

/** No address of a host (127.0.0.x:port) nor a bare port of one in what the operator sees. */
function assertNoAddress(text: string, ports: number[]): void {
  for (const port of ports) assert.doesNotMatch(text, new RegExp(`\\b${port}\\b`), `a host's port leaked: ${text}`);
  assert.doesNotMatch(text, /127\.0\.0\.\d+:\d+/, `a host's address leaked: ${text}`);
}

describe('gateway relay limits', { timeout: 180_000 }, () => {
  let dir: string;
  let gwDir: string;
  let childDir: string;
  let alice: KeyFile;
  let carol: KeyFile;
  /** web01: 4 channels per connection (so one operator could fill it); short keepalive (finding 11). */
  let web01: TestDaemon;
  /** db01: killed mid-command. */
  let db01: TestDaemon;
  /** noauth01: does not know the gateway's key. */
  let noauth01: TestDaemon;
  /** moved01: its key is not the one the gateway pinned. */
  let moved01: TestDaemon;
  let gateway: Gateway;
  let gwPort = 0;
  let inventoryFile: string;
  const ports: number[] = [];
  let zerosRead = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-gw-limits-'));
    alice = keyFile(dir, 'alice');
    carol = keyFile(dir, 'carol');
    gwDir = join(dir, 'gateway');
    childDir = join(dir, 'gateway-child');
    const gwKeys = [loadOrCreateGatewayKey(gwDir).publicLine, loadOrCreateGatewayKey(childDir).publicLine];
    const hostUsers = hostUsersText(gwKeys, ['alice', 'carol']);
    // Its stdin window is 64 MiB: the gateway must not pass that much credit on to operators.
    web01 = await startDaemon({ limits: { maxChannels: 4, keepaliveMs: 300, stdinWindow: 64 * 1024 * 1024 } });
    db01 = await startDaemon();
    noauth01 = await startDaemon();
    moved01 = await startDaemon();
    for (const d of [web01, db01, moved01]) setHostUsers(d, hostUsers);
    ports.push(web01.port, db01.port, noauth01.port, moved01.port);
    // The gateway pinned another key for moved01 (its host was reinstalled, or someone is in the middle).
    appendFileSync(join(gwDir, 'known_hosts'), `127.0.0.1:${moved01.port} ${db01.fingerprint}\n`);
    inventoryFile = join(dir, 'inventory.yaml');
    writeFileSync(
      inventoryFile,
      [
        'hosts:',
        `  web01: { address: 127.0.0.1, port: ${web01.port} }`,
        `  db01: { address: 127.0.0.1, port: ${db01.port} }`,
        `  noauth01: { address: 127.0.0.1, port: ${noauth01.port} }`,
        `  moved01: { address: 127.0.0.1, port: ${moved01.port} }`,
        '  dead01: { address: 127.0.0.1, port: 1 }',
      ].join('\n') + '\n',
    );
    const hostsAll = '    hosts: ["web01", "db01", "noauth01", "moved01", "dead01"]';
    writeFileSync(
      join(gwDir, 'users.yaml'),
      ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, hostsAll, '  carol:', '    allowRoot: true', `    keys: ["${carol.line}"]`, hostsAll].join('\n') + '\n',
    );
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory: inventoryFile, hostConnectTimeoutMs: 2_000,
      maxChannelsPerOperatorHost: 3,
      // A streamed answer as large as one likes (a recording fetch is one): how much of it was read.
      ops: [['zeros', () => ({ body: Readable.from((function* () {
        for (let i = 0; i < 3200; i++) {
          zerosRead += 65536;
          yield Buffer.alloc(65536);
        }
      })()) })]],
    });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    for (const d of [web01, db01, noauth01, moved01]) await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = (key: KeyFile, user: string) =>
    connect({ user, host: '127.0.0.1', port: gwPort }, { identity: key.file, fingerprint: gateway.server.identity.fingerprint, env: {} });

  it("an operator at her cap of channels to a host is refused naming her cap; another operator still gets through", async () => {
    const a1 = through(await login(alice, 'alice'), 'web01');
    const a2 = through(await login(alice, 'alice'), 'web01');
    const carolConn = through(await login(carol, 'carol'), 'web01');
    try {
      // alice on two connections: her cap (3) counts across them.
      const sleeps = [a1.spawn('echo 1; exec sleep 60'), a1.spawn('echo 2; exec sleep 60'), a2.spawn('echo 3; exec sleep 60')];
      for (const s of sleeps) s.exited.catch(() => {});
      await Promise.all(sleeps.map((s) => firstPid(s)));
      await assert.rejects(a2.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_TOO_MANY_CHANNELS', err.message);
        assert.match(err.message, /alice already has 3 channels open to host web01/);
        assert.match(err.message, /the gateway's limit per operator and host/);
        assertNoAddress(err.message.replace(/^[^:]*127\.0\.0\.1:\d+[^:]*: /, ''), ports);
        return true;
      });
      // web01 takes 4 channels per connection: alice's 3 plus carol's 2 need a second pooled connection.
      const c1 = carolConn.spawn('echo c1; exec sleep 60');
      c1.exited.catch(() => {});
      await firstPid(c1);
      const r = await carolConn.exec('echo carol got through');
      assert.equal(r.stdout, 'carol got through\n');
      // alice's channels end: her cap is free again.
      for (const s of sleeps) s.kill('SIGKILL');
      await Promise.allSettled(sleeps.map((s) => s.exited));
      assert.ok(await waitFor(async () => (await a2.exec('echo again', { reject: false }).catch(() => null))?.stdout === 'again\n', 5_000));
    } finally {
      await Promise.allSettled([a1.close(), a2.close(), carolConn.close()]);
    }
  });

  it("every pooled connection to a host full: SW_ERR_TOO_MANY_CHANNELS naming the host, not its address", async () => {
    // A second gateway on the same state dir's key, allowed one connection per host.
    const small = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory: inventoryFile, audit: false, maxConnectionsPerHost: 1, maxChannelsPerOperatorHost: 10 });
    const smallPort = (await small.listen()).port;
    const conn = through(await connect({ user: 'alice', host: '127.0.0.1', port: smallPort }, { identity: alice.file, fingerprint: small.server.identity.fingerprint, env: {} }), 'web01');
    try {
      const sleeps = [1, 2, 3, 4].map((i) => conn.spawn(`echo ${i}; exec sleep 60`));
      for (const s of sleeps) s.exited.catch(() => {});
      await Promise.all(sleeps.map((s) => firstPid(s)));
      await assert.rejects(conn.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_TOO_MANY_CHANNELS', err.message);
        assert.match(err.message, /The gateway's connections to host web01 are full \(the host's --max-channels\); try again later\.$/);
        assertNoAddress(err.message.replace(/^[^:]*127\.0\.0\.1:\d+[^:]*: /, ''), ports);
        return true;
      });
      for (const s of sleeps) s.kill('SIGKILL');
      await Promise.allSettled(sleeps.map((s) => s.exited));
    } finally {
      await conn.close();
      await small.close(500);
    }
  });

  it('a host that refuses the connection: try again later, by name, no address', async () => {
    const conn = through(await login(alice, 'alice'), 'dead01');
    try {
      await assert.rejects(conn.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_CONNECT_FAILED', err.message);
        assert.match(err.message, /cannot reach host dead01 \(SW_ERR_CONNECT_FAILED\); try again later/);
        assert.doesNotMatch(err.message, /127\.0\.0\.1:1\b|port 1\b/);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it("a host that does not know the gateway's key: the gateway's configuration, what its admin must do", async () => {
    const conn = through(await login(alice, 'alice'), 'noauth01');
    try {
      await assert.rejects(conn.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_CONNECT_FAILED', err.message);
        assert.match(err.message, /host noauth01 refused the gateway's login \(SW_ERR_AUTH_FAILED\)/);
        assert.match(err.message, /users\.yaml must list the gateway's key .*actAs/);
        assert.doesNotMatch(err.message, /try again later/);
        assertNoAddress(err.message.replace(/^[^:]*127\.0\.0\.1:\d+[^:]*: /, ''), ports);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it("a host whose key changed: the gateway's admin checks it and removes the old pin", async () => {
    const conn = through(await login(alice, 'alice'), 'moved01');
    try {
      await assert.rejects(conn.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_CONNECT_FAILED', err.message);
        assert.match(err.message, /refuses host moved01: .*\(SW_ERR_HOST_KEY_CHANGED\)/);
        assert.match(err.message, /shellwire known-hosts remove HOST:PORT -f <gateway state dir>\/known_hosts/);
        assert.doesNotMatch(err.message, /try again later/);
        assertNoAddress(err.message.replace(/^[^:]*127\.0\.0\.1:\d+[^:]*: /, ''), ports);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it('every refusal code has its message: config errors name the admin, transient ones say try again', () => {
    const unknown = hostUnreachableMessage('web07', 'SW_ERR_HOST_KEY_UNKNOWN');
    assert.match(unknown, /refuses host web07: .*\(SW_ERR_HOST_KEY_UNKNOWN\).*gateway's administrator/);
    assert.doesNotMatch(unknown, /try again later/);
    for (const code of ['SW_ERR_CONNECT_FAILED', 'SW_ERR_CONNECT_TIMEOUT', 'SW_ERR_CONNECTION_CLOSED', 'SW_ERR_KEEPALIVE_TIMEOUT']) {
      assert.match(hostUnreachableMessage('web07', code), new RegExp(`cannot reach host web07 \\(${code}\\); try again later`));
    }
  });

  it("a host lost mid-command: SW_ERR_CONNECTION_CLOSED naming the host, not its address", async () => {
    const conn = through(await login(alice, 'alice'), 'db01');
    try {
      const proc = conn.spawn('echo started; exec sleep 300');
      await new Promise((resolve) => proc.stdout.once('data', resolve));
      proc.stdout.resume();
      proc.stderr.resume();
      await db01.server.close(0);
      const exit = await proc.exited;
      assert.equal(exit.error?.code, 'SW_ERR_CONNECTION_CLOSED');
      // The code is why the host went (here its daemon stopped: SW_ERR_SERVER_SHUTTING_DOWN).
      assert.match(exit.error!.message, /^The gateway lost its connection to host db01 \(SW_ERR_[A-Z_]+\); try again later\.$/);
      assertNoAddress(exit.error!.message, ports);
    } finally {
      await conn.close();
    }
  });

  it('stdin credit: the operator gets at most the relay window, however large the host grants', async () => {
    const conn = await login(alice, 'alice');
    try {
      const credit = await new Promise<number>((resolve, reject) => {
        const channel = conn[rawChannel]({ kind: 'exec', window: 65536, maxPacket: 65536, host: 'web01', params: { command: 'sleep 1' } } as never, {
          onOpen: () => resolve(channel.sendCredit),
          onData: () => {},
          onExit: () => {},
          onClose: (reason, detail) => (reason === 'open-failed' ? reject(new Error(detail.openFail?.message)) : undefined),
        });
      });
      assert.ok(credit > 0 && credit <= RELAY_MAX_WINDOW, `the gateway granted ${credit} bytes of stdin credit`);
    } finally {
      conn.destroy();
    }
  });

  it("a streamed gateway op to an operator with a 4 GiB window who stops reading: read only as her socket drains", async () => {
    const conn = await login(alice, 'alice');
    const socket = conn[transportOf]().socket;
    let received = 0;
    try {
      const done = new Promise<void>((resolve, reject) => {
        conn[rawChannel]({ kind: 'gateway', window: 4294967295, maxPacket: 262144, params: { op: 'zeros' } } as never, {
          onData: (_s, bytes) => void (received += bytes.length),
          onExit: () => {},
          onClose: (reason, detail) => (reason === 'normal' ? resolve() : reject(detail.error ?? new Error(reason))),
        });
      });
      socket.pause();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const readWhilePaused = zerosRead;
      // The socket's buffer limit (1 MiB) plus a slice and what the kernel holds: not 200 MiB.
      assert.ok(readWhilePaused < 32 * 1024 * 1024, `the gateway read ${readWhilePaused} bytes of the answer for a reader that took none`);
      socket.resume();
      await done;
      assert.equal(received, 3200 * 65536);
    } finally {
      conn.destroy();
    }
  });

  it("an operator silent past the gateway's keepalive: her host channels are closed, the command stops", async () => {
    // A gateway with a 300 ms keepalive (its own, so the other tests' streams are not cut short).
    const quick = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory: inventoryFile, audit: false, limits: { keepaliveMs: 300 } });
    const quickPort = (await quick.listen()).port;
    // No pings of her own, and she stops reading: the gateway hears nothing from her.
    const conn = through(await connect({ user: 'alice', host: '127.0.0.1', port: quickPort }, { identity: alice.file, fingerprint: quick.server.identity.fingerprint, env: {}, keepaliveMs: 0 }), 'web01');
    try {
      const proc = conn.spawn('sleep 300 & echo $!; wait');
      proc.exited.catch(() => {});
      const pid = await firstPid(proc);
      assert.ok(processAlive(pid));
      conn[transportOf]().socket.pause();
      assert.ok(await waitFor(() => !processAlive(pid), 8_000), `the command (${pid}) on the host died after the gateway dropped the silent operator`);
    } finally {
      conn.destroy();
      await quick.close(500);
    }
  });

  describe('a gateway process', () => {
    let child: ChildProcess;
    let port = 0;
    let fingerprint = '';

    before(async () => {
      writeFileSync(join(childDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["web01"]'].join('\n') + '\n');
      ({ child, port, fingerprint } = await startGatewayProcess(['--state-dir', childDir, '--inventory', inventoryFile, '--log-level', 'warn', '--no-audit']));
    });

    after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    });

    const loginChild = () => connect({ user: 'alice', host: '127.0.0.1', port }, { identity: alice.file, fingerprint, env: {} });

    it('a raw operator with a 4 GiB window who stops reading: the gateway holds a bounded amount, and lets it go', async () => {
      const conn = await loginChild();
      // Warm up: the pooled connection, TLS, the first buffers.
      await through(await loginChild(), 'web01').exec('head -c 8388608 /dev/zero').then(() => {});
      const baseline = rssKiB(child.pid!);
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(child.pid!))), 20);
      const total = 320 * 1024 * 1024;
      let received = 0;
      const socket = conn[transportOf]().socket;
      try {
        const done = new Promise<void>((resolve, reject) => {
          conn[rawChannel]({ kind: 'exec', window: 4294967295, maxPacket: 262144, host: 'web01', params: { command: `head -c ${total} /dev/zero` } } as never, {
            onData: (_s, bytes) => void (received += bytes.length), // never returns credit: the window is 4 GiB
            onExit: () => {},
            onClose: (reason, detail) => (reason === 'normal' ? resolve() : reject(detail.error ?? new Error(reason))),
          });
        });
        socket.pause();
        // Paused for 4 s: a relay that took whatever the host sends would hold hundreds of MiB.
        await new Promise((resolve) => setTimeout(resolve, 4_000));
        const pausedPeak = peak;
        socket.resume();
        await done;
        assert.equal(received, total);
        clearInterval(sampler);
        const growth = peak - baseline;
        process.stderr.write(`gateway RSS (raw operator, 4 GiB window, paused 4 s): baseline ${baseline} KiB, peak while paused ${pausedPeak} KiB, peak ${peak} KiB, growth ${growth} KiB over ${total / 1048576} MiB\n`);
        assert.ok(growth < 64 * 1024, `the gateway grew by ${growth} KiB`);
      } finally {
        clearInterval(sampler);
        conn.destroy();
      }
      // Once the operator is gone, so is what was held for her.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const after = rssKiB(child.pid!);
      process.stderr.write(`gateway RSS after the operator left: ${after} KiB\n`);
      assert.ok(after - baseline < 64 * 1024, `the gateway still holds ${after - baseline} KiB after the operator left`);
    });

    it("frozen (SIGSTOP): the host's keepalive drops the gateway's connection and stops its commands", async () => {
      const conn = through(await loginChild(), 'web01');
      const proc = conn.spawn('sleep 300 & echo $!; wait');
      proc.exited.catch(() => {});
      const pid = await firstPid(proc);
      assert.ok(processAlive(pid));
      child.kill('SIGSTOP');
      try {
        // web01's keepalive is 300 ms: three silent intervals and the gateway's connection is gone.
        assert.ok(await waitFor(() => !processAlive(pid), 8_000), `the command (${pid}) outlived the frozen gateway's connection`);
      } finally {
        child.kill('SIGCONT');
        conn.destroy();
      }
    });
  });
});
